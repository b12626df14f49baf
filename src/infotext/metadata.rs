//! The generation settings read from an image, whichever tool wrote them: every field optional
//! (null for what the image does not state), sampler and schedule as A1111 names kept as text,
//! LoRAs, warnings; rendered as A1111 infotext, as JSON, or as Easel's [`GenerationParams`].

use std::fmt::Write as _;

use serde::Serialize;

use super::a1111::{self, py_number, quote};
use crate::params::{GenerationParams, RngSource, Sampler, Schedule};

/// A LoRA an image was made with.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct LoraRef {
    /// File stem or model name.
    pub name: String,
    /// Model weight, when stated.
    pub weight: Option<f32>,
    /// Hash as the tool wrote it (A1111: 12 hex digits), when stated.
    pub hash: Option<String>,
}

/// Generation settings read from an image's metadata.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImageMetadata {
    /// The tool that wrote it ("A1111", "Forge", "ComfyUI", "InvokeAI", "NovelAI", …).
    pub generator: String,
    /// Positive prompt.
    pub prompt: Option<String>,
    /// Negative prompt.
    pub negative_prompt: Option<String>,
    /// Sampling steps.
    pub steps: Option<u32>,
    /// Sampler, as an A1111 name where one matches, else as the tool wrote it.
    pub sampler: Option<String>,
    /// Schedule type, as an A1111 label where one matches, else as the tool wrote it.
    pub schedule: Option<String>,
    /// CFG scale.
    pub cfg_scale: Option<f32>,
    /// Seed.
    pub seed: Option<u64>,
    /// Width in pixels.
    pub width: Option<u32>,
    /// Height in pixels.
    pub height: Option<u32>,
    /// Checkpoint name.
    pub model: Option<String>,
    /// Checkpoint hash as the tool wrote it (A1111: 10 hex digits of the SHA-256).
    pub model_hash: Option<String>,
    /// img2img denoising strength.
    pub denoising_strength: Option<f32>,
    /// A1111 clip skip (1 = last layer).
    pub clip_skip: Option<u32>,
    /// LoRAs, in the order applied.
    pub loras: Vec<LoraRef>,
    /// Other settings as A1111 infotext keys and values, in order.
    pub extra: Vec<(String, String)>,
    /// The A1111 infotext exactly as stored, when the image held one.
    pub a1111_text: Option<String>,
    /// Where it was read from (`PNG text chunk 'parameters'`, `EXIF UserComment`, …).
    pub source: String,
    /// What could not be read or is not standard, one sentence each.
    pub warnings: Vec<String>,
}

/// Every sampler name A1111 v1.10 and Forge list (`sd_samplers_*.py`), for telling unknown names
/// from known ones Easel does not run yet; TCD is Forge's.
pub const A1111_SAMPLERS: [&str; 23] = [
    "DPM++ 2M",
    "DPM++ SDE",
    "DPM++ 2M SDE",
    "DPM++ 2M SDE Heun",
    "DPM++ 2S a",
    "DPM++ 3M SDE",
    "Euler a",
    "Euler",
    "LMS",
    "Heun",
    "DPM2",
    "DPM2 a",
    "DPM fast",
    "DPM adaptive",
    "Restart",
    "DDIM",
    "DDIM CFG++",
    "PLMS",
    "UniPC",
    "LCM",
    "TCD",
    "Euler CFG++",
    "Euler a CFG++",
];

/// A stated setting that Easel cannot replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayProblem {
    /// A sampler Easel does not run; the sentence says which.
    Sampler(String),
    /// A schedule type Easel does not run.
    Schedule(String),
    /// Anything else (an unknown RNG, an unreadable ENSD).
    Other(String),
}

impl std::fmt::Display for ReplayProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplayProblem::Sampler(s) | ReplayProblem::Schedule(s) | ReplayProblem::Other(s) => {
                f.write_str(s)
            }
        }
    }
}

