//! The one home of A1111 infotext (the `parameters` text in PNGs): every key Easel writes, how it
//! is rendered and parsed, the files that carry it (PNG, JPEG, WebP), and other tools' metadata
//! (ComfyUI, InvokeAI, NovelAI, SwarmUI, Fooocus, …) read into one [`ImageMetadata`].

mod a1111;
pub mod adetailer;
pub mod containers;
pub mod controlnet;
pub mod exif;
pub mod foreign;
mod generators;
pub mod metadata;
pub mod output;
pub mod png_chunks;
pub mod read;
pub mod stealth;

pub use a1111::{RawInfotext, parse, py_number, render};
pub use metadata::{ImageMetadata, LoraRef, ReplayProblem};
pub use output::{OutputFormat, write_image_with_parameters};
pub use read::{ImageRead, MetadataError, read_image_bytes, read_image_file, read_infotext};

use crate::params::{GenerationParams, TCD_DEFAULT_GAMMA, UniPcOptions, UniPcVariant};
use crate::request::{Img2ImgSettings, InpaintArea, MaskedContent, SoftInpainting};

/// The PNG text keyword A1111 stores the infotext under.
pub const PARAMETERS_KEYWORD: &str = png_chunks::PARAMETERS_KEYWORD;

/// `Lora hashes`: `name: short hash` of each LoRA a job merged, in prompt order.
pub const LORA_HASHES: &str = "Lora hashes";
/// `VAE hash`: the first 10 hex digits of the sha256 of the standalone VAE file a job used.
pub const VAE_HASH: &str = "VAE hash";
/// `VAE`: the file name (with extension) of the standalone VAE file a job used.
pub const VAE_NAME: &str = "VAE";
/// `TI hashes`: `name: short hash` of each textual-inversion embedding a job's prompts used.
pub const TI_HASHES: &str = "TI hashes";
/// `Conditional mask weight` (inpainting models only).
pub const CONDITIONAL_MASK_WEIGHT: &str = "Conditional mask weight";
/// `Mask blur` in pixels.
pub const MASK_BLUR: &str = "Mask blur";
/// `Mask mode: Inpaint not masked` when the mask is inverted.
pub const MASK_MODE: &str = "Mask mode";
/// `Masked content`: fill, original, latent noise or latent nothing.
pub const MASKED_CONTENT: &str = "Masked content";
/// `Inpaint area: Only masked` (absent for the whole picture).
pub const INPAINT_AREA: &str = "Inpaint area";
/// `Masked area padding` in pixels, with "Only masked".
pub const MASKED_AREA_PADDING: &str = "Masked area padding";

/// A1111's key for a decode method other than the full VAE (`VAE Decoder: TAESD`); absent for a full decode.
pub const VAE_DECODER: &str = "VAE Decoder";
/// A1111's "VAE type for encode" key, written by its img2img when the init image was encoded by
/// something other than the full VAE.
pub const VAE_ENCODER: &str = "VAE Encoder";
/// A1111's value of [`VAE_DECODER`] and [`VAE_ENCODER`] for TAESD.
pub const VAE_TAESD: &str = "TAESD";

/// `Beta schedule alpha` (A1111's `beta_dist_alpha` setting), written with the Beta schedule.
pub const BETA_SCHEDULE_ALPHA: &str = "Beta schedule alpha";
/// `Beta schedule beta` (A1111's `beta_dist_beta` setting), written with the Beta schedule.
pub const BETA_SCHEDULE_BETA: &str = "Beta schedule beta";

/// `UniPC variant` (A1111's `uni_pc_variant`: bh1, bh2).
pub const UNI_PC_VARIANT: &str = "UniPC variant";
/// `UniPC skip type` (A1111's `uni_pc_skip_type`; Easel runs `time_uniform`).
pub const UNI_PC_SKIP_TYPE: &str = "UniPC skip type";
/// `UniPC order` (A1111's `uni_pc_order`).
pub const UNI_PC_ORDER: &str = "UniPC order";
/// `UniPC lower order final` (A1111's `uni_pc_lower_order_final`).
pub const UNI_PC_LOWER_ORDER_FINAL: &str = "UniPC lower order final";
/// `TCD gamma`: TCD's stochasticity (diffusers' `eta`), written when it is not 0.3.
pub const TCD_GAMMA: &str = "TCD gamma";

