//! The desktop app driven through egui_kittest with the tiny model: pick a model, type a prompt,
//! generate, cancel, broken files, dropped A1111 PNGs. Bounded stepping; no GPU needed.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::model_path;
use easel::config::{AppPaths, Language, Settings};
use easel::params::GenerationParams;
use easel::ui::EaselApp;
use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

fn small_settings() -> Settings {
    Settings {
        params: GenerationParams {
            steps: 3,
            width: 64,
            height: 64,
            seed: 11,
            ..GenerationParams::default()
        },
        random_seed: false,
        ..Settings::default()
    }
}

fn app(dir: &Path, settings: Settings) -> Harness<'static, EaselApp> {
    app_sized(dir, settings, egui::vec2(1280.0, 800.0))
}

/// The app in a window of `size` points.
fn app_sized(dir: &Path, settings: Settings, size: egui::Vec2) -> Harness<'static, EaselApp> {
    // The tests query English labels whatever the machine's locale says.
    let settings = Settings {
        language: settings.language.or(Some(Language::English)),
        ..settings
    };
    let paths = AppPaths::under(dir.to_path_buf());
    std::fs::create_dir_all(&paths.default_models_dir).unwrap();
    std::fs::copy(
        model_path(),
        paths.default_models_dir.join("tiny-sd15.safetensors"),
    )
    .unwrap();
    std::fs::copy(
        model_path().with_extension("yaml"),
        paths.default_models_dir.join("tiny-sd15.yaml"),
    )
    .unwrap();
    let yaml = paths.default_models_dir.join("tiny-sd15.yaml");
    let clip = model_path().parent().unwrap().join("tiny-clip");
    let text = std::fs::read_to_string(&yaml)
        .unwrap()
        .replace("version: tiny-clip", &format!("version: {}", clip.display()));
    std::fs::write(&yaml, text).unwrap();
    Harness::builder()
        .with_size(size)
        .build_eframe(move |cc| EaselApp::new(&cc.egui_ctx, paths, settings).unwrap())
}

/// Steps the app until `done` holds, for at most `secs` seconds.
fn step_until(
    h: &mut Harness<'_, EaselApp>,
    secs: u64,
    what: &str,
    done: impl Fn(&Harness<'_, EaselApp>) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done(h) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pick_model_and_prompt(h: &mut Harness<'_, EaselApp>, prompt: &str) {
    step_until(h, 30, "the model list", |h| {
        h.query_by_label_contains("tiny-sd15").is_some()
    });
    h.get_by_label_contains("tiny-sd15").click();
    h.step();
    let field = h.get_by_role_and_label(egui::Role::MultilineTextInput, "Prompt");
    field.focus();
    h.step();
    h.get_by_role_and_label(egui::Role::MultilineTextInput, "Prompt")
        .type_text(prompt);
    h.step();
}

#[test]
fn generate_from_the_prompt_panel_lands_in_the_gallery() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = app(dir.path(), small_settings());
    pick_model_and_prompt(&mut h, "a red barn");
    assert!(h.state().settings().selected_model.is_some());
    h.get_by_label("Generate").click();
    step_until(&mut h, 120, "the image in the gallery", |h| {
        h.state().gallery_len() == 1
    });
    let text = h.state().newest_infotext().unwrap().to_owned();
    assert!(
        text.starts_with("a red barn\nSteps: 3, Sampler: Euler a"),
        "{text}"
    );
    assert!(
        text.contains("Seed: 11, Size: 64x64, Model hash: bb4501b74a, Model: tiny-sd15"),
        "{text}"
    );
    // The new version keeps its parameters (saved with it in a document file).
    assert_eq!(h.state().document().unwrap().label(), Some(text.as_str()));
    let names: Vec<String> = std::fs::read_dir(dir.path().join("outputs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // Named after A1111's `[number]-[seed]-[prompt]`.
    assert_eq!(names, ["00000-11-a red barn.png"]);
    assert!(h.state().messages().is_empty(), "{:?}", h.state().messages());
}

#[test]
fn cancel_leaves_the_app_idle_and_usable() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = small_settings();
    settings.params.steps = 1000;
    settings.params.width = 128;
    settings.params.height = 128;
    let mut h = app(dir.path(), settings);
    pick_model_and_prompt(&mut h, "a long one");
    h.get_by_label("Generate").click();
    step_until(&mut h, 60, "the job to start", |h| {
        h.query_by_label("Cancel").is_some()
    });
    h.key_press(egui::Key::Escape);
    step_until(&mut h, 60, "the cancel", |h| !h.state().is_busy());
    assert_eq!(h.state().gallery_len(), 0);
    assert_eq!(
        h.state().settings().params.prompt,
        "a long one",
        "the prompt survives a cancel"
    );
}

#[test]
fn a_broken_model_shows_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.safetensors");
    let bytes = std::fs::read(model_path()).unwrap();
    std::fs::write(&broken, &bytes[..1000]).unwrap();
    let mut settings = small_settings();
    settings.selected_model = Some(broken);
    let mut h = app(dir.path(), settings);
    step_until(&mut h, 30, "the model list", |h| {
        h.query_by_label_contains("tiny-sd15").is_some()
    });
    h.get_by_label("Generate").click();
    step_until(&mut h, 30, "the error message", |h| {
        !h.state().messages().is_empty()
    });
    let message = h.state().messages()[0].clone();
    assert!(
        message.contains("truncated") && message.contains("broken.safetensors"),
        "{message}"
    );
    assert!(!h.state().is_busy());
}

#[derive(Debug)]
struct Dropped(PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

#[test]
fn dropping_an_a1111_png_offers_its_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("a1111.png");
    let infotext = "masterpiece, a lighthouse at dusk\nNegative prompt: blurry\nSteps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 123456, Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.10.1";
    easel::infotext::png_chunks::write_png_with_parameters(&png, 8, 8, &[128u8; 8 * 8 * 3], infotext)
        .unwrap();
    let mut h = app(dir.path(), small_settings());
    h.input_mut().dropped_files.push(Arc::new(Dropped(png)));
    step_until(&mut h, 30, "the dropped image", |h| {
        h.query_by_label("Use parameters").is_some()
    });
    h.get_by_label("Use parameters").click();
    h.step();
    h.step();
    let p = &h.state().settings().params;
    assert_eq!(p.prompt, "masterpiece, a lighthouse at dusk");
    assert_eq!(p.negative_prompt, "blurry");
    assert_eq!((p.steps, p.seed, p.width, p.height), (28, 123_456, 512, 768));
    assert_eq!(p.sampler, easel::params::Sampler::DpmPp2M);
}

/// Accepts the result staged over the picture (the Accept button of the staging bar).
fn accept_staged(h: &mut Harness<'_, EaselApp>) {
    step_until(h, 10, "a staged result", |h| h.state().staged().is_some());
    h.get_by_label("Accept").click();
    h.step();
    h.step();
    assert!(h.state().staged().is_none(), "accepting ends the staging");
}

fn fixture_image(name: &str) -> PathBuf {
    common::fixtures().join("ref").join("img2img").join(name)
}

/// Drops a picture onto the window and waits until it is the canvas document.
fn drop_picture(h: &mut Harness<'_, EaselApp>, path: PathBuf) {
    h.input_mut().dropped_files.push(Arc::new(Dropped(path)));
    step_until(h, 30, "the dropped picture on the canvas", |h| {
        h.state().document().is_some() && h.state().canvas_image_rect().is_some()
    });
    h.step();
}

/// A primary-button drag through `points` (screen points).
fn drag(h: &mut Harness<'_, EaselApp>, points: &[egui::Pos2]) {
    let press = |h: &mut Harness<'_, EaselApp>, pos, pressed| {
        h.input_mut().events.push(egui::Event::PointerButton {
            pos,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: egui::Modifiers::NONE,
        });
    };
    h.input_mut().events.push(egui::Event::PointerMoved(points[0]));
    h.step();
    press(h, points[0], true);
    h.step();
    for p in &points[1..] {
        h.input_mut().events.push(egui::Event::PointerMoved(*p));
        h.step();
    }
    press(h, *points.last().unwrap(), false);
    h.step();
    h.step();
}

fn masked_pixels(h: &Harness<'_, EaselApp>) -> usize {
    h.state()
        .document()
        .map_or(0, |d| d.mask().as_raw().iter().filter(|v| **v > 0).count())
}

#[test]
fn paint_a_stroke_then_undo_and_redo() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = app(dir.path(), small_settings());
    drop_picture(&mut h, fixture_image("init.png"));
    assert_eq!(h.state().document().unwrap().size(), (64, 64));
    let r = h.state().canvas_image_rect().unwrap();
    let at = |fx: f32, fy: f32| egui::pos2(r.min.x + r.width() * fx, r.min.y + r.height() * fy);
    drag(&mut h, &[at(0.2, 0.5), at(0.4, 0.5), at(0.6, 0.5), at(0.8, 0.5)]);
    let painted = masked_pixels(&h);
    assert!(painted > 200, "the stroke painted {painted} mask pixels");
    assert!(h.state().document().unwrap().mask().get_pixel(32, 32).0[0] > 200);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.step();
    assert_eq!(masked_pixels(&h), 0, "undo removes the whole stroke");
    h.key_press_modifiers(egui::Modifiers::COMMAND | egui::Modifiers::SHIFT, egui::Key::Z);
    h.step();
    assert_eq!(masked_pixels(&h), painted, "redo brings it back");
    // The toolbar buttons do the same.
    h.get_by_label("Undo").click();
    h.step();
    assert_eq!(masked_pixels(&h), 0);
}

