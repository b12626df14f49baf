//! Hostile files and prompts through the `easel` command line: each class of attack ends with exit
//! 0 or 2, a short message, no panic, and within seconds (bounds loose enough for a busy CI box).

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{fixtures, model_path};

/// Runs `easel` with `args`, killing it (and failing) if it runs past `limit`.
fn easel_within(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_easel"))
        .args(args)
        .env("EASEL_CACHE_DIR", std::env::temp_dir().join("easel-test-cache"))
        .env("EASEL_DATA_DIR", std::env::temp_dir().join("easel-hostile-data"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read both pipes while waiting, so a large output cannot fill a pipe and stall the child.
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::Builder::new()
            .name("pipe".into())
            .spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                bytes
            })
            .unwrap()
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("easel {args:?} ran past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn easel(args: &[&str]) -> Output {
    easel_within(args, Duration::from_mins(2))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit 2 with `needle` in a message of at most two lines, and no panic.
fn assert_refused(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(!err.contains("panicked") && !err.contains("overflowed"), "{err}");
    assert!(err.trim().lines().count() <= 2, "{err}");
}

/// A 1×1 PNG with `chunk` (type and data) before its image data.
fn png_with_chunk(kind: [u8; 4], data: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, 1, 1);
    encoder.set_color(png::ColorType::Grayscale);
    let mut writer = encoder.write_header().unwrap();
    writer.write_chunk(png::chunk::ChunkType(kind), data).unwrap();
    writer.write_image_data(&[0]).unwrap();
    writer.finish().unwrap();
    bytes
}

/// A PNG whose `parameters` is `text` in a plain tEXt chunk.
fn png_with_parameters(text: &str) -> Vec<u8> {
    let mut data = b"parameters\0".to_vec();
    data.extend_from_slice(text.as_bytes());
    png_with_chunk(*b"tEXt", &data)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_compressed_text_bomb_is_refused_quickly() {
    let dir = tempfile::tempdir().unwrap();
    // 256 MiB of text in about 256 KiB.
    let mut data = b"parameters\0\0".to_vec();
    data.extend(miniz_oxide::deflate::compress_to_vec_zlib(
        &vec![b'a'; 256 << 20],
        9,
    ));
    let bomb = write(dir.path(), "bomb.png", &png_with_chunk(*b"zTXt", &data));
    let path = bomb.to_str().unwrap();
    let o = easel_within(&["png-info", path], Duration::from_secs(30));
    assert_refused(&o, "inflates to more than");
    let out = dir.path().join("x.png");
    let o = easel_within(
        &[
            "generate",
            "--model",
            model_path().to_str().unwrap(),
            "--params-from",
            path,
            "--out",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    assert_refused(&o, "inflates to more than");
}

#[test]
fn a_long_params_line_and_control_characters_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "a prompt \u{1b}[31mred\nSteps: 2, Seed: 1, Note: {}",
        "word ".repeat(200_000)
    );
    let png = write(dir.path(), "long.png", &png_with_parameters(&text));
    let o = easel_within(&["png-info", png.to_str().unwrap()], Duration::from_secs(30));
    assert!(o.status.success(), "{}", stderr(&o));
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(!shown.contains('\u{1b}'), "escape sequences are shown escaped");
    assert!(shown.contains("\\u{1b}[31mred"), "{}", &shown[..80]);
}

#[test]
fn a_reader_that_goes_away_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    // More than a pipe buffer, so the writer sees the closed pipe.
    let png = write(
        dir.path(),
        "big.png",
        &png_with_parameters(&format!(
            "{}\nSteps: 2, Seed: 1, Sampler: Euler",
            "x".repeat(1 << 20)
        )),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_easel"))
        .args(["png-info", png.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(child.stdout.take()); // like `| head -c 16`
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

#[cfg(unix)]
#[test]
fn pipes_named_like_models_or_images_are_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = |name: &str| {
        let path = dir.path().join(name);
        let made = Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(made.success());
        path
    };
    let model = fifo("model.safetensors");
    let image = fifo("image.png");
    let o = easel_within(&["info", model.to_str().unwrap()], Duration::from_secs(30));
    assert_refused(&o, "not a regular file");
    let o = easel_within(&["png-info", image.to_str().unwrap()], Duration::from_secs(30));
    assert_refused(&o, "not a regular file");
}

/// A copy of the tiny model with `yaml` beside it (its CLIP folder made absolute).
fn model_with_yaml(dir: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    let model = dir.join("m.safetensors");
    std::fs::copy(model_path(), &model).unwrap();
    let yaml = std::fs::read_to_string(fixtures().join("models/tiny-sd15.yaml")).unwrap();
    let clip = fixtures().join("models/tiny-clip");
    let yaml = yaml.replace("version: tiny-clip", &format!("version: {}", clip.display()));
    std::fs::write(dir.join("m.yaml"), edit(yaml)).unwrap();
    model
}

fn generate_tiny(model: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--width",
        "64",
        "--height",
        "64",
        "--steps",
        "1",
        "--seed",
        "1",
    ];
    if !extra.contains(&"--prompt") {
        args.extend(["--prompt", "a barn"]);
    }
    args.extend_from_slice(extra);
    easel(&args)
}

#[test]
fn hostile_yaml_sidecars_are_refused_with_the_value_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");
    let mut bomb =
        String::from("model:\n  params:\n    a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for w in names.windows(2) {
        let refs = vec![format!("*{}", w[0]); 9].join(", ");
        bomb += &["    ", w[1], ": &", w[1], " [", &refs, "]\n"].concat();
    }
    let model = model_with_yaml(dir.path(), |_| bomb.clone());
    assert_refused(&generate_tiny(&model, &out, &[]), "expands to more than");
    for (from, to, says) in [
        ("timesteps: 1000", "timesteps: 0", "timesteps is 0"),
        (
            "timesteps: 1000",
            "timesteps: 10000000000",
            "timesteps is 10000000000",
        ),
        ("num_heads: 2", "num_heads: 3", "3 attention heads"),
        (
            "model_channels: 32",
            "model_channels: -1",
            "model_channels must be a whole number",
        ),
    ] {
        let model = model_with_yaml(dir.path(), |y| {
            assert!(y.contains(from), "{from}");
            y.replacen(from, to, 1)
        });
        assert_refused(&generate_tiny(&model, &out, &[]), says);
    }
    assert!(!out.exists(), "no output after a refusal");
}

#[test]
fn deeply_nested_prompts_never_overflow_the_stack() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");
    for open in ["[a:", "[a|", "(a:"] {
        let prompt = open.repeat(4000) + "x";
        let o = generate_tiny(&model_path(), &out, &["--prompt", &prompt]);
        let err = stderr(&o);
        assert!(matches!(o.status.code(), Some(0 | 2)), "{open}: {err}");
        assert!(!err.contains("overflowed") && !err.contains("panicked"), "{err}");
    }
}

#[test]
fn overflowing_weights_and_guidance_are_named_instead_of_saving_a_black_image() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");
    // A1111's weight syntax takes only digits and dots, so overflow needs hundreds of digits.
    let huge = format!("a (fox:{})", "9".repeat(400));
    let o = generate_tiny(&model_path(), &out, &["--prompt", &huge]);
    assert_refused(&o, "the prompt's text conditioning holds NaN or infinite values");
    let o = generate_tiny(&model_path(), &out, &["--negative", &huge]);
    assert_refused(&o, "the negative prompt's text conditioning");
    assert_refused(
        &generate_tiny(&model_path(), &out, &["--cfg", "1e30"]),
        "CFG scale",
    );
    // A LoRA weight that overflows only in the UNet: the first step names it.
    let loras = fixtures().join("models/loras");
    let o = generate_tiny(
        &model_path(),
        &out,
        &[
            "--prompt",
            "a fox <lora:tiny_style:0:1e30>",
            "--lora-dir",
            loras.to_str().unwrap(),
        ],
    );
    assert_refused(
        &o,
        "the UNet's prediction at step 1/1 holds NaN or infinite values",
    );
    assert!(!out.exists(), "no output after a refusal");
    // A large but representable weight is the user's choice: it runs.
    let o = generate_tiny(&model_path(), &out, &["--prompt", "a (fox:60)", "--cfg", "30"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(out.exists());
}

#[test]
fn messages_echo_at_most_a_kilobyte_of_a_huge_value() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");
    let huge = "x".repeat(100_000);
    let tag = format!("<lora:{huge}>");
    for extra in [
        ["--sampler", huge.as_str()],
        ["--schedule", huge.as_str()],
        ["--prompt", tag.as_str()],
    ] {
        let o = generate_tiny(&model_path(), &out, &extra);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{}", &err[..err.len().min(300)]);
        assert!(err.len() < 2000, "{} bytes of stderr for {}", err.len(), extra[0]);
        assert!(
            err.contains("characters left out"),
            "{}",
            &err[..err.len().min(300)]
        );
    }
}

#[test]
fn impossible_batches_and_outputs_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");
    let o = generate_tiny(
        &model_path(),
        &out,
        &["--batch-count", "100000", "--batch-size", "2"],
    );
    assert_refused(&o, "too many images");
    // A folder as --out: refused at once, with one message.
    let o = easel_within(
        &[
            "generate",
            "--model",
            model_path().to_str().unwrap(),
            "--prompt",
            "x",
            "--out",
            dir.path().to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    assert_refused(&o, "is a folder");
}

#[test]
fn a_tag_naming_a_pickled_lora_says_why_it_is_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let loras = dir.path().join("loras");
    std::fs::create_dir(&loras).unwrap();
    std::fs::write(loras.join("style.pt"), b"not read").unwrap();
    let out = dir.path().join("o.png");
    let o = generate_tiny(
        &model_path(),
        &out,
        &[
            "--prompt",
            "a barn <lora:style:1>",
            "--lora-dir",
            loras.to_str().unwrap(),
        ],
    );
    assert_refused(&o, "pickles");
}

/// A JPEG SOI, `segments` (marker, body), then EOI: enough for the metadata reader.
fn jpeg_with(segments: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![0xff, 0xd8];
    for (marker, body) in segments {
        out.extend([0xff, *marker]);
        out.extend(u16::try_from(body.len() + 2).unwrap().to_be_bytes());
        out.extend_from_slice(body);
    }
    out.extend([0xff, 0xd9]);
    out
}

/// An EXIF APP1 body whose IFD0 has `entries` ImageDescription entries, all naming one value of
/// `value_len` bytes, and an Exif IFD pointer to itself.
fn exif_with_repeated_entries(entries: u16, value_len: u32) -> Vec<u8> {
    let mut tiff = b"MM\0*".to_vec();
    tiff.extend(8u32.to_be_bytes());
    tiff.extend((entries + 1).to_be_bytes());
    let value_at = 8 + 2 + 12 * (u32::from(entries) + 1) + 4;
    for _ in 0..entries {
        tiff.extend(0x010eu16.to_be_bytes());
        tiff.extend(2u16.to_be_bytes());
        tiff.extend(value_len.to_be_bytes());
        tiff.extend(value_at.to_be_bytes());
    }
    tiff.extend(0x8769u16.to_be_bytes());
    tiff.extend(4u16.to_be_bytes());
    tiff.extend(1u32.to_be_bytes());
    tiff.extend(8u32.to_be_bytes());
    tiff.extend(0u32.to_be_bytes());
    tiff.extend(std::iter::repeat_n(b'a', value_len as usize));
    let mut body = b"Exif\0\0".to_vec();
    body.extend(tiff);
    body
}

#[test]
fn hostile_jpeg_webp_and_avif_metadata_ends_quickly() {
    let dir = tempfile::tempdir().unwrap();
    // 200 APP1 segments of 4500 entries each naming the same 4 KB value (a 3.6 GB read if each
    // entry were decoded), XMP that opens elements it never closes, and a long COM.
    let mut segments = vec![(0xe1, exif_with_repeated_entries(4500, 4000)); 200];
    let mut xmp = b"http://ns.adobe.com/xap/1.0/\0".to_vec();
    xmp.extend(b"a:parameters".repeat(3000));
    xmp.extend(b"<exif:UserComment>".repeat(1000));
    segments.push((0xe1, xmp));
    segments.push((0xfe, vec![b'{'; 60_000]));
    let jpg = write(dir.path(), "bomb.jpg", &jpeg_with(&segments));
    let o = easel_within(
        &["png-info", "--json", jpg.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert_refused(&o, "carries no generation metadata");

    // WebP chunks that claim 4 GiB, and a truncated EXIF chunk.
    let mut webp = b"RIFF\xff\xff\xff\xffWEBPEXIF\x20\0\0\0MM\0*\0\0\0\x08\xff\xff".to_vec();
    webp.extend(b"XMP \xff\xff\xff\xff<x:xmpmeta>");
    let webp = write(dir.path(), "bomb.webp", &webp);
    let o = easel_within(&["png-info", webp.to_str().unwrap()], Duration::from_secs(30));
    assert_refused(&o, "carries no generation metadata");

    // AVIF brand with an EXIF signature and nothing after it.
    let avif = write(dir.path(), "cut.avif", b"\0\0\0\x14ftypavif\0\0\0\0Exif\0\0MM\0*");
    let o = easel_within(&["png-info", avif.to_str().unwrap()], Duration::from_secs(30));
    assert_refused(&o, "carries no generation metadata");
}

#[test]
fn pixel_bombs_and_json_bombs_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    // A PNG that declares 60000 × 60000 pixels in a tiny file: the stealth search refuses to
    // decode it rather than allocating 14 GB.
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, 60_000, 60_000);
    encoder.set_color(png::ColorType::Rgba);
    let mut writer = encoder.write_header().unwrap();
    let mut row = vec![0u8; 1 + 60_000 * 4];
    row[0] = 0;
    let idat = miniz_oxide::deflate::compress_to_vec_zlib(&row, 6);
    writer.write_chunk(png::chunk::IDAT, &idat).unwrap();
    drop(writer);
    bytes.extend([0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xae, 0x42, 0x60, 0x82]);
    let huge = write(dir.path(), "huge.png", &bytes);
    let o = easel_within(&["png-info", huge.to_str().unwrap()], Duration::from_secs(30));
    assert_refused(&o, "carries no generation metadata");

    // A megabyte of nested JSON, JSON with a million keys, in `parameters` and ComfyUI's `prompt`.
    let nested = "[".repeat(1 << 20);
    let mut wide = String::from("{");
    for i in 0..50_000 {
        wide.push_str(&["\"k", &i.to_string(), "\": {\"inputs\": {}}, "].concat());
    }
    wide.push_str("\"x\": 1}");
    for (name, keyword, text) in [
        ("nested.png", "parameters", &nested),
        ("wide.png", "parameters", &wide),
        ("nested-comfy.png", "prompt", &nested),
        ("wide-comfy.png", "prompt", &wide),
    ] {
        let mut data = keyword.as_bytes().to_vec();
        data.push(0);
        data.extend(text.as_bytes());
        let path = write(dir.path(), name, &png_with_chunk(*b"tEXt", &data));
        let o = easel_within(
            &["png-info", "--json", path.to_str().unwrap()],
            Duration::from_secs(30),
        );
        let err = stderr(&o);
        assert!(matches!(o.status.code(), Some(0 | 2)), "{name}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("overflowed"),
            "{name}: {err}"
        );
    }

    // Many thousands of small text chunks.
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, 1, 1);
    encoder.set_color(png::ColorType::Grayscale);
    let mut writer = encoder.write_header().unwrap();
    for i in 0..100_000 {
        writer
            .write_chunk(png::chunk::tEXt, format!("k{i}\0v").as_bytes())
            .unwrap();
    }
    writer.write_image_data(&[0]).unwrap();
    writer.finish().unwrap();
    let many = write(dir.path(), "many.png", &bytes);
    let o = easel_within(&["png-info", many.to_str().unwrap()], Duration::from_secs(30));
    assert_refused(&o, "carries no generation metadata");
}