/// `Soft inpainting enabled: True` (A1111's built-in soft-inpainting extension).
pub const SOFT_INPAINTING_ENABLED: &str = "Soft inpainting enabled";
/// Soft inpainting's six parameters as the extension names them in the infotext, in the order of
/// [`soft_values`].
pub const SOFT_INPAINTING_KEYS: [&str; 6] = [
    "Soft inpainting schedule bias",
    "Soft inpainting preservation strength",
    "Soft inpainting transition contrast boost",
    "Soft inpainting mask influence",
    "Soft inpainting difference threshold",
    "Soft inpainting difference contrast",
];

/// The six soft-inpainting values in [`SOFT_INPAINTING_KEYS`] order.
fn soft_values(s: &mut SoftInpainting) -> [&mut f32; 6] {
    [
        &mut s.schedule_bias,
        &mut s.preservation,
        &mut s.transition_boost,
        &mut s.mask_influence,
        &mut s.difference_threshold,
        &mut s.difference_contrast,
    ]
}

/// The img2img and inpainting keys Easel reads and writes.
pub const IMG2IMG_KEYS: [&str; 13] = [
    CONDITIONAL_MASK_WEIGHT,
    MASK_BLUR,
    MASK_MODE,
    MASKED_CONTENT,
    INPAINT_AREA,
    MASKED_AREA_PADDING,
    SOFT_INPAINTING_ENABLED,
    SOFT_INPAINTING_KEYS[0],
    SOFT_INPAINTING_KEYS[1],
    SOFT_INPAINTING_KEYS[2],
    SOFT_INPAINTING_KEYS[3],
    SOFT_INPAINTING_KEYS[4],
    SOFT_INPAINTING_KEYS[5],
];

/// The `Version:` value Easel writes.
pub fn version() -> String {
    format!("easel {}", env!("CARGO_PKG_VERSION"))
}

/// Sets `key` in the extra keys (replacing an earlier value, keeping its place).
fn set(extra: &mut Vec<(String, String)>, key: &str, value: String) {
    match extra.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value,
        None => extra.push((key.to_owned(), value)),
    }
}

/// The Beta schedule's (α, β) from the extra keys; A1111's defaults (0.6, 0.6) where a key is
/// missing, not a positive number, or unreadable.
pub fn read_beta_schedule(extra: &[(String, String)]) -> (f64, f64) {
    let get = |key: &str, default: f64| {
        extra
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v > 0.0)
            .unwrap_or(default)
    };
    (get(BETA_SCHEDULE_ALPHA, 0.6), get(BETA_SCHEDULE_BETA, 0.6))
}

/// Writes `key: TAESD` ([`VAE_DECODER`] or [`VAE_ENCODER`]) when TAESD did that part, as A1111
/// does for a method other than "Full", and removes the key when the full VAE did.
pub fn write_vae_method(extra: &mut Vec<(String, String)>, key: &str, taesd: bool) {
    if taesd {
        set(extra, key, VAE_TAESD.to_owned());
    } else {
        extra.retain(|(k, _)| k != key);
    }
}

/// Whether an infotext's extra keys say TAESD did the part named by `key` ([`VAE_DECODER`] or
/// [`VAE_ENCODER`]).
pub fn reads_taesd(extra: &[(String, String)], key: &str) -> bool {
    extra
        .iter()
        .any(|(k, v)| k == key && v.trim().eq_ignore_ascii_case(VAE_TAESD))
}

/// A1111's UniPC settings from the extra keys its infotext uses (A1111's defaults where absent).
///
/// # Errors
/// A sentence naming a value Easel does not run (`vary_coeff`, a skip type other than
/// `time_uniform`, an order outside 1…10) or cannot read.
pub fn read_unipc_options(extra: &[(String, String)]) -> Result<UniPcOptions, String> {
    let get = |key: &str| extra.iter().find(|(k, _)| k == key).map(|(_, v)| v.trim());
    let mut options = UniPcOptions::default();
    if let Some(v) = get(UNI_PC_VARIANT) {
        options.variant = match v {
            "bh1" => UniPcVariant::Bh1,
            "bh2" => UniPcVariant::Bh2,
            _ => {
                return Err(format!(
                    "{UNI_PC_VARIANT} '{v}' is not run by Easel (bh1 and bh2 are)"
                ));
            }
        };
    }
    if let Some(v) = get(UNI_PC_SKIP_TYPE)
        && v != "time_uniform"
    {
        return Err(format!(
            "{UNI_PC_SKIP_TYPE} '{v}' is not run by Easel (time_uniform, A1111's default, is)"
        ));
    }
    if let Some(v) = get(UNI_PC_ORDER) {
        // A1111 stores the slider value, which may read as a float (`3.0`).
        options.order = v
            .parse::<f64>()
            .ok()
            .filter(|o| o.fract() == 0.0 && (1.0..=10.0).contains(o))
            .map(|o| o as usize)
            .ok_or_else(|| format!("{UNI_PC_ORDER} '{v}' is not a whole number from 1 to 10"))?;
    }
    if let Some(v) = get(UNI_PC_LOWER_ORDER_FINAL) {
        options.lower_order_final = match v {
            "True" | "true" => true,
            "False" | "false" => false,
            _ => return Err(format!("{UNI_PC_LOWER_ORDER_FINAL} '{v}' is not True or False")),
        };
    }
    Ok(options)
}