#[test]
fn refine_repaints_only_the_masked_region() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = app(dir.path(), small_settings());
    step_until(&mut h, 30, "the model list", |h| {
        h.query_by_label_contains("tiny-sd15").is_some()
    });
    h.get_by_label_contains("tiny-sd15").click();
    h.step();
    drop_picture(&mut h, fixture_image("init.png"));
    let original = h.state().document().unwrap().image().clone();
    // A box over the lower-right quarter with the rectangle tool.
    h.key_press(egui::Key::M);
    h.step();
    let r = h.state().canvas_image_rect().unwrap();
    let at = |fx: f32, fy: f32| egui::pos2(r.min.x + r.width() * fx, r.min.y + r.height() * fy);
    drag(&mut h, &[at(0.6, 0.6), at(0.75, 0.75), at(0.9, 0.9)]);
    assert!(masked_pixels(&h) > 50);
    // Refine lives in the image-to-image section.
    h.get_by_label("Image to image").click();
    // The action bar below the panel grows by the image-to-image buttons: let it settle.
    for _ in 0..3 {
        h.step();
    }
    h.get_by_label("Refine").click();
    step_until(&mut h, 120, "the refined image", |h| h.state().gallery_len() == 1);
    step_until(&mut h, 10, "the job to end", |h| !h.state().is_busy());
    let text = h.state().newest_infotext().unwrap().to_owned();
    for key in [
        "Denoising strength: 0.4",
        "Mask blur: 4",
        "Inpaint area: Only masked",
        "Masked area padding: 32",
    ] {
        assert!(text.contains(key), "{key} missing in {text}");
    }
    // The result is staged over the picture until it is accepted.
    assert_eq!(h.state().document().unwrap().image(), &original);
    accept_staged(&mut h);
    let doc = h.state().document().unwrap();
    assert_eq!(
        doc.previous_image(),
        Some(&original),
        "the result is a new version"
    );
    let result = doc.image();
    assert_eq!(result.dimensions(), original.dimensions());
    // Far from the box nothing changed; inside it something did.
    assert_eq!(result.get_pixel(5, 5), original.get_pixel(5, 5));
    assert_eq!(result.get_pixel(10, 50), original.get_pixel(10, 50));
    let changed = (40..56)
        .flat_map(|y| (40..56).map(move |x| (x, y)))
        .filter(|&(x, y)| result.get_pixel(x, y) != original.get_pixel(x, y))
        .count();
    assert!(changed > 100, "only {changed} pixels changed inside the box");
    // Undo goes back to the original picture.
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.step();
    assert_eq!(h.state().document().unwrap().image(), &original);
}

#[test]
fn the_document_is_autosaved_and_restored() {
    let dir = tempfile::tempdir().unwrap();
    let painted = {
        let mut h = app(dir.path(), small_settings());
        drop_picture(&mut h, fixture_image("init.png"));
        // A second version, so the restored document has one to undo back to.
        let mut second = h.state().document().unwrap().image().clone();
        image::imageops::invert(&mut second);
        h.state_mut().document_mut().unwrap().set_image(second);
        h.step();
        let r = h.state().canvas_image_rect().unwrap();
        let at = |fx: f32, fy: f32| egui::pos2(r.min.x + r.width() * fx, r.min.y + r.height() * fy);
        drag(&mut h, &[at(0.3, 0.3), at(0.5, 0.5), at(0.7, 0.4)]);
        let mask = h.state().document().unwrap().mask().clone();
        assert!(mask.as_raw().iter().any(|v| *v > 0));
        // No explicit save: wait for the debounced autosave.
        let file = dir.path().join("document").join("document.easel");
        step_until(&mut h, 30, "the autosave", |_| file.exists());
        step_until(&mut h, 10, "the autosave to finish", |_| {
            easel::document::file::read(&file).is_ok_and(|d| *d.versions[d.current].mask == mask)
        });
        mask
    };
    // A new app on the same data folder (as after a crash or restart).
    let mut h = app(dir.path(), small_settings());
    step_until(&mut h, 30, "the restored document", |h| {
        h.state().document().is_some()
    });
    assert_eq!(h.state().document().unwrap().mask(), &painted);
    assert_eq!(h.state().document().unwrap().size(), (64, 64));
    // The versions came back too: undo shows the dropped picture.
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.run_steps(2);
    let first = image::open(fixture_image("init.png")).unwrap().to_rgb8();
    assert_eq!(h.state().document().unwrap().image(), &first);
}

#[test]
fn settings_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = app(dir.path(), small_settings());
    pick_model_and_prompt(&mut h, "a quiet harbour");
    h.get_by_label("Image to image").click();
    // The action bar below the panel grows by the image-to-image buttons: let it settle.
    for _ in 0..3 {
        h.step();
    }
    h.state_mut().save_settings();
    let paths = AppPaths::under(dir.path().to_path_buf());
    let (loaded, warning) = Settings::load(&paths.settings_file());
    assert!(warning.is_none());
    assert_eq!(&loaded, h.state().settings());
    assert_eq!(loaded.params.prompt, "a quiet harbour");
    assert_eq!(loaded.mode, easel::config::Mode::ImageToImage);
    assert!(loaded.selected_model.is_some());
}

#[test]
fn typing_a_lora_tag_offers_the_fixture_lora_and_generating_with_it_changes_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let loras = dir.path().join("loras");
    std::fs::create_dir_all(&loras).unwrap();
    let fixture = common::fixtures()
        .join("models")
        .join("loras")
        .join("tiny_style.safetensors");
    std::fs::copy(&fixture, loras.join("tiny_style.safetensors")).unwrap();
    let mut h = app(dir.path(), small_settings());
    step_until(&mut h, 30, "the LoRA list", |h| {
        h.state().lora_names() == ["tiny_style"]
    });
    pick_model_and_prompt(&mut h, "a red barn");
    h.get_by_label("Generate").click();
    step_until(&mut h, 120, "the plain image", |h| h.state().gallery_len() == 1);
    step_until(&mut h, 10, "the job to end", |h| !h.state().is_busy());
    let plain = h.state().document().unwrap().image().clone();

    let field = h.get_by_role_and_label(egui::Role::MultilineTextInput, "Prompt");
    field.focus();
    h.step();
    h.get_by_role_and_label(egui::Role::MultilineTextInput, "Prompt")
        .type_text(" <lora:tiny");
    h.step();
    h.step();
    h.get_by_label("tiny_style").click();
    for _ in 0..3 {
        h.step();
    }
    assert_eq!(
        h.state().settings().params.prompt,
        "a red barn <lora:tiny_style:1>"
    );
    h.get_by_label("Generate").click();
    step_until(&mut h, 120, "the LoRA image", |h| {
        assert!(h.state().messages().is_empty(), "{:?}", h.state().messages());
        h.state().gallery_len() == 2
    });
    step_until(&mut h, 10, "the job to end", |h| !h.state().is_busy());
    accept_staged(&mut h);
    let text = h.state().newest_infotext().unwrap().to_owned();
    let hash = easel::models::lora_file::LoraFile::open(&fixture, "tiny_style")
        .unwrap()
        .short_hash;
    assert!(
        text.contains(&format!("Lora hashes: \"tiny_style: {hash}\"")),
        "{text}"
    );
    assert!(text.starts_with("a red barn <lora:tiny_style:1>\n"), "{text}");
    let with_lora = h.state().document().unwrap().image().clone();
    assert_ne!(with_lora, plain, "the LoRA changes the picture");
    assert!(h.state().messages().is_empty(), "{:?}", h.state().messages());
}

#[test]
fn strength_sweep_results_are_staged_in_order_browsed_and_the_chosen_one_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = app(dir.path(), small_settings());
    pick_model_and_prompt(&mut h, "a red barn");
    drop_picture(&mut h, fixture_image("init.png"));
    let original = h.state().document().unwrap().image().clone();
    h.get_by_label("Image to image").click();
    // The action bar below the panel grows by the image-to-image buttons: let it settle.
    for _ in 0..3 {
        h.step();
    }
    h.get_by_label("Strength sweep").click();
    step_until(&mut h, 240, "six sweep results", |h| h.state().gallery_len() == 6);
    step_until(&mut h, 10, "the sweep to end", |h| !h.state().is_busy());
    h.step();
    // Results are staged over the picture in strength order; the document is still the original.
    assert_eq!(h.state().document().unwrap().image(), &original);
    let (labels, shown) = h.state().staged().unwrap();
    let strengths: Vec<&str> = labels.iter().map(|l| l.split(" · ").next().unwrap()).collect();
    assert_eq!(
        strengths,
        [
            "strength 0.3",
            "strength 0.4",
            "strength 0.5",
            "strength 0.6",
            "strength 0.7",
            "strength 0.8"
        ]
    );
    assert!(labels.iter().all(|l| l.ends_with("seed 11")), "{labels:?}");
    assert_eq!(shown, 5, "the newest arrival shows until the user browses");
    assert!(h.query_by_label("6 of 6").is_some());
    // Browse with the keys and the buttons, then keep strength 0.5.
    h.key_press(egui::Key::ArrowRight);
    h.step();
    assert_eq!(h.state().staged().unwrap().1, 0, "after the last comes the first");
    // A click is applied in the frame after the one that saw it.
    h.get_by_label("›").click();
    h.step();
    h.step();
    h.get_by_label("›").click();
    h.step();
    h.step();
    assert_eq!(h.state().staged().unwrap().1, 2);
    assert!(h.query_by_label("3 of 6").is_some());
    // The parameters shown (and used by "Use parameters") are the shown result's.
    let shown = h.state().shown_infotext().unwrap();
    assert!(shown.contains("Denoising strength: 0.5,"), "{shown}");
    h.key_press(egui::Key::Enter);
    h.step();
    h.step();
    assert!(h.state().staged().is_none(), "Enter accepts");
    let doc = h.state().document().unwrap();
    assert_ne!(doc.image(), &original);
    assert_eq!(doc.previous_image(), Some(&original));
    let kept = doc.image().clone();
    let strength_05 = std::fs::read_dir(dir.path().join("outputs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            easel::infotext::png_chunks::read_png_text_chunks(p)
                .unwrap()
                .iter()
                .any(|(k, v)| k == "parameters" && v.contains("Denoising strength: 0.5,"))
        })
        .expect("the 0.5 output");
    assert_eq!(image::open(strength_05).unwrap().to_rgb8(), kept);
    // The kept version carries its parameters: undo shows the original's (none), redo its own.
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.step();
    h.step();
    assert_eq!(h.state().shown_infotext(), None);
    h.key_press_modifiers(egui::Modifiers::COMMAND | egui::Modifiers::SHIFT, egui::Key::Z);
    h.step();
    h.step();
    let shown = h.state().shown_infotext().unwrap();
    assert!(shown.contains("Denoising strength: 0.5,"), "{shown}");
}