/// The JSON form `easel png-info --json` prints.
#[derive(Serialize)]
struct JsonForm<'a> {
    generator: &'a str,
    prompt: Option<&'a str>,
    negative_prompt: Option<&'a str>,
    steps: Option<u32>,
    sampler: Option<&'a str>,
    schedule: Option<&'a str>,
    cfg_scale: Option<f32>,
    seed: Option<u64>,
    width: Option<u32>,
    height: Option<u32>,
    model: Option<&'a str>,
    model_hash: Option<&'a str>,
    denoising_strength: Option<f32>,
    clip_skip: Option<u32>,
    loras: &'a [LoraRef],
    infotext: String,
    warnings: &'a [String],
}

impl ImageMetadata {
    /// An empty result for `generator`, read from `source`.
    pub fn new(generator: &str, source: &str) -> Self {
        Self {
            generator: generator.to_owned(),
            source: source.to_owned(),
            ..Self::default()
        }
    }

    /// Whether any generation setting was read (a prompt alone counts).
    pub fn states_anything(&self) -> bool {
        self.prompt.as_deref().is_some_and(|p| !p.trim().is_empty())
            || self.steps.is_some()
            || self.seed.is_some()
            || self.sampler.is_some()
            || self.cfg_scale.is_some()
            || self.width.is_some()
            || self.model.is_some()
    }