/// TCD's gamma from the `TCD gamma` key: 0.3 where it is absent.
///
/// # Errors
/// A sentence when the value is not a number from 0 to 1.
pub fn read_tcd_gamma(extra: &[(String, String)]) -> Result<f64, String> {
    match extra.iter().find(|(k, _)| k == TCD_GAMMA) {
        None => Ok(TCD_DEFAULT_GAMMA),
        Some((_, v)) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|g| (0.0..=1.0).contains(g))
            .ok_or_else(|| format!("{TCD_GAMMA} '{v}' is not a number from 0 to 1")),
    }
}

/// Writes the Beta schedule keys as A1111's `KDiffusionSampler.get_sigmas` does (Python float
/// text) when `beta` is `Some`, and removes them otherwise.
pub fn write_beta_schedule(extra: &mut Vec<(String, String)>, beta: Option<(f64, f64)>) {
    let py_float = |v: f64| {
        if v.fract() == 0.0 && v.abs() < 1e16 {
            format!("{v:.1}")
        } else {
            format!("{v}")
        }
    };
    match beta {
        Some((alpha, beta)) => {
            set(extra, BETA_SCHEDULE_ALPHA, py_float(alpha));
            set(extra, BETA_SCHEDULE_BETA, py_float(beta));
        }
        None => extra.retain(|(k, _)| k != BETA_SCHEDULE_ALPHA && k != BETA_SCHEDULE_BETA),
    }
}

/// Writes `name: hash` pairs under `key` (A1111's `Lora hashes` / `TI hashes` form), or removes
/// the key when there are none.
pub fn set_hashes(params: &mut GenerationParams, key: &str, pairs: &[(String, String)]) {
    params.extra.retain(|(k, _)| k != key);
    if !pairs.is_empty() {
        let text = pairs
            .iter()
            .map(|(name, hash)| format!("{name}: {hash}"))
            .collect::<Vec<_>>()
            .join(", ");
        params.extra.push((key.to_owned(), text));
    }
}

/// Adds A1111's img2img/inpaint keys to `extra` (replacing earlier values). Without a mask there
/// are none; `Conditional mask weight` only for inpainting models.
pub fn write_img2img(
    extra: &mut Vec<(String, String)>,
    settings: &Img2ImgSettings,
    masked: bool,
    inpainting_model: bool,
) {
    if !masked {
        return;
    }
    if inpainting_model {
        set(extra, CONDITIONAL_MASK_WEIGHT, py_number(settings.mask_weight));
    }
    set(extra, MASK_BLUR, settings.mask_blur.to_string());
    if settings.invert_mask {
        set(extra, MASK_MODE, "Inpaint not masked".into());
    }
    set(extra, MASKED_CONTENT, settings.masked_content.label().into());
    if settings.inpaint_area == InpaintArea::OnlyMasked {
        set(extra, INPAINT_AREA, settings.inpaint_area.label().into());
        set(extra, MASKED_AREA_PADDING, settings.padding.to_string());
    }
    if let Some(mut soft) = settings.soft {
        set(extra, SOFT_INPAINTING_ENABLED, "True".into());
        for (key, v) in SOFT_INPAINTING_KEYS.iter().zip(soft_values(&mut soft)) {
            set(extra, key, py_number(*v));
        }
    }
}

/// Removes the keys [`write_img2img`] writes (before a txt2img job reuses the params).
pub fn strip_img2img(extra: &mut Vec<(String, String)>) {
    extra.retain(|(k, _)| !IMG2IMG_KEYS.contains(&k.as_str()));
}