#[test]
fn discarding_staged_results_keeps_the_picture_and_a_gallery_click_is_staged_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = app(dir.path(), small_settings());
    pick_model_and_prompt(&mut h, "a red barn");
    drop_picture(&mut h, fixture_image("init.png"));
    let original = h.state().document().unwrap().image().clone();
    let r = h.state().canvas_image_rect().unwrap();
    let at = |fx: f32, fy: f32| egui::pos2(r.min.x + r.width() * fx, r.min.y + r.height() * fy);
    drag(&mut h, &[at(0.3, 0.5), at(0.5, 0.5), at(0.7, 0.5)]);
    let mask = h.state().document().unwrap().mask().clone();
    h.get_by_label("Image to image").click();
    for _ in 0..3 {
        h.step();
    }
    let view = h.state().canvas_view_rect();
    h.get_by_label("Generate").click();
    step_until(&mut h, 120, "the result", |h| h.state().gallery_len() == 1);
    step_until(&mut h, 10, "the job to end", |h| !h.state().is_busy());
    h.step();
    assert_eq!(
        h.state().canvas_view_rect(),
        view,
        "the first gallery image does not grow the gallery over the canvas"
    );
    // Re-rolling is one click: the mask is still there, a second result joins the staging.
    assert_eq!(h.state().document().unwrap().mask(), &mask);
    h.get_by_label("Generate").click();
    step_until(&mut h, 120, "the second result", |h| h.state().gallery_len() == 2);
    step_until(&mut h, 10, "the job to end", |h| !h.state().is_busy());
    let (labels, shown) = h.state().staged().unwrap();
    assert_eq!(labels.len(), 2, "{labels:?}");
    assert_eq!(shown, 1);
    h.get_by_label("Discard").click();
    h.step();
    h.step();
    assert!(h.state().staged().is_none());
    let doc = h.state().document().unwrap();
    assert_eq!(doc.image(), &original, "discard keeps the picture");
    assert_eq!(doc.mask(), &mask, "and the mask");
    assert!(
        !doc.can_redo() && doc.previous_image().is_none(),
        "no version was made"
    );
    // A gallery click over the open picture is staged as well: picture and mask stay until Accept.
    h.get_by_label_contains("00001-").click();
    step_until(&mut h, 30, "the gallery image staged", |h| {
        h.state().staged().is_some()
    });
    assert_eq!(h.state().document().unwrap().image(), &original);
    assert_eq!(h.state().document().unwrap().mask(), &mask);
    accept_staged(&mut h);
    let doc = h.state().document().unwrap();
    assert_ne!(doc.image(), &original);
    assert_eq!(
        doc.mask(),
        &mask,
        "accepting a picture of the same size keeps the mask"
    );
    // Undo goes back; results staged over a picture that is gone are dropped.
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.step();
    assert_eq!(h.state().document().unwrap().image(), &original);
}

#[test]
fn dropping_a_comfyui_png_offers_its_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("ComfyUI_00001_.png");
    let graph = r#"{"3": {"class_type": "KSampler", "inputs": {"seed": 8566257, "steps": 25, "cfg": 6.5,
        "sampler_name": "dpmpp_2m", "scheduler": "karras", "denoise": 1.0, "model": ["4", 0],
        "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "dreamshaper_8.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 768, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse in a storm", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "ComfyUI"}}}"#;
    easel::infotext::png_chunks::write_png_with_text_chunks(
        &png,
        8,
        8,
        &[90u8; 8 * 8 * 3],
        &[("prompt", graph)],
    )
    .unwrap();
    let mut h = app(dir.path(), small_settings());
    h.input_mut().dropped_files.push(Arc::new(Dropped(png)));
    step_until(&mut h, 30, "the dropped image", |h| {
        h.query_by_label("Use parameters").is_some()
    });
    h.get_by_label("Use parameters").click();
    h.step();
    h.step();
    let p = &h.state().settings().params;
    assert_eq!(p.prompt, "a lighthouse in a storm");
    assert_eq!(p.negative_prompt, "blurry");
    assert_eq!((p.steps, p.seed, p.width, p.height), (25, 8_566_257, 512, 768));
    assert_eq!(p.sampler, easel::params::Sampler::DpmPp2M);
    // Karras is DPM++ 2M's own schedule, which A1111 calls Automatic.
    assert_eq!(p.a1111_schedule_label(), "Karras");
    assert_eq!(p.model_name.as_deref(), Some("dreamshaper_8"));
}

#[test]
fn dropping_a_jpeg_names_its_tool_and_keeps_a_sampler_easel_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let jpg = dir.path().join("forge.jpg");
    let infotext = "a fox in the snow\nSteps: 31, Sampler: Euler a CFG++, Schedule type: Karras, CFG scale: 5, Seed: 4242, Size: 640x448, Version: f2.0.1v1.10.1";
    easel::infotext::write_image_with_parameters(
        &jpg,
        easel::infotext::OutputFormat::Jpeg,
        8,
        8,
        &[128u8; 8 * 8 * 3],
        infotext,
    )
    .unwrap();
    let mut h = app(dir.path(), small_settings());
    let sampler_before = h.state().settings().params.sampler;
    h.input_mut().dropped_files.push(Arc::new(Dropped(jpg)));
    step_until(&mut h, 30, "the dropped image", |h| {
        h.query_by_label("Use parameters").is_some()
    });
    assert!(
        h.query_by_label_contains("parameters from Forge (EXIF UserComment)")
            .is_some()
    );
    h.get_by_label("Use parameters").click();
    h.step();
    h.step();
    let p = &h.state().settings().params;
    assert_eq!((p.steps, p.seed, p.width, p.height), (31, 4242, 640, 448));
    assert_eq!(
        p.sampler, sampler_before,
        "Euler a CFG++ is not run by Easel: the panel keeps its sampler"
    );
    assert!(
        h.query_by_label_contains("'Euler a CFG++' is not one Easel runs yet")
            .is_some()
    );
}

#[test]
fn open_folder_without_an_opener_names_the_folder_not_a_missing_file() {
    let opener_exists = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join("xdg-open").is_file()));
    if !cfg!(target_os = "linux") || opener_exists {
        return; // clicking would really open a file manager
    }
    let dir = tempfile::tempdir().unwrap();
    let mut h = app(dir.path(), small_settings());
    h.get_by_label("Open folder").click();
    h.run_steps(3);
    let messages = h.state().messages().join("\n");
    assert!(messages.contains("no `xdg-open` program"), "{messages}");
    assert!(messages.contains("outputs"), "{messages}");
    assert!(!messages.contains("No such file"), "{messages}");
}

#[test]
fn a_model_folder_can_be_typed_when_no_file_dialog_exists() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = app(dir.path(), small_settings());
    let label = easel::ui::PATH_LABEL;
    h.get_by_label("Add folder…").click();
    h.run_steps(3);
    let missing = dir.path().join("no-such-folder");
    h.get_by_role_and_label(egui::Role::TextInput, label).focus();
    h.step();
    h.get_by_role_and_label(egui::Role::TextInput, label)
        .type_text(&missing.display().to_string());
    h.step();
    h.get_by_label("Add").click();
    h.run_steps(3);
    let messages = h.state().messages().join("\n");
    assert!(
        messages.contains("does not exist; expected a folder"),
        "{messages}"
    );
    assert!(!h.state().settings().model_folders.contains(&missing));
    // A real folder, pasted with quotes: added, and the window closes.
    let folder = dir.path().join("more models");
    std::fs::create_dir(&folder).unwrap();
    h.get_by_role_and_label(egui::Role::TextInput, label).focus();
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.get_by_role_and_label(egui::Role::TextInput, label)
        .type_text(&format!("\"{}\"", folder.display()));
    h.step();
    h.get_by_label("Add").click();
    h.run_steps(3);
    assert!(
        h.state().settings().model_folders.contains(&folder),
        "{:?}",
        h.state().settings().model_folders
    );
    assert!(h.query_by_label(label).is_none(), "the window closed");
}

/// Serves `body` to every request on 127.0.0.1 (plain http is allowed only to this computer).
fn serve_forever(body: Vec<u8>) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::Builder::new()
        .name("test-http".into())
        .spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line.trim() != "" {
                    line.clear();
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            }
        })
        .unwrap();
    port
}