    /// The value of an extra key.
    pub fn extra_value(&self, key: &str) -> Option<&str> {
        self.extra.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The settings as A1111 infotext: the stored text itself when the image held A1111
    /// infotext, else one written in A1111's form from the stated fields (LoRAs as
    /// `<lora:name:weight>` tags after the prompt, the tool under `Source`).
    pub fn infotext(&self) -> String {
        if let Some(text) = &self.a1111_text {
            return text.clone();
        }
        let mut prompt = self.prompt.clone().unwrap_or_default();
        for lora in &self.loras {
            if !prompt.contains(&format!("<lora:{}:", lora.name)) {
                let _ = write!(
                    prompt,
                    " <lora:{}:{}>",
                    lora.name,
                    py_number(lora.weight.unwrap_or(1.0))
                );
            }
        }
        let prompt = prompt.trim().to_owned();
        let mut fields: Vec<(String, String)> = Vec::new();
        let mut add = |key: &str, value: Option<String>| {
            if let Some(value) = value {
                fields.push((key.to_owned(), value));
            }
        };
        add("Steps", self.steps.map(|s| s.to_string()));
        add("Sampler", self.sampler.clone());
        add("Schedule type", self.schedule.clone());
        add("CFG scale", self.cfg_scale.map(py_number));
        add("Seed", self.seed.map(|s| s.to_string()));
        add(
            "Size",
            self.width.zip(self.height).map(|(w, h)| format!("{w}x{h}")),
        );
        add("Model hash", self.model_hash.clone());
        add("Model", self.model.clone());
        add("Denoising strength", self.denoising_strength.map(py_number));
        add(
            "Clip skip",
            self.clip_skip.filter(|&c| c > 1).map(|c| c.to_string()),
        );
        let hashes: Vec<String> = self
            .loras
            .iter()
            .filter_map(|l| Some(format!("{}: {}", l.name, l.hash.as_ref()?)))
            .collect();
        add("Lora hashes", (!hashes.is_empty()).then(|| hashes.join(", ")));
        for (key, value) in &self.extra {
            if !fields.iter().any(|(k, _)| k == key) {
                fields.push((key.clone(), value.clone()));
            }
        }
        if !fields.iter().any(|(k, _)| k == "Source") {
            fields.push(("Source".to_owned(), self.generator.clone()));
        }
        let line = fields
            .iter()
            .map(|(k, v)| format!("{k}: {}", quote(v)))
            .collect::<Vec<_>>()
            .join(", ");
        let mut text = prompt;
        if let Some(negative) = self.negative_prompt.as_deref().filter(|n| !n.trim().is_empty()) {
            text.push_str("\nNegative prompt: ");
            text.push_str(negative.trim());
        }
        text.push('\n');
        text.push_str(&line);
        text.trim().to_owned()
    }

    /// The JSON object `easel png-info --json` prints (keys in the documented order).
    pub fn to_json(&self) -> String {
        let form = JsonForm {
            generator: &self.generator,
            prompt: self.prompt.as_deref(),
            negative_prompt: self.negative_prompt.as_deref(),
            steps: self.steps,
            sampler: self.sampler.as_deref(),
            schedule: self.schedule.as_deref(),
            cfg_scale: self.cfg_scale,
            seed: self.seed,
            width: self.width,
            height: self.height,
            model: self.model.as_deref(),
            model_hash: self.model_hash.as_deref(),
            denoising_strength: self.denoising_strength,
            clip_skip: self.clip_skip,
            loras: &self.loras,
            infotext: self.infotext(),
            warnings: &self.warnings,
        };
        // Serialising plain strings, numbers and options cannot fail.
        serde_json::to_string_pretty(&form).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Easel's parameters for replaying the image: stated fields over the defaults. The second
    /// value lists settings Easel cannot honour (a sampler or schedule it does not run, an RNG it
    /// does not know); callers decide whether to go on without them.
    pub fn generation_params(&self) -> (GenerationParams, Vec<ReplayProblem>) {
        let mut p = GenerationParams::default();
        let mut problems = Vec::new();
        let from_a1111 = self.a1111_text.is_some();
        p.prompt = self.prompt.clone().unwrap_or_default();
        if !from_a1111 {
            for lora in &self.loras {
                if !p.prompt.contains(&format!("<lora:{}:", lora.name)) {
                    let weight = py_number(lora.weight.unwrap_or(1.0));
                    let _ = write!(p.prompt, " <lora:{}:{weight}>", lora.name);
                }
            }
            let trimmed = p.prompt.trim().to_owned();
            p.prompt = trimmed;
        }
        p.negative_prompt = self.negative_prompt.clone().unwrap_or_default();
        if let Some(v) = self.steps {
            p.steps = v;
        }
        if let Some(v) = self.cfg_scale {
            p.cfg_scale = v;
        }
        if let Some(v) = self.seed {
            p.seed = v;
        }
        if let Some(v) = self.width {
            p.width = v;
        }
        if let Some(v) = self.height {
            p.height = v;
        }
        if let Some(v) = self.clip_skip {
            p.clip_skip = v.max(1);
        }
        p.model_name.clone_from(&self.model);
        p.model_hash.clone_from(&self.model_hash);
        p.denoising_strength = self.denoising_strength;
        // A1111 without a Sampler key means its first sampler, DPM++ 2M.
        let sampler_name = self
            .sampler
            .clone()
            .or_else(|| from_a1111.then(|| Sampler::DpmPp2M.a1111_name().to_owned()));
        if let Some(name) = &sampler_name {
            match Sampler::from_name(name) {
                Ok(s) => p.sampler = s,
                Err(_) => problems.push(ReplayProblem::Sampler(format!(
                    "the sampler '{name}' is not one Easel runs yet ({})",
                    Sampler::ALL.map(Sampler::a1111_name).join(", ")
                ))),
            }
        }
        if let Some(label) = &self.schedule {
            match Schedule::from_name(label) {
                Ok(s) => p.schedule = s,
                Err(_) => problems.push(ReplayProblem::Schedule(format!(
                    "the schedule type '{label}' is not one Easel runs yet ({})",
                    Schedule::ALL.map(Schedule::a1111_name).join(", ")
                ))),
            }
        }
        if p.sampler.default_schedule() == Some(p.schedule) {
            p.schedule = Schedule::Automatic;
        }
        for (key, value) in &self.extra {
            match key.as_str() {
                "Version" => {}
                "RNG" => match RngSource::from_name(value) {
                    Ok(rng) => p.rng = rng,
                    Err(e) => problems.push(ReplayProblem::Other(e.to_string())),
                },
                "ENSD" => match value.trim().parse() {
                    Ok(v) => p.eta_noise_seed_delta = v,
                    Err(_) => problems.push(ReplayProblem::Other(format!(
                        "ENSD '{value}' is not a whole number"
                    ))),
                },
                _ => p.extra.push((key.clone(), value.clone())),
            }
        }
        if !from_a1111 && !p.extra.iter().any(|(k, _)| k == "Source") {
            p.extra.push(("Source".to_owned(), self.generator.clone()));
        }
        (p, problems)
    }

    /// Maps sampler and schedule names to A1111's where a known alias matches (old
    /// `DPM++ 2M Karras` names, ComfyUI names such as `euler_ancestral` + `karras` or
    /// `dpmpp_2m_sde_gpu_karras`), and warns about names that stay unknown.
    pub fn normalise_names(&mut self) {
        if let Some(name) = self.sampler.take() {
            let (sampler, schedule) = a1111_sampler_name(&name);
            if self.schedule.is_none() || schedule.is_some() && self.schedule.as_deref() == Some("Automatic")
            {
                self.schedule = schedule.map(str::to_owned).or(self.schedule.take());
            }
            self.sampler = Some(sampler);
        }
        if let Some(label) = self.schedule.take() {
            self.schedule = Some(a1111_schedule_label(&label));
        }
        if let Some(name) = &self.sampler
            && !A1111_SAMPLERS.iter().any(|s| s.eq_ignore_ascii_case(name))
        {
            self.warnings.push(format!(
                "unknown sampler name '{name}': kept as written (A1111 has no sampler of that name)"
            ));
        }
        if let Some(label) = &self.schedule
            && !a1111::A1111_SCHEDULERS
                .iter()
                .any(|(_, l, _)| l.eq_ignore_ascii_case(label))
        {
            self.warnings.push(format!(
                "unknown schedule type '{label}': kept as written (A1111 has no schedule of that name)"
            ));
        }
    }
}

/// An A1111 sampler name and the schedule its name carries: A1111 names as they are (old names
/// with a schedule suffix split as A1111's `get_sampler_and_scheduler` does), ComfyUI names
/// (`euler_ancestral`, `dpmpp_2m_sde_gpu`, with or without a `_karras`-style suffix) mapped;
/// anything else unchanged.
pub fn a1111_sampler_name(name: &str) -> (String, Option<&'static str>) {
    let trimmed = name.trim();
    if let Some(known) = A1111_SAMPLERS.iter().find(|s| s.eq_ignore_ascii_case(trimmed)) {
        return ((*known).to_owned(), None);
    }
    for (internal, label, aliases) in a1111::A1111_SCHEDULERS {
        for option in [label, internal].into_iter().chain(aliases.iter().copied()) {
            if let Some(stem) = a1111::strip_suffix_ignore_ascii_case(trimmed, option)
                && let Some(known) = A1111_SAMPLERS.iter().find(|s| s.eq_ignore_ascii_case(stem))
            {
                return ((*known).to_owned(), Some(label));
            }
        }
    }
    let lower = trimmed.to_ascii_lowercase();
    if let Some(label) = super::foreign::lookup(&super::foreign::COMFY_SAMPLERS, &lower) {
        return (label.to_owned(), None);
    }
    for (comfy, label) in super::foreign::COMFY_SCHEDULES {
        if let Some(stem) = lower.strip_suffix(comfy).and_then(|s| s.strip_suffix('_'))
            && let Some(sampler) = super::foreign::lookup(&super::foreign::COMFY_SAMPLERS, stem)
        {
            return (sampler.to_owned(), Some(label));
        }
    }
    (trimmed.to_owned(), None)
}

/// A schedule label as A1111 writes it: A1111 labels and internal names, ComfyUI scheduler names;
/// anything else unchanged.
pub fn a1111_schedule_label(label: &str) -> String {
    let trimmed = label.trim();
    for (internal, a1111_label, aliases) in a1111::A1111_SCHEDULERS {
        if [a1111_label, internal]
            .into_iter()
            .chain(aliases.iter().copied())
            .any(|o| o.eq_ignore_ascii_case(trimmed))
        {
            return a1111_label.to_owned();
        }
    }
    super::foreign::lookup(&super::foreign::COMFY_SCHEDULES, &trimmed.to_ascii_lowercase())
        .map_or_else(|| trimmed.to_owned(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_names_map_to_a1111() {
        let cases = [
            ("Euler a", "Euler a", None),
            ("DPM++ 2M Karras", "DPM++ 2M", Some("Karras")),
            ("dpmpp_2m_sde_gpu", "DPM++ 2M SDE", None),
            ("euler_ancestral_karras", "Euler a", Some("Karras")),
            ("uni_pc", "UniPC", None),
            ("dpmpp_2m_sgm_uniform", "DPM++ 2M", Some("SGM Uniform")),
            ("my_sampler", "my_sampler", None),
        ];
        for (name, sampler, schedule) in cases {
            assert_eq!(a1111_sampler_name(name), (sampler.to_owned(), schedule), "{name}");
        }
        assert_eq!(a1111_schedule_label("sgm_uniform"), "SGM Uniform");
        assert_eq!(a1111_schedule_label("karras"), "Karras");
        assert_eq!(a1111_schedule_label("normal"), "Normal");
        assert_eq!(a1111_schedule_label("wavy"), "wavy");
    }

    #[test]
    fn unknown_names_warn_and_keep_the_numbers() {
        let mut m = ImageMetadata {
            sampler: Some("fancy_sampler".into()),
            schedule: Some("wavy".into()),
            steps: Some(30),
            seed: Some(5),
            ..ImageMetadata::new("ComfyUI", "test")
        };
        m.normalise_names();
        assert_eq!(m.warnings.len(), 2, "{:?}", m.warnings);
        let (p, problems) = m.generation_params();
        assert_eq!((p.steps, p.seed), (30, 5));
        assert_eq!(problems.len(), 2, "{problems:?}");
        let text = m.infotext();
        assert!(
            text.contains("Steps: 30, Sampler: fancy_sampler, Schedule type: wavy"),
            "{text}"
        );
    }

    #[test]
    fn infotext_and_json_forms() {
        let m = ImageMetadata {
            prompt: Some("a fox".into()),
            negative_prompt: Some("blurry".into()),
            steps: Some(20),
            sampler: Some("Euler a".into()),
            schedule: Some("Karras".into()),
            cfg_scale: Some(6.5),
            seed: Some(42),
            width: Some(512),
            height: Some(768),
            loras: vec![LoraRef {
                name: "ink".into(),
                weight: Some(0.8),
                hash: Some("abc123".into()),
            }],
            ..ImageMetadata::new("ComfyUI", "test")
        };
        assert_eq!(
            m.infotext(),
            "a fox <lora:ink:0.8>\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, Schedule type: \
             Karras, CFG scale: 6.5, Seed: 42, Size: 512x768, Lora hashes: \"ink: abc123\", Source: ComfyUI"
        );
        let json: serde_json::Value = serde_json::from_str(&m.to_json()).expect("json");
        assert_eq!(json["generator"], "ComfyUI");
        assert_eq!(json["cfg_scale"], 6.5);
        assert_eq!(json["model"], serde_json::Value::Null);
        assert_eq!(
            json["loras"][0]["weight"].as_f64().map(|w| (w * 10.0).round()),
            Some(8.0)
        );
        assert_eq!(json["warnings"], serde_json::json!([]));
        let json = m.to_json();
        let keys: Vec<&str> = json
            .lines()
            .filter_map(|l| l.strip_prefix("  \""))
            .map(|l| l.split('"').next().unwrap_or(""))
            .collect();
        assert_eq!(keys.first(), Some(&"generator"));
        assert_eq!(keys.last(), Some(&"warnings"));
    }
}