/// Reads the keys [`write_img2img`] writes back from an infotext's extra keys; keys that are
/// missing keep A1111's defaults.
pub fn read_img2img(extra: &[(String, String)]) -> Img2ImgSettings {
    let get = |k: &str| extra.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let mut s = Img2ImgSettings::default();
    if let Some(v) = get(MASK_BLUR).and_then(|v| v.trim().parse().ok()) {
        s.mask_blur = v;
    }
    if let Some(v) = get(MASKED_CONTENT).and_then(MaskedContent::from_name) {
        s.masked_content = v;
    }
    if let Some(v) = get(INPAINT_AREA).and_then(InpaintArea::from_name) {
        s.inpaint_area = v;
    }
    if let Some(v) = get(MASKED_AREA_PADDING).and_then(|v| v.trim().parse().ok()) {
        s.padding = v;
    }
    if let Some(v) = get(CONDITIONAL_MASK_WEIGHT).and_then(|v| v.trim().parse().ok()) {
        s.mask_weight = v;
    }
    s.invert_mask = get(MASK_MODE) == Some("Inpaint not masked");
    if get(SOFT_INPAINTING_ENABLED).is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        let mut soft = SoftInpainting::default();
        for (key, v) in SOFT_INPAINTING_KEYS.iter().zip(soft_values(&mut soft)) {
            if let Some(x) = get(key).and_then(|x| x.trim().parse::<f32>().ok()) {
                *v = x;
            }
        }
        s.soft = Some(soft);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unipc_options_and_tcd_gamma_from_extra_keys() {
        let kv = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
        };
        assert_eq!(read_unipc_options(&[]), Ok(UniPcOptions::default()));
        let o = read_unipc_options(&kv(&[
            (UNI_PC_VARIANT, "bh2"),
            (UNI_PC_ORDER, "2.0"),
            (UNI_PC_LOWER_ORDER_FINAL, "False"),
            (UNI_PC_SKIP_TYPE, "time_uniform"),
        ]))
        .unwrap();
        assert_eq!(
            o,
            UniPcOptions {
                variant: UniPcVariant::Bh2,
                order: 2,
                lower_order_final: false
            }
        );
        for bad in [
            (UNI_PC_VARIANT, "vary_coeff"),
            (UNI_PC_SKIP_TYPE, "logSNR"),
            (UNI_PC_ORDER, "0"),
            (UNI_PC_ORDER, "2.5"),
        ] {
            assert!(read_unipc_options(&kv(&[bad])).is_err(), "{bad:?}");
        }
        assert_eq!(read_tcd_gamma(&[]), Ok(0.3));
        assert_eq!(read_tcd_gamma(&kv(&[(TCD_GAMMA, "0.5")])), Ok(0.5));
        assert!(read_tcd_gamma(&kv(&[(TCD_GAMMA, "1.5")])).is_err());
    }

    #[test]
    fn img2img_keys_round_trip() {
        let s = Img2ImgSettings {
            mask_blur: 8,
            masked_content: MaskedContent::LatentNoise,
            inpaint_area: InpaintArea::OnlyMasked,
            padding: 24,
            invert_mask: true,
            mask_weight: 0.5,
            soft: Some(SoftInpainting {
                schedule_bias: 1.5,
                difference_contrast: 3.25,
                ..SoftInpainting::default()
            }),
            ..Img2ImgSettings::default()
        };
        let mut extra = Vec::new();
        write_img2img(&mut extra, &s, true, true);
        let back = read_img2img(&extra);
        assert_eq!(back, s);
        let has = |k: &str, v: &str| extra.iter().any(|(a, b)| a == k && b == v);
        assert!(has("Soft inpainting enabled", "True"), "{extra:?}");
        assert!(has("Soft inpainting schedule bias", "1.5"), "{extra:?}");
        assert!(has("Soft inpainting preservation strength", "0.5"), "{extra:?}");
        assert!(has("Soft inpainting transition contrast boost", "4"), "{extra:?}");
        assert!(has("Soft inpainting difference contrast", "3.25"), "{extra:?}");
        strip_img2img(&mut extra);
        assert!(extra.is_empty(), "{extra:?}");
        // Without the enabled key the values are ignored, as A1111's paste does.
        let lone = vec![("Soft inpainting schedule bias".to_owned(), "2".to_owned())];
        assert_eq!(read_img2img(&lone).soft, None);
        let mut plain = Vec::new();
        write_img2img(&mut plain, &s, false, false);
        assert!(plain.is_empty());
    }
}