#[test]
fn get_models_lists_the_catalogue_and_downloads_a_typed_source_into_the_lora_browser() {
    let lora = common::fixtures().join("models/loras/tiny_locon.safetensors");
    let port = serve_forever(std::fs::read(&lora).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut h = app(dir.path(), small_settings());
    h.get_by_label("Get models…").click();
    h.run_steps(3);
    // The starter catalogue, with sizes and licences.
    h.get_by_label("Stable Diffusion 1.5 (pruned, EMA only)");
    h.get_by_label("4.27 GB");
    h.get_by_label("CreativeML Open RAIL-M");
    assert!(h.query_all_by_label("Download").count() >= 8);
    // A typed source, as a LoRA.
    let label = easel::ui::SOURCE_LABEL;
    h.get_by_role_and_label(egui::Role::TextInput, label).focus();
    h.step();
    h.get_by_role_and_label(egui::Role::TextInput, label)
        .type_text(&format!("http://127.0.0.1:{port}/files/tiny_locon.safetensors"));
    h.step();
    h.get_by_role_and_label(egui::Role::ComboBox, "Kind").click();
    h.run_steps(2);
    // The popup's entry (the catalogue's kind column says "lora" too); the popup is drawn last.
    h.query_all_by_label("lora").last().unwrap().click();
    h.run_steps(2);
    h.get_by_label("Download source").click();
    step_until(&mut h, 30, "the downloaded LoRA in the browser", |h| {
        h.state().lora_names().contains(&"tiny_locon".to_owned())
    });
    let messages = h.state().messages().join("\n");
    assert!(
        messages.contains("downloaded tiny_locon.safetensors (lora)"),
        "{messages}"
    );
    assert!(dir.path().join("loras/tiny_locon.safetensors").is_file());
    h.run_steps(2);
    h.get_by_label_contains("saved to");
}

#[test]
fn controlnet_section_lists_the_folder_and_generates_with_the_canvas_as_control() {
    let dir = tempfile::tempdir().unwrap();
    let paths = AppPaths::under(dir.path().to_path_buf());
    let control_dir = paths.default_controlnet_dir();
    std::fs::create_dir_all(&control_dir).unwrap();
    let src = common::fixtures().join("models").join("controlnet");
    for f in ["tiny-control.safetensors", "tiny-control.yaml"] {
        std::fs::copy(src.join(f), control_dir.join(f)).unwrap();
    }
    let mut settings = small_settings();
    settings.controlnet.enabled = true;
    settings.controlnet.preprocessor = "canny".into();
    let mut h = app(dir.path(), settings);
    pick_model_and_prompt(&mut h, "a house");
    // The section lists the file as the extension does: name [short hash].
    // The section is open when ControlNet is on.
    h.get_by_label_contains("ControlNet (on)");
    h.get_by_label("ControlNet model").click();
    step_until(&mut h, 30, "the ControlNet list", |h| {
        h.query_by_label_contains("tiny-control [").is_some()
    });
    h.get_by_label_contains("tiny-control [").click();
    h.step();
    assert_eq!(
        h.state().settings().controlnet.model.as_deref(),
        Some(control_dir.join("tiny-control.safetensors").as_path())
    );
    h.step();
    // Without a picture the job says what is missing and nothing is lost.
    // Generate stays in reach below the open section.
    h.get_by_label("Generate").click();
    step_until(&mut h, 10, "a message", |h| !h.state().messages().is_empty());
    assert!(
        h.state()
            .messages()
            .iter()
            .any(|m| m.contains("ControlNet needs a control image")),
        "{:?}",
        h.state().messages()
    );
    drop_picture(
        &mut h,
        common::fixtures()
            .join("ref")
            .join("controlnet")
            .join("hint_a.png"),
    );
    h.get_by_label("Generate").click();
    step_until(&mut h, 120, "the image in the gallery", |h| {
        h.state().gallery_len() == 1
    });
    let text = h.state().newest_infotext().unwrap().to_owned();
    assert!(
        text.contains("ControlNet 0: \"Module: canny, Model: tiny-control ["),
        "{text}"
    );
    assert!(text.contains("Threshold A: 100.0, Threshold B: 200.0"), "{text}");
}

#[test]
fn use_parameters_takes_over_a_controlnet_unit() {
    let dir = tempfile::tempdir().unwrap();
    let paths = AppPaths::under(dir.path().to_path_buf());
    std::fs::create_dir_all(paths.default_controlnet_dir()).unwrap();
    let src = common::fixtures().join("models").join("controlnet");
    for f in ["tiny-control.safetensors", "tiny-control.yaml"] {
        std::fs::copy(src.join(f), paths.default_controlnet_dir().join(f)).unwrap();
    }
    let label = easel::models::controlnet::list_label(
        &paths.default_controlnet_dir().join("tiny-control.safetensors"),
    );
    let png = dir.path().join("controlled.png");
    let infotext = format!(
        "a house\nSteps: 3, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 5, Size: 64x64, \
         ControlNet 0: \"Module: canny, Model: {label}, Weight: 0.7, Resize Mode: Just Resize, Processor Res: 256, \
         Threshold A: 60.0, Threshold B: 120.0, Guidance Start: 0.1, Guidance End: 0.9, Pixel Perfect: False, \
         Control Mode: My prompt is more important\", Version: v1.10.1"
    );
    easel::infotext::png_chunks::write_png_with_parameters(&png, 8, 8, &[128u8; 8 * 8 * 3], &infotext)
        .unwrap();
    let mut h = app(dir.path(), small_settings());
    // The ControlNet list must be there before the parameters can name a model in it.
    step_until(&mut h, 30, "the model list", |h| {
        h.query_by_label_contains("tiny-sd15").is_some()
    });
    h.input_mut().dropped_files.push(Arc::new(Dropped(png)));
    step_until(&mut h, 30, "the dropped image", |h| {
        h.query_by_label("Use parameters").is_some()
    });
    h.get_by_label("Use parameters").click();
    h.step();
    h.step();
    let c = &h.state().settings().controlnet;
    assert!(c.enabled, "{:?}", h.state().messages());
    assert_eq!(
        c.model.as_deref(),
        Some(
            paths
                .default_controlnet_dir()
                .join("tiny-control.safetensors")
                .as_path()
        )
    );
    assert_eq!(
        (c.preprocessor.as_str(), c.canny_low, c.canny_high),
        ("canny", 60, 120)
    );
    assert_eq!((c.weight, c.start, c.end, c.processor_res), (0.7, 0.1, 0.9, 256));
    assert_eq!(
        (c.mode.as_str(), c.resize.as_str()),
        ("My prompt is more important", "Just Resize")
    );
    assert!(
        h.state()
            .settings()
            .params
            .extra
            .iter()
            .all(|(k, _)| !k.starts_with("ControlNet"))
    );
}

#[test]
fn the_fast_preset_says_what_is_missing_then_uses_the_lcm_lora_and_taesd() {
    use easel::params::Sampler;
    use easel::request::VaeDecoder;
    // Nothing installed: the preset sets LCM and says what it lacks.
    let bare = tempfile::tempdir().unwrap();
    let mut h = app(bare.path(), small_settings());
    h.step();
    h.get_by_label("Fast").click();
    h.step();
    h.step();
    let p = &h.state().settings().params;
    assert_eq!((p.sampler, p.steps, p.cfg_scale), (Sampler::Lcm, 6, 1.5));
    assert_eq!(h.state().settings().vae_decoder, VaeDecoder::Full);
    assert!(h.query_by_label_contains("needs an LCM-LoRA").is_some());
    assert!(h.query_by_label_contains("no TAESD decoder").is_some());
    drop(h);

    // An LCM-LoRA in the LoRA folder and a TAESD decoder in vae-approx: the preset adds the tag and
    // decodes with TAESD; the image says so.
    let dir = tempfile::tempdir().unwrap();
    let loras = dir.path().join("loras");
    std::fs::create_dir_all(&loras).unwrap();
    let lora = common::fixtures().join("models/loras/tiny_style.safetensors");
    std::fs::copy(&lora, loras.join("lcm-lora-sdv1-5.safetensors")).unwrap();
    let approx = dir.path().join("vae-approx");
    std::fs::create_dir_all(&approx).unwrap();
    std::fs::copy(
        common::fixtures().join("models/vae-approx/taesd_decoder.safetensors"),
        approx.join("taesd_decoder.safetensors"),
    )
    .unwrap();
    let mut h = app(dir.path(), small_settings());
    step_until(&mut h, 30, "the LoRA list", |h| {
        h.state().lora_names() == ["lcm-lora-sdv1-5"]
    });
    pick_model_and_prompt(&mut h, "a red barn");
    h.get_by_label("Fast").click();
    h.step();
    h.step();
    assert_eq!(
        h.state().settings().params.prompt,
        "a red barn <lora:lcm-lora-sdv1-5:1>"
    );
    assert_eq!(h.state().settings().vae_decoder, VaeDecoder::Taesd);
    assert!(h.query_by_label_contains("decoding with TAESD").is_some());
    h.get_by_label("Generate").click();
    step_until(&mut h, 120, "the fast image", |h| {
        assert!(h.state().messages().is_empty(), "{:?}", h.state().messages());
        h.state().gallery_len() == 1
    });
    let text = h.state().newest_infotext().unwrap().to_owned();
    assert!(text.contains("Steps: 6, Sampler: LCM"), "{text}");
    assert!(text.contains("CFG scale: 1.5"), "{text}");
    assert!(text.contains("VAE Decoder: TAESD"), "{text}");
}

#[test]
fn find_faces_masks_the_face_and_fix_faces_makes_one_new_version() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = app(dir.path(), small_settings());
    step_until(&mut h, 30, "the model list", |h| {
        h.query_by_label_contains("tiny-sd15").is_some()
    });
    h.get_by_label_contains("tiny-sd15").click();
    h.step();
    drop_picture(&mut h, common::fixtures().join("ref/detect/astronaut.png"));
    let original = h.state().document().unwrap().image().clone();
    // The size fields followed the 200×200 photo; the face crops are repainted at 64×64 to keep
    // the test quick (the picture keeps its size either way).
    h.state_mut().settings_mut().params.width = 64;
    h.state_mut().settings_mut().params.height = 64;
    // The size note under the fields changes: let the panel settle before clicking.
    for _ in 0..3 {
        h.step();
    }
    h.get_by_label("Image to image").click();
    // The action bar below the panel grows by the image-to-image buttons: let it settle.
    for _ in 0..3 {
        h.step();
    }
    // Find faces: the face's box (about x 69…106, y 32…69 in this 200×200 photo) becomes the mask.
    h.get_by_label("Find faces").click();
    step_until(&mut h, 60, "the face mask", |h| masked_pixels(h) > 0);
    let mask = h.state().document().unwrap().mask().clone();
    assert_eq!(mask.get_pixel(88, 50)[0], 255, "the face is masked");
    assert_eq!(mask.get_pixel(10, 190)[0], 0, "the rest is not");
    let n = masked_pixels(&h);
    assert!((1200..2500).contains(&n), "{n} masked pixels");
    // The inpaint section opens with the mask and the action bar rewraps: let it settle.
    for _ in 0..3 {
        h.step();
    }
    // Fix faces: one job, one new version, ADetailer's keys in the infotext.
    h.get_by_label("Fix faces").click();
    step_until(&mut h, 120, "the fixed picture", |h| {
        assert!(h.state().messages().is_empty(), "{:?}", h.state().messages());
        h.state().gallery_len() == 1
    });
    step_until(&mut h, 10, "the job to end", |h| !h.state().is_busy());
    let text = h.state().newest_infotext().unwrap().to_owned();
    assert!(text.contains("ADetailer model: mediapipe_face_short"), "{text}");
    accept_staged(&mut h);
    let doc = h.state().document().unwrap();
    assert_eq!(doc.previous_image(), Some(&original), "one new version");
    let result = doc.image();
    assert_eq!(result.get_pixel(5, 195), original.get_pixel(5, 195));
    assert_ne!(
        (60..110)
            .flat_map(|y| (70..105).map(move |x| (x, y)))
            .filter(|&(x, y)| result.get_pixel(x, y) != original.get_pixel(x, y))
            .count(),
        0,
        "the face was repainted"
    );
}

