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
/// `ADetailer ControlNet model` (only with a ControlNet).
pub const CONTROLNET_MODEL: &str = "ADetailer ControlNet model";
/// `ADetailer ControlNet module`.
pub const CONTROLNET_MODULE: &str = "ADetailer ControlNet module";
/// `ADetailer ControlNet weight`.
pub const CONTROLNET_WEIGHT: &str = "ADetailer ControlNet weight";
/// `ADetailer ControlNet guidance start`.
pub const CONTROLNET_GUIDANCE_START: &str = "ADetailer ControlNet guidance start";
/// `ADetailer ControlNet guidance end`.
pub const CONTROLNET_GUIDANCE_END: &str = "ADetailer ControlNet guidance end";

/// ADetailer's name of the detector Easel runs for `target`. Hands: ADetailer's hand model is a
/// YOLO network (`hand_yolov8n.pt`) that Easel does not ship; the key names the detector that
/// ran, in ADetailer's `mediapipe_*` style, so the infotext does not claim a model it did not use:
/// MediaPipe Hands with its full-size networks, the default a fix runs (a unit test in
/// `detect::hands` keeps the two in step).
pub fn model_name(target: FixTarget) -> &'static str {
    match target {
        FixTarget::Faces => "mediapipe_face_short",
        FixTarget::Hands => "mediapipe_hands_full",
    }
}

/// ADetailer's suffix of tab `n` (0-based): none for the first, then " 2nd", " 3rd", " 4th" ….
fn suffix(n: usize) -> String {
    match n {
        0 => String::new(),
        1 => " 2nd".into(),
        2 => " 3rd".into(),
        n => format!(" {}th", n + 1),
    }
}

/// Writes a fix's keys into `extra` (replacing earlier ADetailer keys): one set per target, the
/// later ones suffixed as ADetailer suffixes its later tabs, then the version; `control_label`
/// is the `name [hash]` of the fix's ControlNet, when it has one.
pub fn write(extra: &mut Vec<(String, String)>, fix: &FixSettings, control_label: Option<&str>) {
    extra.retain(|(k, _)| !k.starts_with("ADetailer "));
    let targets = std::iter::once(fix.target).chain(fix.more_targets.iter().copied());
    for (n, target) in targets.enumerate() {
        let tab = suffix(n);
        let mut put = |k: &str, v: String| extra.push((format!("{k}{tab}"), v));
        put(MODEL, model_name(target).to_owned());
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
        if let (Some(unit), Some(label)) = (&fix.control, control_label) {
            put(CONTROLNET_MODEL, label.to_owned());
            put(CONTROLNET_MODULE, unit.preprocessor.name().to_owned());
            put(CONTROLNET_WEIGHT, py_number(unit.weight as f32));
            put(CONTROLNET_GUIDANCE_START, py_number(unit.start as f32));
            put(CONTROLNET_GUIDANCE_END, py_number(unit.end as f32));
        }
    }
    extra.push((VERSION.to_owned(), ADETAILER_VERSION.into()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_write_adetailers_keys_in_its_order() {
        let mut extra = vec![("ADetailer model".to_owned(), "old".to_owned())];
        write(&mut extra, &FixSettings::default(), None);
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
            None,
        );
        assert!(extra.iter().any(|(k, v)| k == PROMPT && v == "a smiling face"));
        assert!(
            !extra
                .iter()
                .any(|(k, _)| k == INPAINT_PADDING || k == INPAINT_ONLY_MASKED)
        );
        let mut extra = Vec::new();
        let hands = FixSettings {
            target: FixTarget::Hands,
            ..FixSettings::default()
        };
        write(&mut extra, &hands, None);
        assert_eq!(extra[0], (MODEL.to_owned(), "mediapipe_hands_full".to_owned()));
        assert_eq!(extra.len(), 8);
        // Faces then hands: ADetailer's 1st and 2nd tab.
        let both = FixSettings {
            more_targets: vec![FixTarget::Hands],
            ..FixSettings::default()
        };
        let mut extra = Vec::new();
        write(&mut extra, &both, None);
        let keys: Vec<&str> = extra.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(extra.len(), 15);
        assert_eq!(keys[7], "ADetailer model 2nd");
        assert_eq!(extra[7].1, "mediapipe_hands_full");
        assert_eq!(keys[13], "ADetailer inpaint padding 2nd");
        assert_eq!(keys[14], VERSION);
        // A ControlNet in the fix: its keys after the inpaint ones, before the version.
        let mut unit = crate::request::ControlUnit::new("control_v11p_sd15_inpaint.safetensors");
        unit.preprocessor = crate::imaging::ops::HintPreprocessor::InpaintOnly;
        let fix = FixSettings {
            control: Some(unit),
            ..FixSettings::default()
        };
        let mut extra = Vec::new();
        write(&mut extra, &fix, Some("control_v11p_sd15_inpaint [ebff9138]"));
        let line: Vec<String> = extra.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        assert!(
            line.join(", ").ends_with(
                "ADetailer ControlNet model: control_v11p_sd15_inpaint [ebff9138], ADetailer ControlNet module: inpaint_only, \
                 ADetailer ControlNet weight: 1, ADetailer ControlNet guidance start: 0, ADetailer ControlNet guidance end: 1, \
                 ADetailer version: 24.8.0"
            ),
            "{line:?}"
        );
    }
}
