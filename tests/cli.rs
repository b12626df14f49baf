//! The `easel` command line: outputs, infotext round trip, replay, and one clear line with exit code 2 for every kind of bad input.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{DType, Device, Tensor};
use common::{fixtures, model_path};

fn easel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_easel"))
        .args(args)
        .env("EASEL_CACHE_DIR", std::env::temp_dir().join("easel-test-cache"))
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `generate` on `model` with small settings plus `extra`; returns the output.
fn generate(model: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    for (flag, value) in [
        ("--prompt", "a cozy cabin"),
        ("--width", "64"),
        ("--height", "64"),
        ("--steps", "3"),
        ("--seed", "42"),
    ] {
        if !extra.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    args.extend_from_slice(extra);
    easel(&args)
}

fn parameters_of(png: &Path) -> String {
    let chunks = easel::infotext::png_chunks::read_png_text_chunks(png).unwrap();
    chunks.into_iter().find(|(k, _)| k == "parameters").unwrap().1
}

/// Asserts a bad-input failure: exit code 2, one line on stderr containing `needle`, no panic.
fn assert_bad_input(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "exactly one error line: {err}");
}

#[test]
fn generate_writes_png_with_a1111_infotext_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cabin.png");
    let o = generate(
        &model_path(),
        &out,
        &["--sampler", "DPM++ 2M", "--negative", "blurry, dark"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = parameters_of(&out);
    assert_eq!(
        text,
        format!(
            "a cozy cabin\nNegative prompt: blurry, dark\nSteps: 3, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 42, Size: 64x64, Model hash: bb4501b74a, Model: tiny-sd15, Version: easel {}",
            env!("CARGO_PKG_VERSION")
        )
    );
    let img = image::open(&out).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (64, 64));

    // png-info prints the parameters.
    let o = easel(&["png-info", out.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("Sampler: DPM++ 2M, Schedule type: Karras"));

    // Replaying the infotext reproduces the image exactly.
    let replay = dir.path().join("replay.png");
    let o = easel(&[
        "generate",
        "--model",
        model_path().to_str().unwrap(),
        "--params-from",
        out.to_str().unwrap(),
        "--out",
        replay.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(image::open(&replay).unwrap().to_rgb8().as_raw(), img.as_raw());
    assert_eq!(parameters_of(&replay), text);
}

#[test]
fn batch_count_numbers_outputs_and_increments_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b.png");
    let o = generate(&model_path(), &out, &["--batch-count", "2", "--sampler", "Euler"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!out.exists());
    assert!(parameters_of(&dir.path().join("b-1.png")).contains("Seed: 42,"));
    assert!(parameters_of(&dir.path().join("b-2.png")).contains("Seed: 43,"));
    // The second image equals a single run with seed 43.
    let single = dir.path().join("s.png");
    let o = easel(&[
        "generate",
        "--model",
        model_path().to_str().unwrap(),
        "--prompt",
        "a cozy cabin",
        "--width",
        "64",
        "--height",
        "64",
        "--steps",
        "3",
        "--seed",
        "43",
        "--sampler",
        "Euler",
        "--out",
        single.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert_eq!(
        image::open(&single).unwrap().to_rgb8().as_raw(),
        image::open(dir.path().join("b-2.png"))
            .unwrap()
            .to_rgb8()
            .as_raw()
    );
}

#[test]
fn diffusers_folder_gives_the_same_image() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.png");
    let b = dir.path().join("b.png");
    assert!(generate(&model_path(), &a, &[]).status.success());
    let folder = fixtures().join("models").join("tiny-sd15-diffusers");
    let o = generate(&folder, &b, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        image::open(&a).unwrap().to_rgb8().as_raw(),
        image::open(&b).unwrap().to_rgb8().as_raw()
    );
}

#[test]
fn info_reports_family_dtype_and_hash() {
    let o = easel(&["info", model_path().to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(text.contains("family:        SD 1.x"), "{text}");
    assert!(text.contains("storage dtype: F16"), "{text}");
    assert!(text.contains("tensors:       431"), "{text}");
    assert!(text.contains("hash (AutoV2): bb4501b74a"), "{text}");
    let inpaint = fixtures().join("models").join("tiny-sd15-inpainting.safetensors");
    let o = easel(&["info", inpaint.to_str().unwrap(), "--no-hash"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("SD 1.x inpainting"));
}

/// Writes a copy of the tiny checkpoint (and its yaml) with tensors filtered/converted.
fn variant(dir: &Path, name: &str, keep: impl Fn(&str) -> bool, dtype: Option<DType>) -> PathBuf {
    let tensors = candle_core::safetensors::load(model_path(), &Device::Cpu).unwrap();
    let kept: std::collections::HashMap<String, Tensor> = tensors
        .into_iter()
        .filter(|(k, _)| keep(k))
        .map(|(k, t)| {
            let t = match dtype {
                Some(d) if t.dtype() == DType::F16 => t.to_dtype(d).unwrap(),
                _ => t,
            };
            (k, t)
        })
        .collect();
    let path = dir.join(format!("{name}.safetensors"));
    candle_core::safetensors::save(&kept, &path).unwrap();
    let yaml = std::fs::read_to_string(fixtures().join("models").join("tiny-sd15.yaml")).unwrap();
    // The yaml names the text-encoder config folder relative to itself.
    let clip_dir = fixtures().join("models").join("tiny-clip");
    std::fs::write(
        dir.join(format!("{name}.yaml")),
        yaml.replace("version: tiny-clip", &format!("version: {}", clip_dir.display())),
    )
    .unwrap();
    path
}

#[test]
fn f32_and_bf16_storage_load_like_f16() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("ref.png");
    assert!(generate(&model_path(), &reference, &[]).status.success());
    let reference = image::open(&reference).unwrap().to_rgb8();
    for (name, dtype) in [("f32", DType::F32), ("bf16", DType::BF16)] {
        let model = variant(dir.path(), name, |_| true, Some(dtype));
        let info = easel(&["info", model.to_str().unwrap(), "--no-hash"]);
        assert!(
            String::from_utf8_lossy(&info.stdout)
                .contains(&format!("storage dtype: {}", name.to_uppercase()))
        );
        let out = dir.path().join(format!("{name}.png"));
        let o = generate(&model, &out, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        let img = image::open(&out).unwrap().to_rgb8();
        if dtype == DType::F32 {
            assert_eq!(
                img.as_raw(),
                reference.as_raw(),
                "f16 values widened to f32 are the same weights"
            );
        } else {
            // bf16 rounds the f16 weights; the picture stays close.
            let worst = img
                .as_raw()
                .iter()
                .zip(reference.as_raw())
                .map(|(a, b)| a.abs_diff(*b))
                .max()
                .unwrap();
            assert!(worst < 64, "bf16 differs by {worst}");
        }
    }
}

#[test]
fn bad_files_are_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");

    let o = generate(&dir.path().join("nope.safetensors"), &out, &[]);
    assert_bad_input(&o, "not found");

    let truncated = dir.path().join("truncated.safetensors");
    let bytes = std::fs::read(model_path()).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert_bad_input(&generate(&truncated, &out, &[]), "truncated");

    let bad_header = dir.path().join("bad.safetensors");
    std::fs::write(&bad_header, [0xffu8; 64]).unwrap();
    assert_bad_input(&generate(&bad_header, &out, &[]), "header claims");

    let ckpt = dir.path().join("model.ckpt");
    std::fs::write(&ckpt, b"PK\x03\x04 pickle").unwrap();
    let o = generate(&ckpt, &out, &[]);
    assert_bad_input(&o, ".safetensors version");

    let txt = dir.path().join("model.txt");
    std::fs::write(&txt, b"hello").unwrap();
    assert_bad_input(&generate(&txt, &out, &[]), "unsupported model format");

    let no_vae = variant(
        dir.path(),
        "novae",
        |k| !k.starts_with("first_stage_model."),
        None,
    );
    assert_bad_input(
        &generate(&no_vae, &out, &[]),
        "first_stage_model.encoder.conv_in.weight",
    );

    let no_te = variant(dir.path(), "note", |k| !k.starts_with("cond_stage_model."), None);
    assert_bad_input(
        &generate(&no_te, &out, &[]),
        "cond_stage_model.transformer.text_model",
    );

    let no_mid = variant(
        dir.path(),
        "nomid",
        |k| !k.contains("middle_block.1.proj_out"),
        None,
    );
    assert_bad_input(
        &generate(&no_mid, &out, &[]),
        "model.diffusion_model.middle_block.1.proj_out",
    );

    assert!(!out.exists(), "no output is written for a failed job");
}

fn write_header_only(path: &Path, names: &[(&str, &[usize])]) {
    let tensors: std::collections::HashMap<String, Tensor> = names
        .iter()
        .map(|(n, s)| {
            (
                (*n).to_owned(),
                Tensor::zeros(*s, DType::F16, &Device::Cpu).unwrap(),
            )
        })
        .collect();
    candle_core::safetensors::save(&tensors, path).unwrap();
}

#[test]
fn other_families_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");
    let sdxl = dir.path().join("xl.safetensors");
    write_header_only(
        &sdxl,
        &[
            ("model.diffusion_model.input_blocks.0.0.weight", &[4, 4, 3, 3]),
            ("model.diffusion_model.label_emb.0.0.weight", &[4, 4]),
            (
                "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight",
                &[4],
            ),
            ("conditioner.embedders.1.model.ln_final.weight", &[4]),
        ],
    );
    assert_bad_input(&generate(&sdxl, &out, &[]), "this is an SDXL checkpoint");
    let o = easel(&["info", sdxl.to_str().unwrap(), "--no-hash"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("family:        SDXL"));

    let sd2 = dir.path().join("v2.safetensors");
    write_header_only(
        &sd2,
        &[
            ("model.diffusion_model.input_blocks.0.0.weight", &[4, 4, 3, 3]),
            ("cond_stage_model.model.ln_final.weight", &[4]),
        ],
    );
    assert_bad_input(&generate(&sd2, &out, &[]), "SD 2.x");

    let lora = dir.path().join("style.safetensors");
    write_header_only(
        &lora,
        &[(
            "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight",
            &[4, 4],
        )],
    );
    assert_bad_input(&generate(&lora, &out, &[]), "this is a LoRA");
}

#[test]
fn bad_settings_are_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");
    let m = model_path();
    assert_bad_input(&generate(&m, &out, &["--width", "65"]), "not a multiple of 8");
    assert_bad_input(&generate(&m, &out, &["--steps", "0"]), "steps must be at least 1");
    let o = generate(&m, &out, &["--sampler", "Euler b"]);
    assert_bad_input(&o, "Euler a");
    assert!(stderr(&o).contains("DPM++ 2M"));
    assert_bad_input(&generate(&m, &out, &["--schedule", "Fancy"]), "Karras");
    assert_bad_input(
        &generate(&m, &out, &["--width", "8192", "--height", "8192"]),
        "GiB",
    );
    assert_bad_input(&generate(&m, &out, &["--clip-skip", "9"]), "clip skip");
    assert_bad_input(&generate(&m, &out, &["--rng", "quantum"]), "gpu, cpu or nv");
    assert_bad_input(
        &generate(&m, &dir.path().join("missing/o.png"), &[]),
        "does not exist",
    );
    assert!(!out.exists());
}

#[test]
fn ctrl_c_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("long.png");
    let child = Command::new(env!("CARGO_BIN_EXE_easel"))
        .args([
            "generate",
            "--model",
            model_path().to_str().unwrap(),
            "--prompt",
            "x",
            "--width",
            "128",
            "--height",
            "128",
            "--steps",
            "1000",
            "--out",
            out.to_str().unwrap(),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let started = std::time::Instant::now();
    let o = child.wait_with_output().unwrap();
    assert!(
        started.elapsed().as_secs() < 20,
        "stopping took {:?}",
        started.elapsed()
    );
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(stderr(&o).contains("cancelled"), "{}", stderr(&o));
    assert!(!out.exists());
}

fn img2img_fixture(name: &str) -> String {
    fixtures()
        .join("ref")
        .join("img2img")
        .join(name)
        .to_str()
        .unwrap()
        .to_owned()
}

#[test]
fn inpaint_from_the_command_line_keeps_the_unmasked_pixels_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("inpaint.png");
    let (init, mask) = (img2img_fixture("init.png"), img2img_fixture("mask.png"));
    let o = generate(
        &model_path(),
        &out,
        &[
            "--init",
            &init,
            "--mask",
            &mask,
            "--strength",
            "0.8",
            "--masked-content",
            "latent-noise",
            "--mask-blur",
            "2",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = parameters_of(&out);
    for key in [
        "Denoising strength: 0.8",
        "Mask blur: 2",
        "Masked content: latent noise",
    ] {
        assert!(text.contains(key), "{key} missing in {text}");
    }
    let result = image::open(&out).unwrap().to_rgb8();
    let input = image::open(&init).unwrap().to_rgb8();
    let mask_img = image::open(&mask).unwrap().to_luma8();
    // Far outside the (blurred) mask the input comes back exactly; inside it does not.
    let (mut same, mut inside_changed) = (0, 0);
    for (x, y, m) in mask_img.enumerate_pixels() {
        let far = (x.saturating_sub(8)..(x + 9).min(64))
            .all(|xx| (y.saturating_sub(8)..(y + 9).min(64)).all(|yy| mask_img.get_pixel(xx, yy).0[0] == 0));
        if far {
            assert_eq!(result.get_pixel(x, y), input.get_pixel(x, y), "({x}, {y})");
            same += 1;
        } else if m.0[0] == 255 && result.get_pixel(x, y) != input.get_pixel(x, y) {
            inside_changed += 1;
        }
    }
    assert!(
        same > 1000 && inside_changed > 100,
        "{same} kept, {inside_changed} changed"
    );
    // Replaying with the same inputs gives the same bytes.
    let again = dir.path().join("again.png");
    let o = easel(&[
        "generate",
        "--model",
        model_path().to_str().unwrap(),
        "--params-from",
        out.to_str().unwrap(),
        "--init",
        &init,
        "--mask",
        &mask,
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        image::open(&again).unwrap().to_rgb8(),
        result,
        "replay from the infotext"
    );
}

#[test]
fn bad_img2img_input_is_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.png");
    let init = img2img_fixture("init.png");
    let o = generate(&model_path(), &out, &["--strength", "0.5"]);
    assert_bad_input(&o, "need --init");
    let o = generate(
        &model_path(),
        &out,
        &["--init", &init, "--mask", &img2img_fixture("init_96x80.png")],
    );
    assert_bad_input(&o, "must be the same size");
    let o = generate(
        &model_path(),
        &out,
        &["--init", &init, "--masked-content", "blank"],
    );
    assert_bad_input(&o, "latent-noise");
    let o = generate(&model_path(), &out, &["--init", &init, "--strength", "1.5"]);
    assert_bad_input(&o, "between 0 and 1");
    let broken = dir.path().join("broken.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let o = generate(&model_path(), &out, &["--init", broken.to_str().unwrap()]);
    assert_bad_input(&o, "broken.png");
    let o = generate(&model_path(), &out, &["--init", "/nonexistent/photo.jpg"]);
    assert_bad_input(&o, "photo.jpg");
    assert!(!out.exists());
}

#[test]
fn lora_tags_and_prompt_editing_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let loras = fixtures().join("models").join("loras");
    let loras = loras.to_str().unwrap();
    let run = |name: &str, prompt: &str| {
        let out = dir.path().join(name);
        let o = generate(&model_path(), &out, &["--prompt", prompt, "--lora-dir", loras]);
        (o, out)
    };
    let pixels = |p: &Path| image::open(p).unwrap().to_rgb8();
    let (o, plain) = run("plain.png", "a red barn");
    assert!(o.status.success(), "{}", stderr(&o));
    let (o, styled) = run("styled.png", "a red barn <lora:tiny_style:0.8>");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(pixels(&plain), pixels(&styled), "the LoRA changes the image");
    let text = parameters_of(&styled);
    assert!(text.starts_with("a red barn <lora:tiny_style:0.8>\n"), "{text}");
    assert!(
        text.contains("Lora hashes: \"tiny_style: a0fe62f04d03\""),
        "{text}"
    );
    // The same LoRA at weight 0 is the plain image again (merging from the base weights).
    let (o, zero) = run("zero.png", "a red barn <lora:tiny_style:0>");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(pixels(&plain), pixels(&zero));
    // A partially matching LoRA works and says what it skipped.
    let (o, _) = run("partial.png", "a red barn <lora:tiny_partial:1>");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("tiny_partial") && stderr(&o).contains("match nothing"),
        "{}",
        stderr(&o)
    );
    // Prompt editing: the switch gives a third image.
    let (o, edited) = run("edited.png", "[a red barn:a blue lake:1]");
    assert!(o.status.success(), "{}", stderr(&o));
    let (o, lake) = run("lake.png", "a blue lake");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(pixels(&edited), pixels(&plain));
    assert_ne!(pixels(&edited), pixels(&lake));
    // Bad LoRAs are clear messages.
    let (o, _) = run("x.png", "a <lora:no_such_lora:1>");
    assert_bad_input(&o, "no_such_lora");
    let (o, _) = run("x.png", "a <lora:tiny_sdxl_like:1>");
    assert_bad_input(&o, "SDXL");
    let (o, _) = run("x.png", "a <lora:tiny_style:strong>");
    assert_bad_input(&o, "not a number");
}

#[test]
fn jpeg_and_webp_outputs_carry_a1111_exif_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let jpg = dir.path().join("cabin.jpg");
    let o = generate(&model_path(), &jpg, &["--sampler", "Euler"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let webp = dir.path().join("cabin.webp");
    let o = generate(&model_path(), &webp, &["--sampler", "Euler", "--format", "webp"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read(&jpg).unwrap().starts_with(&[0xff, 0xd8, 0xff]));
    assert!(std::fs::read(&webp).unwrap().starts_with(b"RIFF"));
    let mut infotexts = Vec::new();
    for path in [&jpg, &webp] {
        assert_eq!(image::open(path).unwrap().to_rgb8().dimensions(), (64, 64));
        let o = easel(&["png-info", "--json", path.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(json["generator"], "Easel");
        assert_eq!(json["seed"], 42);
        assert_eq!(json["sampler"], "Euler");
        assert_eq!(json["model"], "tiny-sd15");
        infotexts.push(json["infotext"].as_str().unwrap().to_owned());
    }
    assert_eq!(infotexts[0], infotexts[1]);

    // Replaying the JPEG writes a PNG with the same infotext.
    let replay = dir.path().join("replay.png");
    let o = easel(&[
        "generate",
        "--model",
        model_path().to_str().unwrap(),
        "--params-from",
        jpg.to_str().unwrap(),
        "--out",
        replay.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(parameters_of(&replay), infotexts[0]);

    let o = generate(&model_path(), &dir.path().join("x.png"), &["--format", "jpeg"]);
    assert_bad_input(&o, "names a PNG file but --format is jpeg");
    let o = generate(&model_path(), &dir.path().join("x.gif"), &["--format", "gif"]);
    assert_bad_input(&o, "unknown --format 'gif'; use png, jpeg or webp");
}

#[test]
fn controlnet_units_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let control = fixtures().join("models/controlnet/tiny-control.safetensors");
    let control = control.to_str().unwrap();
    let hint = fixtures().join("ref/controlnet/hint_a.png");
    let hint = hint.to_str().unwrap();
    let out = dir.path().join("controlled.png");
    let o = generate(
        &model_path(),
        &out,
        &[
            "--control",
            control,
            "--control-image",
            hint,
            "--control-weight",
            "0.8",
            "--control-mode",
            "control",
            "--control-end",
            "0.5",
            "--control-resize",
            "just-resize",
            "--control",
            control,
            "--control-image",
            hint,
            "--control-preprocessor",
            "canny",
            "--canny-low",
            "50",
            "--canny-high",
            "150",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = parameters_of(&out);
    let units = easel::infotext::controlnet::read(&easel::infotext::parse(&text).unwrap().extra);
    assert_eq!(units.len(), 2, "{text}");
    assert!(units[0].model.starts_with("tiny-control ["), "{text}");
    assert_eq!(
        (
            units[0].weight,
            units[0].guidance_end,
            units[0].control_mode.as_str(),
            units[0].resize_mode.as_str()
        ),
        (0.8, 0.5, "ControlNet is more important", "Just Resize")
    );
    assert_eq!(
        (
            units[1].module.as_str(),
            units[1].threshold_a,
            units[1].threshold_b
        ),
        ("canny", 50.0, 150.0)
    );
    // The control changes the picture.
    let plain = dir.path().join("plain.png");
    let o = generate(&model_path(), &plain, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(
        image::open(&out).unwrap().to_rgb8().into_raw(),
        image::open(&plain).unwrap().to_rgb8().into_raw()
    );
    // Mistakes are one clear line.
    let bad = dir.path().join("bad.png");
    assert_bad_input(
        &generate(
            &model_path(),
            &bad,
            &["--control-weight", "0.5", "--control", control],
        ),
        "must come after the --control",
    );
    assert_bad_input(
        &generate(&model_path(), &bad, &["--control", control]),
        "has no control image",
    );
    assert_bad_input(
        &generate(
            &model_path(),
            &bad,
            &[
                "--control",
                control,
                "--control-image",
                hint,
                "--control-start",
                "0.9",
                "--control-end",
                "0.2",
            ],
        ),
        "after its end",
    );
    assert_bad_input(
        &generate(
            &model_path(),
            &bad,
            &[
                "--control",
                model_path().to_str().unwrap(),
                "--control-image",
                hint,
            ],
        ),
        "not a ControlNet",
    );
}

#[test]
fn controlnet_units_replay_from_an_infotext() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cn_dir = data.join("controlnet");
    std::fs::create_dir_all(&cn_dir).unwrap();
    for f in ["tiny-control.safetensors", "tiny-control.yaml"] {
        std::fs::copy(fixtures().join("models/controlnet").join(f), cn_dir.join(f)).unwrap();
    }
    let hint = fixtures().join("ref/controlnet/hint_a.png");
    let hint = hint.to_str().unwrap();
    let model = model_path();
    let run = |args: &[&str]| {
        let mut full = vec![
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--width",
            "64",
            "--height",
            "64",
            "--steps",
            "3",
        ];
        full.extend_from_slice(args);
        Command::new(env!("CARGO_BIN_EXE_easel"))
            .args(&full)
            .env("EASEL_DATA_DIR", &data)
            .env("EASEL_CACHE_DIR", std::env::temp_dir().join("easel-test-cache"))
            .output()
            .unwrap()
    };
    let first = dir.path().join("first.png");
    let control = cn_dir.join("tiny-control.safetensors");
    let o = run(&[
        "--prompt",
        "a house",
        "--seed",
        "9",
        "--out",
        first.to_str().unwrap(),
        "--control",
        control.to_str().unwrap(),
        "--control-image",
        hint,
        "--control-preprocessor",
        "canny",
        "--canny-low",
        "60",
        "--control-weight",
        "0.7",
        "--control-mode",
        "prompt",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Replaying with the same control image gives the same picture and the same unit.
    let again = dir.path().join("again.png");
    let o = run(&[
        "--params-from",
        first.to_str().unwrap(),
        "--control-image",
        hint,
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        image::open(&first).unwrap().to_rgb8().into_raw(),
        image::open(&again).unwrap().to_rgb8().into_raw()
    );
    let unit = |p: &Path| {
        easel::infotext::controlnet::read(&easel::infotext::parse(&parameters_of(p)).unwrap().extra)
    };
    assert_eq!(unit(&first), unit(&again));
    // Without the control image the replay says so; without the model, where it looked.
    assert_bad_input(
        &run(&[
            "--params-from",
            first.to_str().unwrap(),
            "--out",
            dir.path().join("x.png").to_str().unwrap(),
        ]),
        "has no control image",
    );
    std::fs::remove_file(&control).unwrap();
    assert_bad_input(
        &run(&[
            "--params-from",
            first.to_str().unwrap(),
            "--control-image",
            hint,
            "--out",
            dir.path().join("y.png").to_str().unwrap(),
        ]),
        "which is not in",
    );
}

#[test]
fn taesd_decode_from_the_command_line_writes_a1111s_key_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let approx = fixtures().join("models").join("vae-approx");
    let out = dir.path().join("fast.png");
    let o = generate(
        &model_path(),
        &out,
        &[
            "--vae-decoder",
            "taesd",
            "--vae-approx-dir",
            approx.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = parameters_of(&out);
    assert!(text.contains("VAE Decoder: TAESD"), "{text}");
    // Replaying the infotext decodes with TAESD again: the same pixels.
    let again = dir.path().join("again.png");
    let o = easel(&[
        "generate",
        "--model",
        model_path().to_str().unwrap(),
        "--params-from",
        out.to_str().unwrap(),
        "--vae-approx-dir",
        approx.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        image::open(&out).unwrap().to_rgb8().into_raw(),
        image::open(&again).unwrap().to_rgb8().into_raw()
    );
    // No decoder where Easel looks, and an unknown name: one clear line each.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = generate(
        &model_path(),
        &dir.path().join("x.png"),
        &[
            "--vae-decoder",
            "taesd",
            "--vae-approx-dir",
            empty.to_str().unwrap(),
        ],
    );
    assert_bad_input(&o, "no TAESD decoder found");
    let o = generate(
        &model_path(),
        &dir.path().join("y.png"),
        &["--vae-decoder", "tiny"],
    );
    assert_bad_input(&o, "unknown --vae-decoder 'tiny'");
}

#[test]
fn taesd_encode_of_the_init_image_writes_a1111s_key_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let approx = fixtures().join("models").join("vae-approx");
    let approx = approx.to_str().unwrap();
    let init = img2img_fixture("init.png");
    let img2img = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "--init",
            init.as_str(),
            "--strength",
            "0.6",
            "--vae-approx-dir",
            approx,
        ];
        args.extend_from_slice(extra);
        generate(&model_path(), out, &args)
    };
    let (full, fast) = (dir.path().join("full.png"), dir.path().join("fast.png"));
    let o = img2img(&full, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!parameters_of(&full).contains("VAE Encoder"));
    let o = img2img(&fast, &["--vae-encoder", "taesd"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = parameters_of(&fast);
    assert!(text.contains("VAE Encoder: TAESD"), "{text}");
    assert!(!text.contains("VAE Decoder"), "{text}");
    let pixels = |p: &Path| image::open(p).unwrap().to_rgb8().into_raw();
    assert_ne!(pixels(&full), pixels(&fast), "the TAESD encoder changed nothing");
    // The infotext brings the TAESD encode back: the same pixels.
    let again = dir.path().join("again.png");
    let o = easel(&[
        "generate",
        "--model",
        model_path().to_str().unwrap(),
        "--params-from",
        fast.to_str().unwrap(),
        "--init",
        &init,
        "--vae-approx-dir",
        approx,
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(pixels(&fast), pixels(&again));
    // Text to image has nothing to encode: no key, and no encoder needed.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let txt = dir.path().join("txt.png");
    let o = generate(
        &model_path(),
        &txt,
        &[
            "--vae-encoder",
            "taesd",
            "--vae-approx-dir",
            empty.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!parameters_of(&txt).contains("VAE Encoder"));
    // Without an encoder file, or with an unknown name: one clear line each.
    let o = generate(
        &model_path(),
        &dir.path().join("x.png"),
        &[
            "--init",
            &init,
            "--vae-encoder",
            "taesd",
            "--vae-approx-dir",
            empty.to_str().unwrap(),
        ],
    );
    assert_bad_input(&o, "no TAESD encoder found");
    assert_bad_input(
        &generate(
            &model_path(),
            &dir.path().join("y.png"),
            &["--vae-encoder", "tiny"],
        ),
        "unknown --vae-encoder 'tiny'",
    );
}

#[test]
fn soft_inpainting_from_the_command_line_writes_a1111s_keys_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let (init, mask) = (img2img_fixture("init.png"), img2img_fixture("mask.png"));
    let base = ["--init", &init, "--mask", &mask, "--strength", "0.75"];
    let soft = dir.path().join("soft.png");
    let mut args = base.to_vec();
    args.extend([
        "--soft-inpainting",
        "--soft-schedule-bias",
        "1.5",
        "--soft-difference-contrast",
        "3",
    ]);
    let o = generate(&model_path(), &soft, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = parameters_of(&soft);
    for key in [
        "Soft inpainting enabled: True",
        "Soft inpainting schedule bias: 1.5",
        "Soft inpainting preservation strength: 0.5",
        "Soft inpainting transition contrast boost: 4",
        "Soft inpainting mask influence: 0",
        "Soft inpainting difference threshold: 0.5",
        "Soft inpainting difference contrast: 3",
    ] {
        assert!(text.contains(key), "{key} missing in {text}");
    }
    let binary = dir.path().join("binary.png");
    let o = generate(&model_path(), &binary, &base);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!parameters_of(&binary).contains("Soft inpainting"));
    let soft_rgb = image::open(&soft).unwrap().to_rgb8();
    assert_ne!(soft_rgb, image::open(&binary).unwrap().to_rgb8());
    // The infotext alone turns it back on with the same values.
    let again = dir.path().join("again.png");
    let o = easel(&[
        "generate",
        "--model",
        model_path().to_str().unwrap(),
        "--params-from",
        soft.to_str().unwrap(),
        "--init",
        &init,
        "--mask",
        &mask,
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        image::open(&again).unwrap().to_rgb8(),
        soft_rgb,
        "replay from the infotext"
    );
}

#[test]
fn bad_soft_inpainting_input_is_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.png");
    let (init, mask) = (img2img_fixture("init.png"), img2img_fixture("mask.png"));
    let o = generate(&model_path(), &out, &["--soft-inpainting"]);
    assert_bad_input(&o, "need --init");
    let o = generate(&model_path(), &out, &["--init", &init, "--soft-inpainting"]);
    assert_bad_input(&o, "--soft-inpainting needs --mask");
    let o = generate(
        &model_path(),
        &out,
        &["--init", &init, "--mask", &mask, "--soft-preservation", "1"],
    );
    assert_bad_input(&o, "--soft-preservation needs --soft-inpainting");
    let o = generate(
        &model_path(),
        &out,
        &[
            "--init",
            &init,
            "--mask",
            &mask,
            "--soft-inpainting",
            "--soft-mask-influence",
            "1.5",
        ],
    );
    assert_bad_input(&o, "(--soft-mask-influence) 1.5 must be between 0 and 1");
    let o = generate(
        &model_path(),
        &out,
        &[
            "--init",
            &init,
            "--mask",
            &mask,
            "--soft-inpainting",
            "--soft-difference-threshold",
            "0",
        ],
    );
    assert_bad_input(&o, "(--soft-difference-threshold) 0 must be above 0");
    let o = generate(
        &model_path(),
        &out,
        &[
            "--init",
            &init,
            "--mask",
            &mask,
            "--soft-inpainting",
            "--soft-schedule-bias",
            "NaN",
        ],
    );
    assert_bad_input(&o, "--soft-schedule-bias");
    assert!(!out.exists());
}