#[test]
fn keep_structure_adds_an_inpaint_controlnet_to_refine() {
    let dir = tempfile::tempdir().unwrap();
    let paths = AppPaths::under(dir.path().to_path_buf());
    let mut settings = small_settings();
    settings.keep_structure = true;
    let mut h = app(dir.path(), settings);
    step_until(&mut h, 30, "the model list", |h| {
        h.query_by_label_contains("tiny-sd15").is_some()
    });
    h.get_by_label_contains("tiny-sd15").click();
    h.step();
    drop_picture(&mut h, fixture_image("init.png"));
    h.key_press(egui::Key::M);
    h.step();
    let r = h.state().canvas_image_rect().unwrap();
    let at = |fx: f32, fy: f32| egui::pos2(r.min.x + r.width() * fx, r.min.y + r.height() * fy);
    drag(&mut h, &[at(0.55, 0.55), at(0.7, 0.7), at(0.9, 0.9)]);
    h.get_by_label("Image to image").click();
    // The action bar below the panel grows by the image-to-image buttons: let it settle.
    for _ in 0..3 {
        h.step();
    }
    // No inpaint or tile ControlNet yet: Refine says what to get.
    h.get_by_label("Refine").click();
    step_until(&mut h, 10, "a message", |h| !h.state().messages().is_empty());
    assert!(
        h.state().messages()[0].contains("Keep structure needs"),
        "{:?}",
        h.state().messages()
    );
    // An inpaint ControlNet in the folder (the tiny one under an inpaint name), then Refine again.
    let control_dir = paths.default_controlnet_dir();
    std::fs::create_dir_all(&control_dir).unwrap();
    let src = common::fixtures().join("models").join("controlnet");
    std::fs::copy(
        src.join("tiny-control.safetensors"),
        control_dir.join("tiny_sd15_inpaint.safetensors"),
    )
    .unwrap();
    std::fs::copy(
        src.join("tiny-control.yaml"),
        control_dir.join("tiny_sd15_inpaint.yaml"),
    )
    .unwrap();
    h.get_by_label("Rescan").click();
    step_until(&mut h, 30, "the ControlNet list", |h| {
        h.state().control_model_count() == 1
    });
    h.get_by_label("Refine").click();
    step_until(&mut h, 120, "the refined image", |h| h.state().gallery_len() == 1);
    let text = h.state().newest_infotext().unwrap().to_owned();
    assert!(
        text.contains("ControlNet 0: \"Module: inpaint_only, Model: tiny_sd15_inpaint ["),
        "{text}"
    );
    assert!(text.contains("Inpaint area: Only masked"), "{text}");
}

#[test]
fn the_sd_vae_picker_lists_the_vae_folder_and_generates_with_the_chosen_file() {
    let dir = tempfile::tempdir().unwrap();
    let paths = AppPaths::under(dir.path().to_path_buf());
    let vae_dir = paths.default_vae_dir();
    std::fs::create_dir_all(&vae_dir).unwrap();
    // The tiny checkpoint's own VAE as a standalone file.
    let tensors = candle_core::safetensors::load(model_path(), &candle_core::Device::Cpu).unwrap();
    let vae: std::collections::HashMap<String, candle_core::Tensor> = tensors
        .into_iter()
        .filter_map(|(k, t)| Some((k.strip_prefix("first_stage_model.")?.to_owned(), t)))
        .collect();
    let file = vae_dir.join("plain.safetensors");
    candle_core::safetensors::save(&vae, &file).unwrap();
    let mut h = app(dir.path(), small_settings());
    pick_model_and_prompt(&mut h, "a red barn");
    h.get_by_label("SD VAE").click();
    step_until(&mut h, 10, "the VAE list", |h| {
        h.query_by_label("plain.safetensors").is_some()
    });
    h.get_by_label("plain.safetensors").click();
    h.step();
    assert_eq!(h.state().settings().vae.as_deref(), Some(file.as_path()));
    h.get_by_label("Generate").click();
    step_until(&mut h, 120, "the image in the gallery", |h| {
        h.state().gallery_len() == 1
    });
    let text = h.state().newest_infotext().unwrap().to_owned();
    assert!(text.contains(", VAE: plain.safetensors"), "{text}");
    assert!(h.state().messages().is_empty(), "{:?}", h.state().messages());
}

/// The fixture picture scaled to `w` × `h`, written into `dir`.
fn picture_of_size(dir: &Path, w: u32, h: u32) -> PathBuf {
    let path = dir.join(format!("picture-{w}x{h}.png"));
    let init = image::open(fixture_image("init.png")).unwrap().to_rgb8();
    image::imageops::resize(&init, w, h, image::imageops::FilterType::Triangle)
        .save(&path)
        .unwrap();
    path
}

#[test]
fn the_size_fields_follow_the_opened_picture() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = small_settings();
    settings.params.width = 512;
    settings.params.height = 768;
    let mut h = app(dir.path(), settings);
    drop_picture(&mut h, picture_of_size(dir.path(), 99, 70));
    h.step();
    let p = &h.state().settings().params;
    assert_eq!((p.width, p.height), (96, 72), "rounded to multiples of 8");
    assert_eq!(
        h.state().document().unwrap().size(),
        (99, 70),
        "the picture keeps its size"
    );
    assert!(
        h.query_by_label_contains("scaled to 96×72").is_some(),
        "the panel says how the picture is scaled"
    );
    drop_picture(&mut h, fixture_image("init.png"));
    step_until(&mut h, 10, "the second picture", |h| {
        h.state().document().unwrap().size() == (64, 64)
    });
    h.step();
    let p = &h.state().settings().params;
    assert_eq!((p.width, p.height), (64, 64));
}

#[test]
fn keeping_a_sweep_result_of_another_size_keeps_the_pictures_size_and_mask() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = app(dir.path(), small_settings());
    pick_model_and_prompt(&mut h, "a red barn");
    drop_picture(&mut h, picture_of_size(dir.path(), 128, 128));
    h.step();
    assert_eq!(
        h.state().settings().params.width,
        128,
        "the fields follow the picture"
    );
    let r = h.state().canvas_image_rect().unwrap();
    let at = |fx: f32, fy: f32| egui::pos2(r.min.x + r.width() * fx, r.min.y + r.height() * fy);
    drag(&mut h, &[at(0.3, 0.5), at(0.5, 0.5), at(0.7, 0.5)]);
    let mask = h.state().document().unwrap().mask().clone();
    assert!(mask.as_raw().iter().any(|v| *v > 0));
    let original = h.state().document().unwrap().image().clone();
    // The user sets a smaller size by hand: the results come back at 64×64.
    h.state_mut().settings_mut().params.width = 64;
    h.state_mut().settings_mut().params.height = 64;
    // The size note under the fields grows by a line: let the panel settle before clicking.
    for _ in 0..3 {
        h.step();
    }
    h.get_by_label("Image to image").click();
    for _ in 0..3 {
        h.step();
    }
    h.get_by_label("Strength sweep").click();
    step_until(&mut h, 240, "six sweep results", |h| h.state().gallery_len() == 6);
    step_until(&mut h, 10, "the sweep to end", |h| !h.state().is_busy());
    h.step();
    // The 0.8 result (the last) is the one shown: keep it.
    assert_eq!(h.state().staged().unwrap().1, 5);
    accept_staged(&mut h);
    let doc = h.state().document().unwrap();
    assert_eq!(doc.size(), (128, 128), "the picture keeps its size");
    assert_eq!(doc.mask(), &mask, "the mask stays");
    assert_eq!(doc.previous_image(), Some(&original));
    let image = doc.image();
    let (mut outside_changed, mut inside_changed) = (0, 0);
    for (x, y, m) in mask.enumerate_pixels() {
        let changed = image.get_pixel(x, y) != original.get_pixel(x, y);
        match m.0[0] {
            0 => outside_changed += usize::from(changed),
            255 => inside_changed += usize::from(changed),
            _ => {}
        }
    }
    assert_eq!(outside_changed, 0, "pixels outside the mask are untouched");
    assert!(inside_changed > 50, "only {inside_changed} masked pixels changed");
    // Asked, not done: the result at its own size is one click away, and undoable.
    h.get_by_label("Use it at 64×64").click();
    h.step();
    h.step();
    assert_eq!(h.state().document().unwrap().size(), (64, 64));
    assert_eq!(h.state().settings().params.width, 64);
    assert!(
        h.query_by_label("Use it at 64×64").is_none(),
        "the question is answered"
    );
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.step();
    assert_eq!(h.state().document().unwrap().size(), (128, 128));
    assert_eq!(h.state().document().unwrap().mask(), &mask);
}

/// The tool bar's widgets, left to right.
const TOOLBAR: [&str; 11] = [
    "Brush",
    "Rectangle",
    "Lasso",
    "Erase",
    "Options",
    "Fill",
    "Clear",
    "Invert",
    "Undo",
    "Redo",
    "Mask",
];

#[test]
fn at_800x600_and_1000x700_the_canvas_keeps_half_the_width_and_the_toolbar_one_row() {
    for (w, hgt) in [(800.0, 600.0), (1000.0, 700.0)] {
        let dir = tempfile::tempdir().unwrap();
        let mut h = app_sized(dir.path(), small_settings(), egui::vec2(w, hgt));
        step_until(&mut h, 30, "the model list", |h| {
            h.query_by_label_contains("tiny-sd15").is_some()
        });
        drop_picture(&mut h, fixture_image("init.png"));
        for _ in 0..5 {
            h.step();
        }
        let canvas = h.state().canvas_view_rect().unwrap();
        assert!(
            canvas.width() >= 0.5 * w,
            "at {w}×{hgt} the canvas is {} points wide",
            canvas.width()
        );
        assert!(canvas.height() >= 0.3 * hgt, "canvas {canvas:?} at {w}×{hgt}");
        let rects: Vec<egui::Rect> = TOOLBAR.iter().map(|l| h.get_by_label(l).rect()).collect();
        for (label, r) in TOOLBAR.iter().zip(&rects) {
            assert!(
                (r.center().y - rects[0].center().y).abs() < 2.0,
                "{label} at {r:?} is not on the tool bar's row at {w}×{hgt}"
            );
            assert!(r.max.x <= w, "{label} at {r:?} is cut off at {w}×{hgt}");
        }
        for pair in rects.windows(2) {
            assert!(
                pair[0].max.x <= pair[1].min.x,
                "overlapping {pair:?} at {w}×{hgt}"
            );
        }
    }
}

#[test]
fn the_toolbar_stays_put_when_the_brush_size_grows_and_fast_presses_all_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = app_sized(dir.path(), small_settings(), egui::vec2(1000.0, 700.0));
    drop_picture(&mut h, fixture_image("init.png"));
    h.state_mut().settings_mut().tools.brush.size = 20.0;
    h.step();
    h.step();
    let before: Vec<egui::Rect> = ["Invert", "Redo", "Mask"]
        .iter()
        .map(|l| h.get_by_label(l).rect())
        .collect();
    // One press a frame…
    for _ in 0..5 {
        h.key_press(egui::Key::CloseBracket);
        h.step();
    }
    let one_by_one = h.state().settings().tools.brush.size;
    assert!(one_by_one > 20.0 && one_by_one.fract() == 0.0, "{one_by_one}");
    // …and five in one frame give the same size.
    h.state_mut().settings_mut().tools.brush.size = 20.0;
    for _ in 0..5 {
        h.key_press(egui::Key::CloseBracket);
    }
    h.step();
    assert_eq!(h.state().settings().tools.brush.size, one_by_one);
    for _ in 0..80 {
        h.key_press(egui::Key::CloseBracket);
    }
    h.step();
    h.step();
    assert_eq!(h.state().settings().tools.brush.size, 2048.0);
    let after: Vec<egui::Rect> = ["Invert", "Redo", "Mask"]
        .iter()
        .map(|l| h.get_by_label(l).rect())
        .collect();
    assert_eq!(before, after, "the tool bar moved when the size grew to 2048");
}

