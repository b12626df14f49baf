//! sd-webui-controlnet's infotext keys: `ControlNet N: "Module: …, Model: name [hash], Weight: …, …"`,
//! one per enabled unit, written with the unit's `serialize` (Python `str` of each value) and read
//! back for replay.

use super::set;

/// The key of unit `index`.
pub fn key(index: usize) -> String {
    format!("ControlNet {index}")
}

/// Python's `str(float)`: shortest round-trip digits, with `.0` on whole numbers.
pub fn py_float(x: f64) -> String {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e16 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}

/// The values one unit writes.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlInfo {
    /// Preprocessor module name.
    pub module: String,
    /// `name [hash]` (the extension's model list entry: the file stem and A1111's short old hash).
    pub model: String,
    /// Weight.
    pub weight: f64,
    /// "Just Resize", "Crop and Resize" or "Resize and Fill".
    pub resize_mode: String,
    /// Preprocessor resolution.
    pub processor_res: u32,
    /// Threshold A.
    pub threshold_a: f64,
    /// Threshold B.
    pub threshold_b: f64,
    /// Guidance start.
    pub guidance_start: f64,
    /// Guidance end.
    pub guidance_end: f64,
    /// Pixel perfect.
    pub pixel_perfect: bool,
    /// "Balanced", "My prompt is more important" or "ControlNet is more important".
    pub control_mode: String,
}

impl ControlInfo {
    /// The extension's `ControlNetUnit.serialize()`.
    pub fn serialize(&self) -> String {
        let py_bool = |b: bool| if b { "True" } else { "False" };
        [
            ("Module", self.module.clone()),
            ("Model", self.model.clone()),
            ("Weight", py_float(self.weight)),
            ("Resize Mode", self.resize_mode.clone()),
            ("Processor Res", self.processor_res.to_string()),
            ("Threshold A", py_float(self.threshold_a)),
            ("Threshold B", py_float(self.threshold_b)),
            ("Guidance Start", py_float(self.guidance_start)),
            ("Guidance End", py_float(self.guidance_end)),
            ("Pixel Perfect", py_bool(self.pixel_perfect).to_owned()),
            ("Control Mode", self.control_mode.clone()),
        ]
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
    }

    /// The extension's `ControlNetUnit.parse`: `Field: value` items split at commas. `None` when a
    /// field is missing or malformed.
    pub fn parse(text: &str) -> Option<Self> {
        let mut fields = std::collections::HashMap::new();
        for item in text.split(',') {
            let (k, v) = item.trim().split_once(": ")?;
            fields.insert(k.trim().to_owned(), v.trim().to_owned());
        }
        let text_of = |k: &str| fields.get(k).cloned();
        let num = |k: &str| fields.get(k)?.parse::<f64>().ok().filter(|v| v.is_finite());
        Some(Self {
            module: text_of("Module")?,
            model: text_of("Model")?,
            weight: num("Weight")?,
            resize_mode: text_of("Resize Mode")?,
            processor_res: u32::try_from(num("Processor Res")? as i64).unwrap_or(512),
            threshold_a: num("Threshold A")?,
            threshold_b: num("Threshold B")?,
            guidance_start: num("Guidance Start")?,
            guidance_end: num("Guidance End")?,
            pixel_perfect: text_of("Pixel Perfect")? == "True",
            control_mode: text_of("Control Mode")?,
        })
    }

    /// The model's file stem, without the ` [hash]` suffix.
    pub fn model_name(&self) -> &str {
        self.model
            .rsplit_once(" [")
            .map_or(self.model.as_str(), |(name, _)| name)
    }
}

/// Writes one key per unit, replacing the `ControlNet N` keys already there.
pub fn write(extra: &mut Vec<(String, String)>, units: &[ControlInfo]) {
    strip(extra);
    for (i, u) in units.iter().enumerate() {
        set(extra, &key(i), u.serialize());
    }
}

/// Removes every `ControlNet N` key.
pub fn strip(extra: &mut Vec<(String, String)>) {
    extra.retain(|(k, _)| {
        k.strip_prefix("ControlNet ")
            .is_none_or(|n| n.parse::<usize>().is_err())
    });
}

/// The units an infotext's extra keys describe, in order; malformed ones are skipped.
pub fn read(extra: &[(String, String)]) -> Vec<ControlInfo> {
    let mut units: Vec<(usize, ControlInfo)> = extra
        .iter()
        .filter_map(|(k, v)| {
            let n = k.strip_prefix("ControlNet ")?.parse::<usize>().ok()?;
            Some((n, ControlInfo::parse(v)?))
        })
        .collect();
    units.sort_by_key(|(n, _)| *n);
    units.into_iter().map(|(_, u)| u).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canny() -> ControlInfo {
        ControlInfo {
            module: "canny".into(),
            model: "control_v11p_sd15_canny [d14c016b]".into(),
            weight: 1.0,
            resize_mode: "Crop and Resize".into(),
            processor_res: 512,
            threshold_a: 100.0,
            threshold_b: 200.0,
            guidance_start: 0.0,
            guidance_end: 1.0,
            pixel_perfect: false,
            control_mode: "Balanced".into(),
        }
    }

    #[test]
    fn writes_what_the_extension_writes() {
        assert_eq!(
            canny().serialize(),
            "Module: canny, Model: control_v11p_sd15_canny [d14c016b], Weight: 1.0, Resize Mode: Crop and Resize, \
             Processor Res: 512, Threshold A: 100.0, Threshold B: 200.0, Guidance Start: 0.0, Guidance End: 1.0, \
             Pixel Perfect: False, Control Mode: Balanced"
        );
        let mut extra = vec![("Version".to_owned(), "v1.10.1".to_owned())];
        write(&mut extra, &[canny()]);
        let mut p = crate::params::GenerationParams {
            extra,
            ..Default::default()
        };
        p.prompt = "a cat".into();
        let text = super::super::render(&p, "Automatic", "v1.10.1");
        assert!(
            text.contains(
                "ControlNet 0: \"Module: canny, Model: control_v11p_sd15_canny [d14c016b], Weight: 1.0,"
            ),
            "{text}"
        );
    }

    #[test]
    fn round_trips_through_an_infotext() {
        let mut u = canny();
        u.weight = 0.65;
        u.guidance_end = 0.8;
        u.pixel_perfect = true;
        u.control_mode = "ControlNet is more important".into();
        let mut extra = Vec::new();
        write(&mut extra, &[canny(), u.clone()]);
        let p = crate::params::GenerationParams {
            prompt: "x".into(),
            extra,
            ..Default::default()
        };
        let text = super::super::render(&p, "Automatic", "v1.10.1");
        let back = super::super::parse(&text).unwrap();
        let units = read(&back.extra);
        assert_eq!(units, vec![canny(), u]);
        assert_eq!(units[0].model_name(), "control_v11p_sd15_canny");
        assert!(ControlInfo::parse("Module: canny, Weight").is_none());
    }
}
