//! Textual inversion against A1111 v1.10 semantics on the tiny text encoder: token placement (n
//! slots per embedding, moved whole to the next chunk), vectors replacing token embeddings, emphasis
//! on them, `TI hashes`, and files that are skipped with a reason.
//! References come from tests/fixtures/make_ti_fixtures.py.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use candle_core::{DType, Device};
use common::{Quiet, fixtures, max_abs, max_abs_diff, model_path};
use easel::diffusion::conditioning::encode_prompt_with;
use easel::diffusion::embeddings::EmbeddingDb;
use easel::diffusion::model::SdModel;
use easel::diffusion::pipeline;
use easel::params::GenerationParams;
use easel::prompt::{ClipTokenizer, EmbeddingLookup, chunk_prompt_with};

#[test]
fn embeddings_match_a1111() {
    let dir = fixtures().join("ref").join("ti");
    let refs = candle_core::safetensors::load(dir.join("ref.safetensors"), &Device::Cpu).unwrap();
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let tok = ClipTokenizer::bundled().unwrap();
    let mut model = SdModel::open(&model_path(), &Device::Cpu, DType::F32).unwrap();
    let folder = fixtures().join("models").join("embeddings");
    let db = EmbeddingDb::load(&[folder], &tok, model.clip.config().hidden_size);
    assert_eq!(db.names(), ["tiny_neg", "tiny_star"]);
    assert_eq!(db.skipped.len(), 1, "{:?}", db.skipped);
    assert!(
        db.skipped[0].contains("sdxl_style") && db.skipped[0].contains("SDXL"),
        "{:?}",
        db.skipped
    );
    let mut worst = 0f32;
    for case in index["cases"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        let chunks = chunk_prompt_with(&tok, prompt, Some(&db as &dyn EmbeddingLookup)).unwrap();
        let want_ids: Vec<Vec<u32>> = serde_json::from_value(case["token_ids"].clone()).unwrap();
        let got_ids: Vec<Vec<u32>> = chunks.iter().map(|c| c.ids.clone()).collect();
        assert_eq!(got_ids, want_ids, "{prompt}: token ids");
        let want_fixes: Vec<(usize, usize, String)> = case["fixes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["chunk"].as_u64().unwrap() as usize,
                    f["offset"].as_u64().unwrap() as usize,
                    f["name"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let mut got_fixes: Vec<(usize, usize, String)> = Vec::new();
        for (c, ch) in chunks.iter().enumerate() {
            for (off, i) in &ch.fixes {
                got_fixes.push((c, *off, db.get(*i).unwrap().name.clone()));
            }
        }
        assert_eq!(got_fixes, want_fixes, "{prompt}: embedding positions");
        let mut used = Vec::new();
        let cond =
            encode_prompt_with(&model.clip, &tok, prompt, 1, &Device::Cpu, Some(&db), &mut used).unwrap();
        let want = &refs[case["cond"].as_str().unwrap()];
        let rel = max_abs_diff(&cond, want) / max_abs(want);
        println!("{prompt:60.60} {} chunk(s), rel diff {rel:.2e}", chunks.len());
        assert!(rel < 1e-5, "{prompt}: relative difference {rel}");
        worst = worst.max(rel);
        // In order of use, as A1111's `TI hashes` lists them.
        let want_used: Vec<&str> = case["ti_hashes_infotext"]
            .as_str()
            .unwrap()
            .split(", ")
            .filter(|s| !s.is_empty())
            .map(|s| s.split(": ").next().unwrap())
            .collect();
        assert_eq!(used, want_used, "{prompt}");
    }
    println!("worst relative difference {worst:.2e}");

    // TI hashes in the infotext, as A1111 writes them.
    model.embeddings = Arc::new(db);
    let p = GenerationParams {
        prompt: "a photo, tiny_neg".into(),
        negative_prompt: "tiny_star".into(),
        steps: 2,
        width: 64,
        height: 64,
        ..GenerationParams::default()
    };
    let out = pipeline::generate(&model, &tok, &p, None, &mut Quiet).unwrap();
    let text = &out[0].infotext;
    assert!(
        text.contains("TI hashes: \"tiny_neg: 69437678e973, tiny_star: f219e827cbf5\""),
        "{text}"
    );
}

#[test]
fn pickles_are_listed_not_executed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("evil.pt"), b"\x80\x02cos\nsystem\n.").unwrap();
    std::fs::write(dir.path().join("broken.safetensors"), b"garbage").unwrap();
    let tok = ClipTokenizer::bundled().unwrap();
    let db = EmbeddingDb::load(&[dir.path().to_path_buf()], &tok, 32);
    assert!(db.is_empty());
    let all = db.skipped.join("\n");
    assert!(all.contains("evil") && all.contains("never executes"), "{all}");
    assert!(all.contains("broken"), "{all}");
}