#[test]
fn painting_during_a_running_job_changes_the_mask_and_cancel_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = small_settings();
    settings.params.steps = 1000;
    let mut h = app(dir.path(), settings);
    pick_model_and_prompt(&mut h, "a long one");
    drop_picture(&mut h, fixture_image("init.png"));
    let view = h.state().canvas_view_rect();
    h.get_by_label("Generate").click();
    step_until(&mut h, 60, "sampling steps", |h| {
        h.state().job_status().starts_with("step ")
    });
    assert_eq!(
        h.state().canvas_view_rect(),
        view,
        "starting a job moves no panel edge"
    );
    let r = h.state().canvas_image_rect().unwrap();
    let at = |fx: f32, fy: f32| egui::pos2(r.min.x + r.width() * fx, r.min.y + r.height() * fy);
    drag(&mut h, &[at(0.2, 0.5), at(0.5, 0.5), at(0.8, 0.5)]);
    assert!(h.state().is_busy(), "the job still runs");
    assert!(masked_pixels(&h) > 100, "the drag painted the mask");
    assert_eq!(
        h.state().canvas_image_rect(),
        Some(r),
        "the drag painted instead of panning"
    );
    h.key_press(egui::Key::Escape);
    h.step();
    assert_eq!(h.state().job_status(), "cancelling…");
    step_until(&mut h, 60, "the cancel", |h| !h.state().is_busy());
    assert_eq!(h.state().job_status(), "cancelled");
    assert!(masked_pixels(&h) > 100, "the mask painted during the job stays");
}

#[test]
fn a_message_moves_neither_the_toolbar_nor_the_canvas() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.safetensors");
    let bytes = std::fs::read(model_path()).unwrap();
    std::fs::write(&broken, &bytes[..1000]).unwrap();
    let mut settings = small_settings();
    settings.selected_model = Some(broken);
    let mut h = app_sized(dir.path(), settings, egui::vec2(1000.0, 700.0));
    drop_picture(&mut h, fixture_image("init.png"));
    let toolbar = h.get_by_label("Invert").rect();
    let view = h.state().canvas_view_rect();
    h.get_by_label("Generate").click();
    step_until(&mut h, 30, "the error message", |h| {
        !h.state().messages().is_empty()
    });
    h.step();
    assert!(h.query_by_label("dismiss").is_some() || h.query_by_label("×").is_some());
    assert_eq!(h.get_by_label("Invert").rect(), toolbar, "the tool bar stays put");
    assert_eq!(h.state().canvas_view_rect(), view, "the canvas stays put");
    assert!(
        h.state().job_status().starts_with("failed"),
        "{}",
        h.state().job_status()
    );
}

#[test]
fn a_long_model_name_is_cut_and_does_not_widen_the_models_panel() {
    let dir = tempfile::tempdir().unwrap();
    let models = AppPaths::under(dir.path().to_path_buf()).default_models_dir;
    std::fs::create_dir_all(&models).unwrap();
    let long = format!(
        "{}.safetensors",
        "an-extremely-long-merged-checkpoint-name-v7".repeat(4)
    );
    std::fs::copy(model_path(), models.join(&long)).unwrap();
    let mut h = app_sized(dir.path(), small_settings(), egui::vec2(1000.0, 700.0));
    step_until(&mut h, 30, "both models listed", |h| {
        h.query_by_label_contains("tiny-sd15").is_some()
            && h.query_by_label_contains("an-extremely-long").is_some()
    });
    for _ in 0..5 {
        h.step();
    }
    let row = h.get_by_label_contains("an-extremely-long").rect();
    assert!(row.max.x <= 1000.0, "the row {row:?} runs out of the window");
    let canvas = h.state().canvas_view_rect().unwrap();
    assert!(
        canvas.width() >= 500.0,
        "the canvas is {} points wide next to a long model name",
        canvas.width()
    );
    assert!(
        row.min.x >= canvas.max.x,
        "the models panel {row:?} overlaps the canvas {canvas:?}"
    );
}

#[test]
fn the_view_menu_hides_the_models_panel_and_the_canvas_takes_its_room() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = app_sized(dir.path(), small_settings(), egui::vec2(800.0, 600.0));
    drop_picture(&mut h, fixture_image("init.png"));
    let before = h.state().canvas_view_rect().unwrap();
    h.get_by_label("View").click();
    step_until(&mut h, 5, "the View menu", |h| {
        h.query_by_label("Models panel").is_some()
    });
    h.get_by_label("Models panel").click();
    step_until(&mut h, 10, "the panel to slide away", |h| {
        h.state()
            .canvas_view_rect()
            .is_some_and(|r| r.max.x > before.max.x + 100.0)
    });
    assert!(h.query_by_label("Rescan").is_none(), "the models panel is hidden");
}

#[test]
fn in_chinese_the_prompt_panel_speaks_chinese_prompts_get_real_glyphs_and_english_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        language: Some(Language::SimplifiedChinese),
        ..small_settings()
    };
    let mut h = app(dir.path(), settings);
    h.step();
    h.step();
    // The prompt panel's labels, found by their Chinese text.
    h.get_by_role_and_label(egui::Role::MultilineTextInput, "反向提示词");
    for label in ["采样器", "采样步数", "提示词引导系数 (CFG)", "随机种子", "生成"] {
        assert!(h.query_by_label(label).is_some(), "no {label:?} in the panel");
    }
    assert!(h.query_by_label("Generate").is_none(), "an English label is left");
    // A prompt typed in Chinese lands in the settings and the fonts have every glyph of it.
    let prompt = "一只红色的狐狸，水彩，柔和的光线";
    h.get_by_role_and_label(egui::Role::MultilineTextInput, "提示词")
        .focus();
    h.step();
    h.get_by_role_and_label(egui::Role::MultilineTextInput, "提示词")
        .type_text(prompt);
    h.step();
    assert_eq!(h.state().settings().params.prompt, prompt);
    for font in [egui::FontId::proportional(14.0), egui::FontId::monospace(14.0)] {
        assert!(
            h.ctx.fonts_mut(|f| f.has_glyphs(&font, prompt)),
            "{font:?} would draw boxes for {prompt}"
        );
    }
    // Back to English from the Language menu: the labels follow at once, and the choice is saved.
    h.get_by_label("语言 (Language)").click();
    step_until(&mut h, 5, "the Language menu", |h| {
        h.query_by_label("English").is_some()
    });
    h.get_by_label("English").click();
    h.step();
    h.step();
    h.get_by_role_and_label(egui::Role::MultilineTextInput, "Prompt");
    assert!(h.query_by_label("Generate").is_some());
    assert!(h.query_by_label("生成").is_none());
    assert_eq!(h.state().settings().language, Some(Language::English));
    let saved = Settings::load(&AppPaths::under(dir.path().to_path_buf()).settings_file()).0;
    assert_eq!(saved.language, Some(Language::English));
}

#[test]
fn find_hands_masks_the_hand_box_and_fix_hands_makes_one_new_version() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = app(dir.path(), small_settings());
    step_until(&mut h, 30, "the model list", |h| {
        h.query_by_label_contains("tiny-sd15").is_some()
    });
    h.get_by_label_contains("tiny-sd15").click();
    h.step();
    // A 96×112 picture in which MediaPipe Hands (full models, the default) finds one hand
    // (tests/fixtures/make_hand_fixtures.py): the box around its landmarks is about x 90…98
    // (clipped at 95), y 66…83.
    drop_picture(
        &mut h,
        common::fixtures().join("ref/detect/hands_hopper_small.png"),
    );
    let original = h.state().document().unwrap().image().clone();
    h.get_by_label("Image to image").click();
    for _ in 0..3 {
        h.step();
    }
    h.get_by_label("Find hands").click();
    step_until(&mut h, 60, "the hand mask", |h| masked_pixels(h) > 0);
    let mask = h.state().document().unwrap().mask().clone();
    assert_eq!(mask.get_pixel(93, 74)[0], 255, "the hand is masked");
    assert_eq!(mask.get_pixel(20, 20)[0], 0, "the rest is not");
    let n = masked_pixels(&h);
    assert!((100..250).contains(&n), "{n} masked pixels");
    // The inpaint section opens with the mask and the action bar rewraps: let it settle.
    for _ in 0..3 {
        h.step();
    }
    h.get_by_label("Fix hands").click();
    step_until(&mut h, 120, "the fixed picture", |h| {
        assert!(h.state().messages().is_empty(), "{:?}", h.state().messages());
        h.state().gallery_len() == 1
    });
    step_until(&mut h, 10, "the job to end", |h| !h.state().is_busy());
    let text = h.state().newest_infotext().unwrap().to_owned();
    assert!(text.contains("ADetailer model: mediapipe_hands_full"), "{text}");
    accept_staged(&mut h);
    let doc = h.state().document().unwrap();
    assert_eq!(doc.previous_image(), Some(&original), "one new version");
    let result = doc.image();
    assert_eq!(result.get_pixel(20, 20), original.get_pixel(20, 20));
    assert_ne!(
        (68..82)
            .flat_map(|y| (90..96).map(move |x| (x, y)))
            .filter(|&(x, y)| result.get_pixel(x, y) != original.get_pixel(x, y))
            .count(),
        0,
        "the hand was repainted"
    );
}

#[test]
fn select_person_and_background_put_the_segmentation_on_the_canvas() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = app(dir.path(), small_settings());
    let photo = common::fixtures().join("ref/detect/astronaut.png");
    drop_picture(&mut h, photo.clone());
    h.get_by_label("Image to image").click();
    for _ in 0..3 {
        h.step();
    }
    // MediaPipe's selfie segmentation at probability 0.5, as `easel detect people --mask` writes it.
    let picture = image::open(&photo).unwrap().to_rgb8();
    let people = easel::detect::segment::segment_people(&picture)
        .unwrap()
        .to_mask(0.5);
    let selected = people.pixels().filter(|p| p.0[0] == 255).count();
    assert!(selected > 1000, "the fixture shows a person ({selected} pixels)");
    h.get_by_label("Select person").click();
    step_until(&mut h, 60, "the person mask", |h| masked_pixels(h) > 0);
    assert_eq!(h.state().document().unwrap().mask(), &people);
    // The inpaint section opens with the mask and the action bar rewraps: let it settle.
    for _ in 0..3 {
        h.step();
    }
    h.get_by_label("Select background").click();
    let rest = picture.width() as usize * picture.height() as usize - selected;
    step_until(&mut h, 60, "the background mask", |h| masked_pixels(h) == rest);
    let mask = h.state().document().unwrap().mask().clone();
    assert!(
        mask.pixels()
            .zip(people.pixels())
            .all(|(m, p)| m.0[0] == 255 - p.0[0]),
        "the background is the person's complement"
    );
    assert!(h.state().messages().is_empty(), "{:?}", h.state().messages());
}

