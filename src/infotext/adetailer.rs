//! ADetailer's infotext keys (Bing-su/adetailer v24.8.0, `adetailer/args.py` `ALL_ARGS` and
//! `ADetailerArgs.extra_params`): the keys a fix writes, in ADetailer's order, defaults dropped
//! as it drops them.

use super::a1111::py_number;
use crate::request::{FixSettings, FixTarget};

/// The ADetailer release whose keys and defaults Easel follows (the one current with A1111 1.10).
pub const ADETAILER_VERSION: &str = "24.8.0";

/// `ADetailer model`.
pub const MODEL: &str = "ADetailer model";
/// `ADetailer prompt` (only when set).
pub const PROMPT: &str = "ADetailer prompt";
/// `ADetailer negative prompt` (only when set).
pub const NEGATIVE_PROMPT: &str = "ADetailer negative prompt";
/// `ADetailer confidence`.
pub const CONFIDENCE: &str = "ADetailer confidence";
/// `ADetailer dilate erode`.
pub const DILATE_ERODE: &str = "ADetailer dilate erode";
/// `ADetailer mask blur`.
pub const MASK_BLUR: &str = "ADetailer mask blur";
/// `ADetailer denoising strength`.
pub const DENOISING_STRENGTH: &str = "ADetailer denoising strength";
/// `ADetailer inpaint only masked` (dropped with the padding when false).
pub const INPAINT_ONLY_MASKED: &str = "ADetailer inpaint only masked";
/// `ADetailer inpaint padding`.
pub const INPAINT_PADDING: &str = "ADetailer inpaint padding";
/// `ADetailer version`.
pub const VERSION: &str = "ADetailer version";

/// ADetailer's name of the detector Easel runs for `target`.
pub fn model_name(target: FixTarget) -> &'static str {
    match target {
        FixTarget::Faces => "mediapipe_face_short",
    }
}

/// Writes a fix's keys into `extra` (replacing earlier ADetailer keys).
pub fn write(extra: &mut Vec<(String, String)>, fix: &FixSettings) {
    extra.retain(|(k, _)| !k.starts_with("ADetailer "));
    let mut put = |k: &str, v: String| extra.push((k.to_owned(), v));
    put(MODEL, model_name(fix.target).to_owned());
    if !fix.prompt.is_empty() {
        put(PROMPT, fix.prompt.clone());
    }
    if !fix.negative_prompt.is_empty() {
        put(NEGATIVE_PROMPT, fix.negative_prompt.clone());
    }
    put(CONFIDENCE, py_number(fix.confidence));
    put(DILATE_ERODE, fix.dilate_erode.to_string());
    put(MASK_BLUR, fix.mask_blur.to_string());
    put(DENOISING_STRENGTH, py_number(fix.strength));
    if fix.only_masked {
        put(INPAINT_ONLY_MASKED, "True".into());
        put(INPAINT_PADDING, fix.padding.to_string());
    }
    put(VERSION, ADETAILER_VERSION.into());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_write_adetailers_keys_in_its_order() {
        let mut extra = vec![("ADetailer model".to_owned(), "old".to_owned())];
        write(&mut extra, &FixSettings::default());
        let line: Vec<String> = extra.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        assert_eq!(
            line.join(", "),
            "ADetailer model: mediapipe_face_short, ADetailer confidence: 0.5, \
             ADetailer dilate erode: 4, ADetailer mask blur: 4, ADetailer denoising strength: 0.4, \
             ADetailer inpaint only masked: True, ADetailer inpaint padding: 32, ADetailer version: 24.8.0"
        );
        let mut extra = Vec::new();
        write(
            &mut extra,
            &FixSettings {
                only_masked: false,
                prompt: "a smiling face".into(),
                ..FixSettings::default()
            },
        );
        assert!(extra.iter().any(|(k, v)| k == PROMPT && v == "a smiling face"));
        assert!(
            !extra
                .iter()
                .any(|(k, _)| k == INPAINT_PADDING || k == INPAINT_ONLY_MASKED)
        );
    }
}