#[test]
fn export_writes_the_canvas_picture_in_the_format_its_extension_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = app(dir.path(), small_settings());
    drop_picture(&mut h, fixture_image("init.png"));
    let picture = h.state().document().unwrap().image().clone();
    let label = easel::ui::PATH_LABEL;
    let type_path = |h: &mut Harness<'_, EaselApp>, path: &str| {
        h.get_by_role_and_label(egui::Role::TextInput, label).focus();
        h.step();
        h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
        h.get_by_role_and_label(egui::Role::TextInput, label)
            .type_text(path);
        h.step();
        h.get_by_label("Export").click();
        h.run_steps(3);
    };
    h.get_by_label("File").click();
    step_until(&mut h, 5, "the File menu", |h| {
        h.query_by_label("Export picture…").is_some()
    });
    h.get_by_label("Export picture…").click();
    h.run_steps(3);
    // An extension Easel cannot write, and a missing folder: refused at once, the window stays.
    type_path(&mut h, &dir.path().join("picture.tiff").display().to_string());
    let messages = h.state().messages().join("\n");
    assert!(messages.contains("export as .png, .jpg or .webp"), "{messages}");
    type_path(&mut h, &dir.path().join("nowhere/p.png").display().to_string());
    let messages = h.state().messages().join("\n");
    assert!(messages.contains("the folder does not exist"), "{messages}");
    // A WebP path: lossless, the same pixels.
    let out = dir.path().join("exported.webp");
    type_path(&mut h, &out.display().to_string());
    step_until(&mut h, 30, "the exported file", |_| out.is_file());
    assert_eq!(image::open(&out).unwrap().to_rgb8(), picture);
    assert!(h.query_by_label(label).is_none(), "the window closed");
}

#[test]
fn soft_inpainting_is_a_checkbox_in_the_inpaint_section_and_reaches_the_infotext() {
    let dir = tempfile::tempdir().unwrap();
    // A tall window, so the Inpaint section is on screen without scrolling the panel.
    let mut h = app_sized(dir.path(), small_settings(), egui::vec2(1280.0, 1400.0));
    step_until(&mut h, 30, "the model list", |h| {
        h.query_by_label_contains("tiny-sd15").is_some()
    });
    h.get_by_label_contains("tiny-sd15").click();
    h.step();
    drop_picture(&mut h, fixture_image("init.png"));
    h.key_press(egui::Key::M);
    h.step();
    let r = h.state().canvas_image_rect().unwrap();
    let at = |fx: f32, fy: f32| egui::pos2(r.min.x + r.width() * fx, r.min.y + r.height() * fy);
    drag(&mut h, &[at(0.3, 0.3), at(0.5, 0.5), at(0.7, 0.7)]);
    h.get_by_label("Image to image").click();
    h.run_steps(3);
    assert!(h.query_all_by_label("Schedule bias").next().is_none());
    // The row's label names the checkbox.
    h.get_by_role_and_label(egui::Role::CheckBox, "Soft inpainting")
        .click();
    h.run_steps(3);
    assert_eq!(
        h.state().settings().img2img.soft,
        Some(easel::request::SoftInpainting::default())
    );
    assert!(
        h.query_all_by_label("Schedule bias").next().is_some(),
        "the six parameters show"
    );
    h.get_by_label("Generate").click();
    step_until(&mut h, 120, "the result", |h| h.state().gallery_len() == 1);
    let text = h.state().newest_infotext().unwrap().to_owned();
    assert!(text.contains("Soft inpainting enabled: True"), "{text}");
    assert!(h.state().messages().is_empty(), "{:?}", h.state().messages());
}

#[test]
fn each_found_face_is_a_region_that_can_be_left_out_of_the_mask() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = app(dir.path(), small_settings());
    drop_picture(&mut h, common::fixtures().join("ref/detect/astronaut.png"));
    h.get_by_label("Image to image").click();
    h.run_steps(3);
    h.get_by_label("Find faces").click();
    step_until(&mut h, 60, "the face mask", |h| masked_pixels(h) > 0);
    let with_face = masked_pixels(&h);
    step_until(&mut h, 5, "the list of faces", |h| {
        h.query_by_label_contains("Face 1 · ").is_some()
    });
    assert!(
        h.query_by_label_contains("Face 2 · ").is_none(),
        "one face in this photo"
    );
    h.get_by_label_contains("Face 1 · ").click();
    h.run_steps(2);
    assert_eq!(masked_pixels(&h), 0, "the face left the mask");
    h.get_by_label_contains("Face 1 · ").click();
    h.run_steps(2);
    assert_eq!(masked_pixels(&h), with_face, "and came back");
    // Growing the box by 5 px each side: a box of w×h becomes (w+10)×(h+10).
    let mask = h.state().document().unwrap().mask().clone();
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, _) in mask.enumerate_pixels().filter(|(_, _, p)| p.0[0] > 0) {
        (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
    }
    h.get_by_value("grow 0 px").set_value_accesskit(5.0);
    h.run_steps(2);
    assert_eq!(
        masked_pixels(&h),
        ((x1 - x0 + 10) * (y1 - y0 + 10)) as usize,
        "the grown box"
    );
    h.get_by_value("grow 5 px").set_value_accesskit(0.0);
    h.run_steps(2);
    assert_eq!(masked_pixels(&h), with_face, "back to the box as found");
    // Undo goes back through those edits.
    for _ in 0..3 {
        h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
        h.run_steps(2);
    }
    assert_eq!(masked_pixels(&h), 0);
}

#[test]
fn a_lora_for_another_family_is_not_offered_is_greyed_in_the_list_and_refused_at_generation() {
    let dir = tempfile::tempdir().unwrap();
    let loras = dir.path().join("loras");
    std::fs::create_dir_all(&loras).unwrap();
    for name in ["tiny_style.safetensors", "tiny_sdxl_like.safetensors"] {
        let fixture = common::fixtures().join("models").join("loras").join(name);
        std::fs::copy(&fixture, loras.join(name)).unwrap();
    }
    let mut h = app(dir.path(), small_settings());
    step_until(&mut h, 30, "the LoRA list", |h| h.state().lora_names().len() == 2);
    pick_model_and_prompt(&mut h, "a red barn <lora:tiny");
    h.step();
    h.step();
    // The completion offers the SD 1.x LoRA only, and says one was left out.
    assert!(h.query_by_label("tiny_style").is_some());
    assert!(h.query_by_label("tiny_sdxl_like").is_none());
    assert!(
        h.query_by_label_contains("1 for other model families not offered")
            .is_some()
    );
    // The LoRA list shows both; the SDXL one is greyed.
    let disabled = |label: &str| {
        use egui_kittest::kittest::NodeT as _;
        h.get_by_label_contains(label).accesskit_node().is_disabled()
    };
    assert!(disabled("tiny_sdxl_like  [SDXL]"));
    assert!(!disabled("tiny_style  [SD 1.x]"));
    // Written by hand anyway, the tag fails the job with a message naming it and both families.
    h.get_by_role_and_label(egui::Role::MultilineTextInput, "Prompt")
        .type_text("_sdxl_like:1>");
    h.step();
    assert_eq!(
        h.state().settings().params.prompt,
        "a red barn <lora:tiny_sdxl_like:1>"
    );
    h.get_by_label("Generate").click();
    step_until(&mut h, 60, "the refusal", |h| !h.state().messages().is_empty());
    let message = h.state().messages().join("\n");
    for part in ["tiny_sdxl_like", "SDXL", "SD 1.x"] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
    assert_eq!(h.state().gallery_len(), 0);
}

#[test]
fn an_unclosed_bracket_in_the_prompt_shows_a_warning_under_it_until_it_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = app(dir.path(), small_settings());
    h.step();
    let prompt = || egui::Role::MultilineTextInput;
    let field = h.get_by_role_and_label(prompt(), "Prompt");
    let before = field.rect();
    field.focus();
    h.step();
    h.get_by_role_and_label(prompt(), "Prompt")
        .type_text("a [smile:frown");
    h.step();
    h.step();
    let warning = "“[” at character 3 is never closed";
    let shown = h.get_by_label_contains(warning).rect();
    let field = h.get_by_role_and_label(prompt(), "Prompt").rect();
    assert_eq!(field, before, "the prompt box stays where it was");
    assert!(
        shown.min.y >= field.max.y,
        "the warning {shown:?} is under the box {field:?}"
    );
    // The parse is A1111's either way: the text is kept as typed.
    assert_eq!(h.state().settings().params.prompt, "a [smile:frown");
    h.get_by_role_and_label(prompt(), "Prompt").type_text("]");
    h.step();
    h.step();
    assert!(h.query_by_label_contains(warning).is_none());
    assert!(h.query_by_label_contains("never closed").is_none());
}

#[test]
fn a_model_copied_into_the_models_folder_appears_without_a_rescan() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = app(dir.path(), small_settings());
    step_until(&mut h, 30, "the model list", |h| {
        h.query_by_label_contains("tiny-sd15").is_some()
    });
    assert!(h.query_by_label_contains("copied-in").is_none());
    // Let the watcher take the folder as it is, then copy a model in as a file manager would.
    std::thread::sleep(Duration::from_millis(300));
    let models = AppPaths::under(dir.path().to_path_buf()).default_models_dir;
    std::fs::copy(model_path(), models.join("copied-in.safetensors")).unwrap();
    // Two polls of two seconds each (changed, then settled), with room to spare.
    step_until(&mut h, 30, "the copied model in the list", |h| {
        h.query_by_label_contains("copied-in").is_some()
    });
    assert!(h.state().messages().is_empty(), "{:?}", h.state().messages());
}

#[test]
fn at_720x480_and_800x600_every_prompt_panel_control_lies_inside_the_panel() {
    use egui_kittest::kittest::NodeT as _;
    const CONTROLS: [&str; 17] = [
        "Fast",
        "Decode with TAESD",
        "faces",
        "hands",
        "Random",
        "Presets",
        "Swap",
        "Refine",
        "Keep structure",
        "Strength sweep",
        "Find faces",
        "Fix faces",
        "Find hands",
        "Fix hands",
        "Select person",
        "Select background",
        "Generate",
    ];
    for (w, hgt) in [(720.0, 480.0), (800.0, 600.0)] {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            mode: easel::config::Mode::ImageToImage,
            ..small_settings()
        };
        let mut h = app_sized(dir.path(), settings, egui::vec2(w, hgt));
        step_until(&mut h, 30, "the model list", |h| {
            h.query_by_label_contains("tiny-sd15").is_some()
        });
        // A painted mask opens the inpaint section, the widest part of the panel.
        drop_picture(&mut h, fixture_image("init.png"));
        let r = h.state().canvas_image_rect().unwrap();
        let at = |fx: f32, fy: f32| egui::pos2(r.min.x + r.width() * fx, r.min.y + r.height() * fy);
        drag(&mut h, &[at(0.2, 0.5), at(0.5, 0.5), at(0.8, 0.5)]);
        for _ in 0..5 {
            h.step();
        }
        assert!(h.query_by_label("Inpaint (mask painted)").is_some());
        // The prompt box spans the panel's width; the canvas starts right of the panel.
        let panel = h
            .get_by_role_and_label(egui::Role::MultilineTextInput, "Prompt")
            .rect();
        let canvas = h.state().canvas_view_rect().unwrap();
        assert!(panel.max.x <= canvas.min.x, "{panel:?} {canvas:?}");
        let inside = |r: egui::Rect| r.min.x >= panel.min.x - 1.0 && r.max.x <= panel.max.x + 1.0;
        let mut outside = Vec::new();
        for label in CONTROLS {
            let r = h.get_by_label(label).rect();
            if !inside(r) {
                outside.push(format!("{label} {r:?}"));
            }
        }
        // Every other control that starts in the panel (the scrolled-away ones too), below the
        // tool bar and above the status bar.
        for node in h.query_all(egui_kittest::kittest::by().predicate(|_| true)) {
            let a = node.accesskit_node();
            let interactive = matches!(
                a.role(),
                egui::accesskit::Role::Button
                    | egui::accesskit::Role::CheckBox
                    | egui::accesskit::Role::ComboBox
                    | egui::accesskit::Role::Slider
                    | egui::accesskit::Role::SpinButton
                    | egui::accesskit::Role::TextInput
                    | egui::accesskit::Role::MultilineTextInput
            );
            let Some(b) = a.bounding_box() else { continue };
            #[expect(clippy::cast_possible_truncation, reason = "screen points")]
            let r = egui::Rect::from_min_max(
                egui::pos2(b.x0 as f32, b.y0 as f32),
                egui::pos2(b.x1 as f32, b.y1 as f32),
            );
            let in_band = r.min.y > panel.min.y - 20.0 && !(r.min.y >= hgt - 24.0 && r.max.y <= hgt);
            if interactive && in_band && r.min.x < panel.max.x && !inside(r) {
                outside.push(format!("{:?} {:?} {r:?}", a.role(), a.label()));
            }
        }
        assert!(
            outside.is_empty(),
            "at {w}×{hgt} these leave the panel {panel:?}: {outside:?}"
        );
    }
}

#[test]
fn the_autosave_of_an_older_easel_is_still_restored() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("document");
    std::fs::create_dir_all(&folder).unwrap();
    let picture = image::RgbImage::from_fn(48, 32, |x, y| image::Rgb([x as u8 * 5, y as u8 * 7, 90]));
    let mask = image::GrayImage::from_fn(48, 32, |x, _| image::Luma([if x < 20 { 255 } else { 0 }]));
    picture.save(folder.join("image.png")).unwrap();
    mask.save(folder.join("mask.png")).unwrap();
    let mut h = app(dir.path(), small_settings());
    step_until(&mut h, 30, "the restored document", |h| {
        h.state().document().is_some()
    });
    assert_eq!(h.state().document().unwrap().image(), &picture);
    assert_eq!(h.state().document().unwrap().mask(), &mask);
    assert!(h.state().messages().is_empty(), "{:?}", h.state().messages());
    // The next autosave writes the document file and drops the old pair.
    h.state_mut().document_mut().unwrap().invert_mask();
    h.state_mut().save_document_now().unwrap();
    assert!(folder.join("document.easel").is_file());
    assert!(!folder.join("image.png").exists() && !folder.join("mask.png").exists());
}

/// Types `path` into the open path window and presses its `action` button.
fn use_typed_path(h: &mut Harness<'_, EaselApp>, path: &Path, action: &str) {
    let label = easel::ui::PATH_LABEL;
    step_until(h, 5, "the path window", |h| h.query_by_label(label).is_some());
    h.get_by_role_and_label(egui::Role::TextInput, label).focus();
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.get_by_role_and_label(egui::Role::TextInput, label)
        .type_text(&path.display().to_string());
    h.step();
    h.get_by_label(action).click();
    h.run_steps(3);
}

#[test]
fn a_saved_document_reopens_with_its_picture_mask_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("work.easel");
    let (first, second, mask) = {
        let mut h = app(dir.path(), small_settings());
        drop_picture(&mut h, fixture_image("init.png"));
        let first = h.state().document().unwrap().image().clone();
        let mut second = first.clone();
        image::imageops::invert(&mut second);
        h.state_mut().document_mut().unwrap().set_image(second.clone());
        h.step();
        let r = h.state().canvas_image_rect().unwrap();
        let at = |fx: f32, fy: f32| egui::pos2(r.min.x + r.width() * fx, r.min.y + r.height() * fy);
        drag(&mut h, &[at(0.3, 0.3), at(0.6, 0.6)]);
        let mask = h.state().document().unwrap().mask().clone();
        assert!(mask.as_raw().iter().any(|v| *v > 0));
        assert!(
            h.query_by_label_contains("untitled •").is_some(),
            "unsaved, no file yet"
        );
        // Save As (Ctrl+Alt+S) through the typed path; the extension is added.
        h.key_press_modifiers(egui::Modifiers::COMMAND.plus(egui::Modifiers::ALT), egui::Key::S);
        h.run_steps(2);
        assert!(h.query_by_label("Save the document").is_some());
        use_typed_path(&mut h, &dir.path().join("work"), "Save");
        step_until(&mut h, 30, "the saved file", |h| !h.state().has_unsaved_changes());
        assert!(file.is_file());
        assert_eq!(h.state().document_file(), Some(file.as_path()));
        h.run_steps(2);
        assert!(h.query_by_label_contains("work.easel · 64×64").is_some());
        // Another edit marks it unsaved; Ctrl+S saves to the same file without asking.
        h.state_mut().document_mut().unwrap().clear_mask();
        h.state_mut().document_mut().unwrap().undo();
        h.run_steps(2);
        assert!(h.query_by_label_contains("work.easel • ·").is_some());
        h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::S);
        step_until(&mut h, 30, "the second save", |h| {
            !h.state().has_unsaved_changes()
        });
        assert!(h.query_by_label(easel::ui::PATH_LABEL).is_none(), "no path asked");
        assert!(h.state().messages().is_empty(), "{:?}", h.state().messages());
        h.state_mut().save_document_now().unwrap();
        (first, second, mask)
    };
    // Restored from the autosave, it still belongs to its file, saved.
    {
        let mut h = app(dir.path(), small_settings());
        step_until(&mut h, 30, "the restored document", |h| {
            h.state().document().is_some()
        });
        assert_eq!(h.state().document_file(), Some(file.as_path()));
        assert!(!h.state().has_unsaved_changes());
        assert_eq!(h.state().document().unwrap().image(), &second);
    }
    // A fresh app (its own data folder, so no autosave brings the document back).
    let fresh = tempfile::tempdir().unwrap();
    let mut h = app(fresh.path(), small_settings());
    h.run_steps(3);
    // A broken file: a message, nothing opened.
    let broken = fresh.path().join("broken.easel");
    std::fs::write(&broken, b"PK\x03\x04 not really a zip").unwrap();
    h.get_by_label("File").click();
    step_until(&mut h, 5, "the File menu", |h| {
        h.query_by_label("Open image…").is_some()
    });
    h.get_by_label("Open image…").click();
    use_typed_path(&mut h, &broken, "Open");
    step_until(&mut h, 30, "the message", |h| !h.state().messages().is_empty());
    let message = h.state().messages().join("\n");
    assert!(message.contains("could not open the document"), "{message}");
    assert!(message.contains("is not an Easel document"), "{message}");
    assert!(h.state().document().is_none());
    // The saved file.
    h.get_by_label("File").click();
    step_until(&mut h, 5, "the File menu", |h| {
        h.query_by_label("Open image…").is_some()
    });
    h.get_by_label("Open image…").click();
    use_typed_path(&mut h, &file, "Open");
    step_until(&mut h, 30, "the opened document", |h| {
        h.state().document().is_some()
    });
    let doc = h.state().document().unwrap();
    assert_eq!(doc.image(), &second);
    assert_eq!(doc.mask(), &mask);
    assert!(!h.state().has_unsaved_changes());
    assert_eq!(h.state().document_file(), Some(file.as_path()));
    // Undo steps back to the first version (the mask strokes are not kept as steps), redo forward.
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.run_steps(2);
    assert_eq!(h.state().document().unwrap().image(), &first);
    assert!(h.state().has_unsaved_changes());
    h.key_press_modifiers(
        egui::Modifiers::COMMAND.plus(egui::Modifiers::SHIFT),
        egui::Key::Z,
    );
    h.run_steps(2);
    assert_eq!(h.state().document().unwrap().image(), &second);
    assert_eq!(h.state().document().unwrap().mask(), &mask);
    // Dropped onto the window, a document opens in place of the open one; over unsaved changes
    // only when the user says so.
    h.state_mut().document_mut().unwrap().clear_mask();
    let drop_file = |h: &mut Harness<'_, EaselApp>| {
        h.input_mut().dropped_files.push(Arc::new(Dropped(file.clone())));
        step_until(h, 30, "the question", |h| {
            h.query_by_label("Open anyway").is_some()
        });
    };
    drop_file(&mut h);
    h.get_by_label("Cancel").click();
    h.run_steps(3);
    assert!(h.query_by_label("Open anyway").is_none());
    assert!(h.state().has_unsaved_changes());
    assert!(
        !h.state().document().unwrap().has_mask(),
        "the open document stayed"
    );
    drop_file(&mut h);
    h.get_by_label("Open anyway").click();
    step_until(&mut h, 30, "the dropped document", |h| {
        !h.state().has_unsaved_changes()
    });
    assert_eq!(h.state().document().unwrap().mask(), &mask);
}
