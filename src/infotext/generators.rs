//! Recognises which tool wrote an image's metadata texts and converts them into one
//! [`ImageMetadata`]: A1111/Forge infotext (with Civitai's keys), JSON in `parameters` (SwarmUI,
//! Fooocus, RuinedFooocus), NovelAI, ComfyUI, InvokeAI (3.x+, 2.x `sd-metadata` and `Dream`),
//! TensorArt `generation_data`.

use serde_json::{Map, Value};

use super::RawInfotext;
use super::foreign::{self, ForeignParams, ForeignSource};
use super::metadata::{ImageMetadata, LoraRef, a1111_sampler_name};

/// Keys whose text may be an A1111 infotext or a JSON object of settings, in order of preference.
const PARAMETER_KEYS: [&str; 8] = [
    "parameters",
    "UserComment",
    "xmp:UserComment",
    "xmp:parameters",
    "ImageDescription",
    "XPComment",
    "Comment",
    "xmp:description",
];

/// Where each key comes from, for messages.
fn describe(key: &str) -> String {
    match key {
        "UserComment" | "ImageDescription" | "XPComment" | "Make" | "Model" | "Software" => {
            format!("EXIF {key}")
        }
        _ if key.starts_with("xmp:") => format!("XMP {}", &key[4..]),
        "stealth" => "pixel low bits (stealth pnginfo)".to_owned(),
        _ => format!("text '{key}'"),
    }
}

/// The generation settings in `texts` (keys as [`super::containers::read_texts`] gives them),
/// or `None` when none of them holds any.
pub fn recognise(texts: &[(String, String)]) -> Option<ImageMetadata> {
    let get = |key: &str| {
        texts
            .iter()
            .find(|(k, v)| k == key && !v.trim().is_empty())
            .map(|(_, v)| v.as_str())
    };
    let mut notes = Vec::new();
    let mut found = recognise_inner(texts, &get, &mut notes);
    if let Some(m) = &mut found {
        m.normalise_names();
        if let Some(value) = get("Civitai resources").or_else(|| m.extra_value("Civitai resources")) {
            let value = value.to_owned();
            civitai_resources(m, &value);
        }
    }
    found.or_else(|| {
        // Nothing recognised, but a tool's chunk was there and failed: say so.
        (!notes.is_empty()).then(|| {
            let mut m = ImageMetadata::new("unknown", "text chunks");
            m.warnings = notes;
            m
        })
    })
}

fn recognise_inner<'t>(
    texts: &'t [(String, String)],
    get: &dyn Fn(&str) -> Option<&'t str>,
    notes: &mut Vec<String>,
) -> Option<ImageMetadata> {
    // NovelAI: `Software: NovelAI`, settings in `Comment` JSON, prompt in `Description`.
    let novelai_comment = get("Comment").and_then(json_object).filter(is_novelai);
    if get("Software").is_some_and(|s| s.starts_with("NovelAI")) || novelai_comment.is_some() {
        let comment = novelai_comment.or_else(|| get("Comment").and_then(json_object));
        return Some(novelai(
            comment.as_ref(),
            get("Description"),
            get("Source"),
            "Comment",
        ));
    }

    let mut prompt_only = None;
    for key in PARAMETER_KEYS {
        let Some(text) = get(key) else {
            continue;
        };
        if let Some(object) = json_object(text) {
            if let Some(m) = from_json(&object, key) {
                return Some(m);
            }
            continue;
        }
        let (stripped, json_values) = take_json_values(text);
        let mut raw = RawInfotext::parse(&stripped);
        if !raw.params.is_empty() {
            raw.params.extend(json_values);
            return Some(a1111(text, &raw, &describe(key)));
        }
        if key == "parameters" && prompt_only.is_none() {
            prompt_only = Some(text);
        }
    }

    if let Some(data) = get("generation_data")
        && let Some(object) = json_object(data)
    {
        let mut m = generic_json(&Obj(&object), "TensorArt", "text 'generation_data'");
        if let Some(Ok(comfy)) = foreign::parse_text_chunks(texts) {
            fill_missing(&mut m, &from_foreign(&comfy, "text 'prompt'"));
        }
        if m.states_anything() {
            return Some(m);
        }
    }

    // One text chunk per setting with a plain-text `prompt` (Easy Diffusion's embedded metadata;
    // ComfyUI's `prompt` is always a JSON graph).
    if get("prompt").is_some_and(|p| !p.trim_start().starts_with('{')) {
        let object: Map<String, Value> = texts
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let generator = if object.contains_key("use_stable_diffusion_model") {
            "Easy Diffusion"
        } else {
            "unknown"
        };
        let mut m = generic_json(&Obj(&object), generator, "text chunks, one per setting");
        if m.seed.is_some() || m.steps.is_some() {
            if generator == "unknown" {
                m.warnings.push(
                    "the text chunks are of an unrecognised tool; settings were read by their usual key names"
                        .to_owned(),
                );
            }
            return Some(m);
        }
    }

    match foreign::parse_text_chunks(texts) {
        Some(Ok(params)) => {
            let source = match params.source {
                ForeignSource::ComfyUi if get("prompt").is_some() => "text 'prompt' (ComfyUI API graph)",
                ForeignSource::ComfyUi => "text 'workflow' (ComfyUI UI graph)",
                ForeignSource::InvokeAi => "InvokeAI metadata",
            };
            return Some(from_foreign(&params, source));
        }
        Some(Err(err)) => notes.push(format!("{err}")),
        None => {}
    }

    if let Some(dream) = get("Dream") {
        return Some(invokeai_dream(dream));
    }

    if let Some(text) = prompt_only {
        let mut m = ImageMetadata::new("unknown", "text 'parameters'");
        m.prompt = Some(text.trim().to_owned());
        m.warnings.push(
            "the 'parameters' text has no settings line (Steps: …, Sampler: …); only the prompt was read"
                .to_owned(),
        );
        return Some(m);
    }
    None
}

/// A JSON object, if `text` is one.
fn json_object(text: &str) -> Option<Map<String, Value>> {
    if !text.trim_start().starts_with('{') {
        return None;
    }
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// NovelAI's `Comment` JSON: keys only NovelAI writes, or (v1) a negative prompt under `uc` with a
/// NovelAI sampler name (Draw Things also writes `uc`, with A1111 sampler names).
fn is_novelai(object: &Map<String, Value>) -> bool {
    let nai_sampler = object
        .get("sampler")
        .and_then(Value::as_str)
        .is_some_and(|s| s.starts_with("k_") || s.starts_with("ddim"));
    ["n_samples", "noise_schedule", "v4_prompt", "request_type"]
        .iter()
        .any(|k| object.contains_key(*k))
        || object.contains_key("uc") && nai_sampler
}

/// Fields of `from` that `into` lacks.
fn fill_missing(into: &mut ImageMetadata, from: &ImageMetadata) {
    macro_rules! fill {
        ($($field:ident),*) => {
            $(if into.$field.is_none() {
                into.$field.clone_from(&from.$field);
            })*
        };
    }
    fill!(
        prompt,
        negative_prompt,
        steps,
        sampler,
        schedule,
        cfg_scale,
        seed,
        width,
        height,
        model,
        model_hash,
        denoising_strength,
        clip_skip
    );
    if into.loras.is_empty() {
        into.loras.clone_from(&from.loras);
    }
}

// ---------------------------------------------------------------------------------------------
// A1111 / Forge / Civitai
// ---------------------------------------------------------------------------------------------

/// An A1111 infotext read field by field: a value that cannot be read is a warning and stays in
/// the extra keys; the other fields are read regardless.
fn a1111(text: &str, raw: &RawInfotext, source: &str) -> ImageMetadata {
    let mut m = ImageMetadata::new("A1111", source);
    m.a1111_text = Some(text.to_owned());
    m.prompt = Some(raw.prompt.clone());
    m.negative_prompt = (!raw.negative_prompt.is_empty()).then(|| raw.negative_prompt.clone());
    let bad = |m: &mut ImageMetadata, key: &str, value: &str, expected: &str| {
        m.warnings.push(format!(
            "'{key}: {value}' is not {expected}; the value is kept as text"
        ));
        m.extra.push((key.to_owned(), value.to_owned()));
    };
    for (key, value) in &raw.params {
        let v = value.trim();
        match key.as_str() {
            "Steps" => match v.parse() {
                Ok(n) => m.steps = Some(n),
                Err(_) => bad(&mut m, key, value, "a whole number"),
            },
            "Sampler" => m.sampler = Some(v.to_owned()),
            "Schedule type" => m.schedule = Some(v.to_owned()),
            "CFG scale" => match v.parse::<f32>() {
                Ok(x) if x.is_finite() => m.cfg_scale = Some(x),
                _ => bad(&mut m, key, value, "a number"),
            },
            "Seed" => match v.parse() {
                Ok(n) => m.seed = Some(n),
                Err(_) => bad(&mut m, key, value, "a seed (a whole number of 0 or more)"),
            },
            "Size" => match v
                .split_once('x')
                .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
            {
                Some((w, h)) => (m.width, m.height) = (Some(w), Some(h)),
                None => bad(&mut m, key, value, "a size such as 512x768"),
            },
            "Model hash" => m.model_hash = Some(v.to_owned()),
            "Model" => m.model = Some(v.to_owned()),
            "Denoising strength" => match v.parse::<f32>() {
                Ok(x) if x.is_finite() => m.denoising_strength = Some(x),
                _ => bad(&mut m, key, value, "a number"),
            },
            "Clip skip" => match v.parse() {
                Ok(n) => m.clip_skip = Some(n),
                Err(_) => bad(&mut m, key, value, "a whole number"),
            },
            _ => m.extra.push((key.clone(), value.clone())),
        }
    }
    m.loras = prompt_loras(&raw.prompt);
    if let Some(hashes) = m.extra_value("Lora hashes").map(str::to_owned) {
        for pair in hashes.split(',') {
            let Some((name, hash)) = pair.split_once(':') else {
                continue;
            };
            let (name, hash) = (name.trim(), hash.trim());
            match m.loras.iter_mut().find(|l| l.name == name) {
                Some(lora) => lora.hash = Some(hash.to_owned()),
                None => m.loras.push(LoraRef {
                    name: name.to_owned(),
                    weight: None,
                    hash: Some(hash.to_owned()),
                }),
            }
        }
    }
    if let Some(hashes) = m.extra_value("Hashes").and_then(json_object) {
        if m.model_hash.is_none() {
            m.model_hash = hashes.get("model").and_then(Value::as_str).map(str::to_owned);
        }
        for (key, hash) in &hashes {
            if let (Some(name), Some(hash)) = (key.strip_prefix("lora:"), hash.as_str())
                && let Some(lora) = m.loras.iter_mut().find(|l| l.name == name && l.hash.is_none())
            {
                lora.hash = Some(hash.to_owned());
            }
        }
    }
    let version = m.extra_value("Version").unwrap_or_default().to_owned();
    m.generator =
        if m.extra_value("Civitai resources").is_some() || m.extra_value("Civitai metadata").is_some() {
            "Civitai".to_owned()
        } else if let Some(app) = m.extra_value("App") {
            app.to_owned()
        } else if version.starts_with('f') && version[1..].starts_with(|c: char| c.is_ascii_digit()) {
            "Forge".to_owned()
        } else if version.starts_with("easel") {
            "Easel".to_owned()
        } else if version.starts_with("Fooocus") {
            "Fooocus".to_owned()
        } else if version.starts_with("ComfyUI") {
            "ComfyUI".to_owned()
        } else {
            "A1111".to_owned()
        };
    m
}

/// Keys whose values Civitai writes as bare JSON (with commas, unquoted), which A1111's params
/// regex would cut at the first comma.
const JSON_VALUED_KEYS: [&str; 3] = ["Civitai resources", "Civitai metadata", "Hashes"];

/// The infotext with the bare JSON values of [`JSON_VALUED_KEYS`] cut out of its last line, and
/// those (key, JSON) pairs.
fn take_json_values(text: &str) -> (String, Vec<(String, String)>) {
    let trimmed = text.trim_end();
    let line_start = trimmed.rfind('\n').map_or(0, |i| i + 1);
    let (head, mut line) = (&trimmed[..line_start], trimmed[line_start..].to_owned());
    let mut values = Vec::new();
    for key in JSON_VALUED_KEYS {
        let marker = format!("{key}: ");
        let Some(at) = line.find(&marker) else {
            continue;
        };
        let start = at + marker.len();
        let Some(len) = balanced_json_len(&line[start..]) else {
            continue;
        };
        values.push((key.to_owned(), line[start..start + len].to_owned()));
        let mut end = start + len;
        // The separator after the value, or the one before it when the value ends the line.
        if line[end..].starts_with(", ") {
            end += 2;
        } else if end == line.len() {
            let before = line[..at].trim_end();
            let cut = before.strip_suffix(',').map_or(at, str::len);
            line.replace_range(cut..end, "");
            continue;
        }
        line.replace_range(at..end, "");
    }
    (format!("{head}{line}"), values)
}

/// Length of the JSON array or object that `text` starts with (brackets balanced outside
/// strings), if it starts with one and closes it.
fn balanced_json_len(text: &str) -> Option<usize> {
    if !text.starts_with(['[', '{']) {
        return None;
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '[' | '{' => depth += 1,
            ']' | '}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// `<lora:name:weight>` and `<lyco:name:weight>` tags of an A1111 prompt (the first number is the
/// text-encoder multiplier, which A1111 also uses for the UNet when no second one is given).
fn prompt_loras(prompt: &str) -> Vec<LoraRef> {
    let mut loras = Vec::new();
    let mut rest = prompt;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find('>') else {
            break;
        };
        let tag = &rest[..close];
        let mut parts = tag.split(':');
        if let (Some("lora" | "lyco"), Some(name)) = (parts.next(), parts.next())
            && !name.trim().is_empty()
        {
            loras.push(LoraRef {
                name: name.trim().to_owned(),
                weight: Some(parts.next().and_then(|w| w.trim().parse().ok()).unwrap_or(1.0)),
                hash: None,
            });
        }
    }
    loras
}

/// Civitai's `Civitai resources` key: `[{"type": "checkpoint" | "lora" | …, "modelName",
/// "modelVersionName", "weight", …}]`; fills the model and adds LoRAs not named in the prompt.
fn civitai_resources(m: &mut ImageMetadata, value: &str) {
    let Ok(Value::Array(resources)) = serde_json::from_str::<Value>(value) else {
        m.warnings
            .push("the 'Civitai resources' value is not a JSON list; it is kept as text".to_owned());
        return;
    };
    for resource in resources.iter().filter_map(Value::as_object) {
        let Some(name) = resource.get("modelName").and_then(Value::as_str) else {
            continue;
        };
        let version = resource.get("modelVersionName").and_then(Value::as_str);
        match resource.get("type").and_then(Value::as_str) {
            Some("checkpoint") if m.model.is_none() => {
                m.model = Some(match version {
                    Some(v) => format!("{name} {v}"),
                    None => name.to_owned(),
                });
            }
            Some("lora" | "lycoris" | "locon" | "dora") if !m.loras.iter().any(|l| l.name == name) => {
                m.loras.push(LoraRef {
                    name: name.to_owned(),
                    weight: resource.get("weight").and_then(foreign::to_f32),
                    hash: None,
                });
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ComfyUI and InvokeAI (through `foreign`)
// ---------------------------------------------------------------------------------------------

fn from_foreign(p: &ForeignParams, source: &str) -> ImageMetadata {
    let mut m = ImageMetadata::new(p.source.name(), source);
    m.prompt.clone_from(&p.prompt);
    m.negative_prompt.clone_from(&p.negative_prompt);
    m.steps = p.steps;
    m.sampler.clone_from(&p.sampler);
    m.schedule.clone_from(&p.schedule);
    m.cfg_scale = p.cfg_scale;
    m.seed = p.seed;
    m.width = p.width;
    m.height = p.height;
    m.model.clone_from(&p.model);
    m.denoising_strength = p.denoising_strength;
    m.clip_skip = p.clip_skip;
    m.loras = p
        .loras
        .iter()
        .map(|(name, weight)| LoraRef {
            name: name.clone(),
            weight: Some(*weight),
            hash: None,
        })
        .collect();
    for (i, other) in p.other_samplers.iter().enumerate() {
        m.extra.push((format!("Other sampler {}", i + 1), other.clone()));
    }
    m
}

/// InvokeAI 2.x `Dream` text: `"prompt [negative]" -s 50 -S 42 -W 512 -H 512 -C 7.5 -A k_lms`
/// (the dream command line, `ldm/invoke/args.py`).
fn invokeai_dream(text: &str) -> ImageMetadata {
    let mut m = ImageMetadata::new("InvokeAI", "text 'Dream'");
    let text = text.trim();
    let (prompt, flags) = match text.strip_prefix('"') {
        Some(rest) => match rest
            .rfind("\" -")
            .or_else(|| rest.strip_suffix('"').map(str::len))
        {
            Some(end) => (&rest[..end], &rest[end + 1..]),
            None => (rest, ""),
        },
        None => match text.find(" -") {
            Some(at) => (&text[..at], &text[at..]),
            None => (text, ""),
        },
    };
    let (positive, negative) = foreign::split_legacy_negative(prompt);
    m.prompt = Some(positive);
    m.negative_prompt = negative;
    let tokens: Vec<&str> = flags.split_whitespace().collect();
    for pair in tokens.windows(2) {
        let value = pair[1];
        match pair[0] {
            "-s" | "--steps" => m.steps = value.parse().ok(),
            "-S" | "--seed" => m.seed = value.parse().ok(),
            "-W" | "--width" => m.width = value.parse().ok(),
            "-H" | "--height" => m.height = value.parse().ok(),
            "-C" | "--cfg_scale" => m.cfg_scale = value.parse().ok(),
            "-A" | "--sampler" => {
                m.sampler = Some(invokeai_legacy_sampler(value));
            }
            "-f" | "--strength" => m.denoising_strength = value.parse().ok(),
            "-m" | "--model" => m.model = Some(value.to_owned()),
            _ => {}
        }
    }
    m
}

fn invokeai_legacy_sampler(name: &str) -> String {
    foreign::lookup(&foreign::INVOKEAI_LEGACY_SAMPLERS, name)
        .unwrap_or(name)
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// JSON settings: SwarmUI, Fooocus, RuinedFooocus, NovelAI, and others by common key names
// ---------------------------------------------------------------------------------------------

/// A JSON object read with fallbacks between the key names tools use.
struct Obj<'a>(&'a Map<String, Value>);

impl Obj<'_> {
    fn get(&self, keys: &[&str]) -> Option<&Value> {
        keys.iter().find_map(|k| self.0.get(*k).filter(|v| !v.is_null()))
    }

    fn string(&self, keys: &[&str]) -> Option<String> {
        match self.get(keys)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// A number, or a string holding one (Fooocus writes its seed as a string).
    fn number(&self, keys: &[&str]) -> Option<f64> {
        match self.get(keys)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    fn u64(&self, keys: &[&str]) -> Option<u64> {
        match self.get(keys)? {
            Value::String(s) => s.trim().parse().ok(),
            v => foreign::to_u64(v),
        }
    }

    fn u32(&self, keys: &[&str]) -> Option<u32> {
        self.u64(keys).and_then(|n| u32::try_from(n).ok())
    }

    fn f32(&self, keys: &[&str]) -> Option<f32> {
        self.number(keys)
            .filter(|x| x.is_finite() && x.abs() <= f64::from(f32::MAX))
            .map(|x| x as f32)
    }
}

/// Settings from a JSON object found where A1111 keeps its infotext.
fn from_json(object: &Map<String, Value>, key: &str) -> Option<ImageMetadata> {
    let source = describe(key);
    let o = Obj(object);
    if let Some(Value::Object(params)) = object.get("sui_image_params") {
        return Some(swarmui(object, params, &source));
    }
    if object.contains_key("Prompt") && object.contains_key("Negative")
        || o.string(&["software"]).is_some_and(|s| s == "RuinedFooocus")
    {
        return Some(ruined_fooocus(&o, &source));
    }
    if o.string(&["metadata_scheme"]).is_some()
        || o.string(&["version"]).is_some_and(|v| v.starts_with("Fooocus"))
        || object.contains_key("base_model") && object.contains_key("guidance_scale")
    {
        return Some(fooocus(&o, &source));
    }
    if is_novelai(object) {
        return Some(novelai(Some(object), None, None, key));
    }
    // A ComfyUI API graph or InvokeAI metadata stored under another key.
    if object.values().any(|v| v.get("class_type").is_some()) {
        let text = serde_json::to_string(object).ok()?;
        let chunks = [("prompt".to_owned(), text)];
        return match foreign::parse_text_chunks(&chunks) {
            Some(Ok(p)) => Some(from_foreign(&p, &source)),
            _ => None,
        };
    }
    if object.contains_key("positive_prompt") {
        let text = serde_json::to_string(object).ok()?;
        let chunks = [("invokeai_metadata".to_owned(), text)];
        if let Some(Ok(p)) = foreign::parse_text_chunks(&chunks) {
            return Some(from_foreign(&p, &source));
        }
    }
    let mut m = generic_json(&o, "unknown", &source);
    if !m.states_anything() {
        return None;
    }
    m.warnings.push(format!(
        "the {source} holds JSON of an unrecognised tool; settings were read by their usual key names"
    ));
    Some(m)
}

/// Settings by the key names most tools use (TensorArt, Hugging Face Spaces, …).
fn generic_json(o: &Obj<'_>, generator: &str, source: &str) -> ImageMetadata {
    let mut m = ImageMetadata::new(generator, source);
    // `c` is Draw Things' prompt key.
    m.prompt = o.string(&["prompt", "positive_prompt", "positivePrompt", "Prompt", "c"]);
    m.negative_prompt = o.string(&[
        "negative_prompt",
        "negativePrompt",
        "negativeprompt",
        "Negative",
        "uc",
    ]);
    m.steps = o.u32(&["steps", "num_inference_steps", "Steps"]);
    m.cfg_scale = o.f32(&[
        "cfg_scale",
        "cfgScale",
        "cfg",
        "guidance_scale",
        "scale",
        "cfgscale",
    ]);
    m.seed = o.u64(&["seed", "Seed"]);
    m.width = o.u32(&["width", "Width"]);
    m.height = o.u32(&["height", "Height"]);
    if let Some((w, h)) = o
        .string(&["size", "Size"])
        .and_then(|s| {
            Some((
                s.split_once('x')?.0.trim().parse().ok()?,
                s.split_once('x')?.1.trim().parse().ok()?,
            ))
        })
        .filter(|_| m.width.is_none() && m.height.is_none())
    {
        (m.width, m.height) = (Some(w), Some(h));
    }
    m.sampler = o.string(&["sampler", "sampler_name", "samplerName", "Sampler"]);
    m.schedule = o.string(&["scheduler", "schedule", "schedule_type", "Schedule type"]);
    m.clip_skip = o.u32(&["clip_skip", "clipSkip", "Clip skip"]);
    m.denoising_strength = o.f32(&["denoising_strength", "denoisingStrength", "strength"]);
    m.model_hash = o.string(&["model_hash", "modelHash"]);
    m.model = o
        .string(&[
            "model",
            "model_name",
            "checkpoint",
            "sd_model_name",
            "use_stable_diffusion_model",
        ])
        .map(|n| foreign::file_stem(&n));
    if let Some(Value::Object(base)) = o.get(&["baseModel"]) {
        let base = Obj(base);
        if m.model.is_none() {
            m.model = base
                .string(&["modelFileName", "name", "label", "modelName"])
                .map(|n| foreign::file_stem(&n));
        }
        if m.model_hash.is_none() {
            m.model_hash = base.string(&["hash", "sha256"]);
        }
    }
    if let Some(Value::Array(models)) = o.get(&["models", "loras", "resources"]) {
        for model in models.iter().filter_map(Value::as_object) {
            let model = Obj(model);
            let kind = model.string(&["type", "modelType"]).unwrap_or_default();
            if !kind.is_empty() && !kind.eq_ignore_ascii_case("lora") && !kind.eq_ignore_ascii_case("lycoris")
            {
                continue;
            }
            if let Some(name) = model.string(&["modelFileName", "name", "label", "modelName"]) {
                m.loras.push(LoraRef {
                    name: foreign::file_stem(&name),
                    weight: model.f32(&["weight", "strength"]),
                    hash: model.string(&["hash"]),
                });
            }
        }
    }
    m
}

/// Maps ComfyUI sampler and scheduler names (SwarmUI and Fooocus use ComfyUI's) to A1111's.
fn comfy_names(m: &mut ImageMetadata) {
    if let Some(name) = &m.sampler {
        let (sampler, schedule) = a1111_sampler_name(name);
        m.sampler = Some(sampler);
        if m.schedule.is_none() {
            m.schedule = schedule.map(str::to_owned);
        }
    }
    if let Some(label) = &m.schedule
        && let Some(mapped) = foreign::lookup(&foreign::COMFY_SCHEDULES, label)
    {
        m.schedule = Some(mapped.to_owned());
    }
}

/// SwarmUI: `{"sui_image_params": {"prompt", "negativeprompt", "model", "seed", "steps",
/// "cfgscale", "width", "height", "sampler", "scheduler", "loras", "loraweights",
/// "initimagecreativity", "clipstopatlayer", …}, "sui_models": [{"name", "param", "hash"}]}`.
fn swarmui(root: &Map<String, Value>, params: &Map<String, Value>, source: &str) -> ImageMetadata {
    let o = Obj(params);
    let mut m = generic_json(&o, "SwarmUI", source);
    m.loras.clear();
    m.cfg_scale = o.f32(&["cfgscale", "cfg_scale"]);
    m.denoising_strength = o
        .f32(&["initimagecreativity"])
        .filter(|_| params.contains_key("initimage") || params.contains_key("initimagecreativity"));
    m.clip_skip = o
        .number(&["clipstopatlayer"])
        .filter(|x| *x < 0.0 && x.fract() == 0.0 && *x > -100.0)
        .map(|x| (-x) as u32);
    let weights: Vec<Option<f32>> = match params.get("loraweights") {
        Some(Value::Array(ws)) => ws.iter().map(json_f32).collect(),
        _ => Vec::new(),
    };
    if let Some(Value::Array(names)) = params.get("loras") {
        for (i, name) in names.iter().enumerate() {
            if let Some(name) = name.as_str() {
                m.loras.push(LoraRef {
                    name: foreign::file_stem(name),
                    weight: weights.get(i).copied().flatten(),
                    hash: None,
                });
            }
        }
    }
    if let Some(Value::Array(models)) = root.get("sui_models") {
        for model in models.iter().filter_map(Value::as_object) {
            let model = Obj(model);
            let (Some(name), Some(hash)) = (model.string(&["name"]), model.string(&["hash"])) else {
                continue;
            };
            let hash = hash.trim_start_matches("0x").to_owned();
            let stem = foreign::file_stem(&name);
            match model.string(&["param"]).as_deref() {
                Some("model") if m.model_hash.is_none() => {
                    // SwarmUI states the file's SHA-256; A1111's model hash is its first 10 digits.
                    m.model_hash = Some(hash.chars().take(10).collect());
                }
                Some("loras") => {
                    if let Some(lora) = m.loras.iter_mut().find(|l| l.name == stem) {
                        lora.hash = Some(hash);
                    }
                }
                _ => {}
            }
        }
    }
    for key in [
        "aspectratio",
        "swarm_version",
        "refinermodel",
        "refinercontrolpercentage",
    ] {
        if let Some(v) = o.string(&[key]) {
            m.extra.push((key.to_owned(), v));
        }
    }
    comfy_names(&mut m);
    m
}

/// A number, or a string holding one.
fn json_f32(value: &Value) -> Option<f32> {
    match value {
        Value::String(s) => s.trim().parse().ok(),
        v => foreign::to_f32(v),
    }
}

/// Fooocus's JSON scheme (`modules/meta_parser.py` `FooocusMetadataParser`): `prompt`,
/// `negative_prompt`, `steps`, `guidance_scale`, `seed` (a string), `sampler`, `scheduler`
/// (ComfyUI names), `resolution` "(w, h)", `base_model`, `base_model_hash`, `clip_skip`,
/// `loras` [[name, weight, hash]], `styles`, `performance`, `version`.
fn fooocus(o: &Obj<'_>, source: &str) -> ImageMetadata {
    let mut m = generic_json(o, "Fooocus", source);
    m.loras.clear();
    m.cfg_scale = o.f32(&["guidance_scale", "cfg_scale"]);
    m.model = o
        .string(&["base_model", "base_model_name"])
        .map(|n| foreign::file_stem(&n));
    m.model_hash = o.string(&["base_model_hash"]);
    if let Some(resolution) = o.string(&["resolution"]) {
        let numbers: Vec<u32> = resolution
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect();
        if let [w, h] = numbers[..] {
            (m.width, m.height) = (Some(w), Some(h));
        }
    }
    if let Some(Value::Array(loras)) = o.get(&["loras"]) {
        for lora in loras.iter().filter_map(Value::as_array) {
            let Some(name) = lora.first().and_then(Value::as_str) else {
                continue;
            };
            m.loras.push(LoraRef {
                name: foreign::file_stem(name),
                weight: lora.get(1).and_then(json_f32),
                hash: lora.get(2).and_then(Value::as_str).map(str::to_owned),
            });
        }
    }
    for key in [
        "styles",
        "performance",
        "refiner_model",
        "refiner_switch",
        "sharpness",
        "version",
    ] {
        if let Some(v) = o.string(&[key]) {
            m.extra.push((key.to_owned(), v));
        }
    }
    comfy_names(&mut m);
    m
}

/// RuinedFooocus (`modules/async_worker.py`): `Prompt`, `Negative`, `steps`, `cfg`, `width`,
/// `height`, `seed`, `sampler_name`, `scheduler`, `base_model_name`, `base_model_hash`,
/// `loras` as [[hash, "weight - name"]] (older: the text "Loras:<name:weight>,…"), `clip_skip`,
/// `denoise`.
fn ruined_fooocus(o: &Obj<'_>, source: &str) -> ImageMetadata {
    let mut m = generic_json(o, "RuinedFooocus", source);
    m.loras.clear();
    m.model = o.string(&["base_model_name"]).map(|n| foreign::file_stem(&n));
    m.model_hash = o.string(&["base_model_hash"]);
    m.denoising_strength = o.f32(&["denoise"]).filter(|d| *d < 1.0);
    match o.get(&["loras"]) {
        Some(Value::Array(loras)) => {
            for lora in loras.iter().filter_map(Value::as_array) {
                let hash = lora.first().and_then(Value::as_str);
                let Some((weight, name)) = lora
                    .get(1)
                    .and_then(Value::as_str)
                    .and_then(|s| s.split_once(" - "))
                else {
                    continue;
                };
                m.loras.push(LoraRef {
                    name: foreign::file_stem(name.trim()),
                    weight: weight.trim().parse().ok(),
                    hash: hash.map(str::to_owned),
                });
            }
        }
        Some(Value::String(text)) => {
            let list = text.strip_prefix("Loras:").unwrap_or(text);
            for item in list.split(',') {
                let item = item.trim().trim_start_matches('<').trim_end_matches('>');
                if let Some((name, weight)) = item.rsplit_once(':') {
                    m.loras.push(LoraRef {
                        name: foreign::file_stem(name),
                        weight: weight.trim().parse().ok(),
                        hash: None,
                    });
                }
            }
        }
        _ => {}
    }
    comfy_names(&mut m);
    m
}

/// NovelAI's `Comment` JSON (`prompt`, `uc`, `steps`, `scale`, `seed`, `width`, `height`,
/// `sampler` such as `k_euler_ancestral`, `noise_schedule`, `strength` for img2img, V4's
/// `v4_prompt`/`v4_negative_prompt` captions with character captions), with the prompt also in
/// `Description` and the model in `Source`.
fn novelai(
    comment: Option<&Map<String, Value>>,
    description: Option<&str>,
    model: Option<&str>,
    key: &str,
) -> ImageMetadata {
    const SAMPLERS: [(&str, &str); 14] = [
        ("k_euler", "Euler"),
        ("k_euler_ancestral", "Euler a"),
        ("k_dpmpp_2s_ancestral", "DPM++ 2S a"),
        ("k_dpmpp_2m", "DPM++ 2M"),
        ("k_dpmpp_sde", "DPM++ SDE"),
        ("k_dpmpp_2m_sde", "DPM++ 2M SDE"),
        ("k_dpm_2", "DPM2"),
        ("k_dpm_2_ancestral", "DPM2 a"),
        ("k_dpm_fast", "DPM fast"),
        ("k_dpm_adaptive", "DPM adaptive"),
        ("k_lms", "LMS"),
        ("k_heun", "Heun"),
        ("ddim", "DDIM"),
        ("ddim_v3", "DDIM"),
    ];
    // NovelAI's "native" is the model's own discrete schedule, A1111's Uniform.
    const SCHEDULES: [(&str, &str); 4] = [
        ("native", "Uniform"),
        ("karras", "Karras"),
        ("exponential", "Exponential"),
        ("polyexponential", "Polyexponential"),
    ];
    let mut m = ImageMetadata::new("NovelAI", &describe(key));
    m.model = model.map(str::to_owned);
    let empty = Map::new();
    let object = comment.unwrap_or(&empty);
    let o = Obj(object);
    let caption = |key: &str| -> Option<&Map<String, Value>> { object.get(key)?.get("caption")?.as_object() };
    m.prompt = o
        .string(&["prompt"])
        .or_else(|| {
            caption("v4_prompt")?
                .get("base_caption")?
                .as_str()
                .map(str::to_owned)
        })
        .or_else(|| description.map(str::to_owned));
    m.negative_prompt = o.string(&["uc"]).or_else(|| {
        caption("v4_negative_prompt")?
            .get("base_caption")?
            .as_str()
            .map(str::to_owned)
    });
    m.steps = o.u32(&["steps"]);
    m.cfg_scale = o.f32(&["scale"]);
    m.seed = o.u64(&["seed"]);
    m.width = o.u32(&["width"]);
    m.height = o.u32(&["height"]);
    m.sampler = o
        .string(&["sampler"])
        .map(|s| foreign::lookup(&SAMPLERS, &s).map_or(s.clone(), str::to_owned));
    m.schedule = o
        .string(&["noise_schedule"])
        .map(|s| foreign::lookup(&SCHEDULES, &s).map_or(s.clone(), str::to_owned));
    let img2img =
        o.string(&["request_type"]).is_some_and(|r| r.contains("Img2Img")) || object.contains_key("image");
    m.denoising_strength = o.f32(&["strength"]).filter(|_| img2img);
    if let Some(chars) = caption("v4_prompt")
        .and_then(|c| c.get("char_captions"))
        .and_then(Value::as_array)
    {
        let chars: Vec<&str> = chars
            .iter()
            .filter_map(|c| c.get("char_caption")?.as_str())
            .filter(|c| !c.is_empty())
            .collect();
        if !chars.is_empty() {
            m.extra.push(("NovelAI characters".to_owned(), chars.join(" | ")));
        }
    }
    // Written only when they change something: rescale 0 and uncond scale 1 are NovelAI's neutral values.
    for (json_key, label, neutral) in [
        ("cfg_rescale", "CFG rescale", 0.0),
        ("uncond_scale", "Uncond scale", 1.0),
    ] {
        if let Some(x) = o.f32(&[json_key]).filter(|x| *x != neutral) {
            m.extra.push((label.to_owned(), super::py_number(x)));
        }
    }
    if comment.is_none() {
        m.warnings.push(
            "NovelAI's 'Comment' settings are missing or not JSON; only the prompt was read".to_owned(),
        );
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn read(pairs: &[(&str, &str)]) -> ImageMetadata {
        recognise(&texts(pairs)).expect("recognised")
    }

    #[test]
    fn a1111_with_unknown_sampler_keeps_the_numbers() {
        let m = read(&[(
            "parameters",
            "a lighthouse <lora:ink:0.7>\nNegative prompt: fog\nSteps: 30, Sampler: Euler a CFG++, Schedule type: \
             SGM Uniform, CFG scale: 5.5, Seed: 99, Size: 832x1216, Model hash: 0123456789, Model: juggernaut, \
             Lora hashes: \"ink: aabbccddeeff\", Version: f2.0.1v1.10.1",
        )]);
        assert_eq!(m.generator, "Forge");
        assert_eq!(m.steps, Some(30));
        assert_eq!(m.sampler.as_deref(), Some("Euler a CFG++"));
        assert_eq!(m.schedule.as_deref(), Some("SGM Uniform"));
        assert_eq!((m.width, m.height, m.seed), (Some(832), Some(1216), Some(99)));
        assert_eq!(m.negative_prompt.as_deref(), Some("fog"));
        assert_eq!(
            m.loras,
            vec![LoraRef {
                name: "ink".into(),
                weight: Some(0.7),
                hash: Some("aabbccddeeff".into())
            }]
        );
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
        let (p, problems) = m.generation_params();
        assert_eq!((p.steps, p.seed, p.width), (30, 99, 832));
        assert_eq!(
            problems.len(),
            1,
            "Euler a CFG++ is not run by Easel (SGM Uniform is): {problems:?}"
        );
    }

    #[test]
    fn a1111_old_sampler_names_and_bad_values() {
        let m = read(&[(
            "parameters",
            "x\nSteps: many, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1, Size: 512x512",
        )]);
        assert_eq!(m.sampler.as_deref(), Some("DPM++ 2M"));
        assert_eq!(m.schedule.as_deref(), Some("Karras"));
        assert_eq!(m.steps, None);
        assert_eq!(m.seed, Some(1));
        assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
        assert!(m.warnings[0].contains("Steps: many"));
    }

    #[test]
    fn civitai_resources_fill_model_and_loras() {
        let m = read(&[(
            "UserComment",
            "a castle\nSteps: 25, Sampler: Euler a, CFG scale: 7, Seed: 3, Size: 1024x1024, Civitai resources: \
             [{\"type\":\"checkpoint\",\"modelVersionId\":1,\"modelName\":\"Pony\",\"modelVersionName\":\"V6\"},\
             {\"type\":\"lora\",\"weight\":0.8,\"modelVersionId\":2,\"modelName\":\"Glow\",\"modelVersionName\":\"v1\"}], \
             Civitai metadata: {}",
        )]);
        assert_eq!(m.generator, "Civitai");
        assert_eq!(m.model.as_deref(), Some("Pony V6"));
        assert_eq!(m.loras[0].name, "Glow");
        assert_eq!(m.loras[0].weight, Some(0.8));
        assert_eq!(m.source, "EXIF UserComment");
    }

    #[test]
    fn swarmui_json() {
        let m = read(&[(
            "parameters",
            r#"{"sui_image_params": {"prompt": "a cat on a roof", "negativeprompt": "blurry",
               "model": "OfficialStableDiffusion/sd_xl_base_1.0", "seed": 12345, "steps": 30, "cfgscale": 7.0,
               "sampler": "dpmpp_2m_sde_gpu", "scheduler": "karras", "width": 1024, "height": 1536,
               "loras": ["detail"], "loraweights": ["0.6"], "clipstopatlayer": -2, "swarm_version": "0.9.5"},
               "sui_models": [{"name": "sd_xl_base_1.0.safetensors", "param": "model", "hash": "0x31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b"},
                              {"name": "detail.safetensors", "param": "loras", "hash": "0xabc"}]}"#,
        )]);
        assert_eq!(m.generator, "SwarmUI");
        assert_eq!(m.prompt.as_deref(), Some("a cat on a roof"));
        assert_eq!(m.sampler.as_deref(), Some("DPM++ 2M SDE"));
        assert_eq!(m.schedule.as_deref(), Some("Karras"));
        assert_eq!((m.steps, m.seed, m.cfg_scale), (Some(30), Some(12345), Some(7.0)));
        assert_eq!(
            (m.width, m.height, m.clip_skip),
            (Some(1024), Some(1536), Some(2))
        );
        assert_eq!(m.model.as_deref(), Some("sd_xl_base_1.0"));
        assert_eq!(m.model_hash.as_deref(), Some("31e35c80fc"));
        assert_eq!(m.loras[0].weight, Some(0.6));
        assert_eq!(m.loras[0].hash.as_deref(), Some("abc"));
    }

    #[test]
    fn fooocus_and_ruined_fooocus_json() {
        let m = read(&[(
            "parameters",
            r#"{"adm_guidance": "(1.5, 0.8, 0.3)", "base_model": "juggernautXL_v8Rundiffusion.safetensors",
               "base_model_hash": "aeb7e9e689", "clip_skip": 2, "guidance_scale": 4, "loras": [["sd_xl_offset_example-lora_1.0.safetensors", 0.1, "4852686128"]],
               "metadata_scheme": "fooocus", "negative_prompt": "", "performance": "Speed", "prompt": "a red car",
               "resolution": "(1152, 896)", "sampler": "dpmpp_2m_sde_gpu", "scheduler": "karras", "seed": "1234567",
               "steps": 30, "styles": "['Fooocus V2']", "version": "Fooocus v2.5.5"}"#,
        )]);
        assert_eq!(m.generator, "Fooocus");
        assert_eq!((m.width, m.height), (Some(1152), Some(896)));
        assert_eq!(m.seed, Some(1_234_567));
        assert_eq!(m.cfg_scale, Some(4.0));
        assert_eq!(m.sampler.as_deref(), Some("DPM++ 2M SDE"));
        assert_eq!(m.loras[0].name, "sd_xl_offset_example-lora_1.0");
        assert_eq!(m.loras[0].hash.as_deref(), Some("4852686128"));

        let m = read(&[(
            "parameters",
            r#"{"Prompt": "a dog", "Negative": "ugly", "steps": 24, "cfg": 4.5, "width": 1024, "height": 1024, "seed": 7,
               "sampler_name": "dpmpp_2m", "scheduler": "simple", "base_model_name": "juggernaut.safetensors",
               "base_model_hash": "abc123", "loras": [["BFA3BB4FBE", "1.0 - moi\\helios-beasts.safetensors"]],
               "start_step": 0, "denoise": null, "clip_skip": 1, "software": "RuinedFooocus"}"#,
        )]);
        assert_eq!(m.generator, "RuinedFooocus");
        assert_eq!(m.prompt.as_deref(), Some("a dog"));
        assert_eq!(m.negative_prompt.as_deref(), Some("ugly"));
        assert_eq!(m.sampler.as_deref(), Some("DPM++ 2M"));
        assert_eq!(m.schedule.as_deref(), Some("Simple"));
        assert_eq!(m.model.as_deref(), Some("juggernaut"));
        assert_eq!(m.loras[0].name, "helios-beasts");
        assert_eq!(m.loras[0].weight, Some(1.0));
    }

    #[test]
    fn novelai_v3_and_v4() {
        let m = read(&[
            ("Title", "NovelAI generated image"),
            ("Description", "1girl, cherry blossoms"),
            ("Software", "NovelAI"),
            ("Source", "Stable Diffusion XL C1E1DE52"),
            (
                "Comment",
                r#"{"prompt": "1girl, cherry blossoms", "steps": 28, "height": 1216, "width": 832, "scale": 5.0,
                   "uncond_scale": 1.0, "cfg_rescale": 0.0, "seed": 2964131415, "n_samples": 1, "noise_schedule": "native",
                   "sampler": "k_euler_ancestral", "uc": "lowres, bad anatomy", "strength": 0.7, "noise": 0.0}"#,
            ),
        ]);
        assert_eq!(m.generator, "NovelAI");
        assert_eq!(m.sampler.as_deref(), Some("Euler a"));
        assert_eq!(m.schedule.as_deref(), Some("Uniform"));
        assert_eq!(m.seed, Some(2_964_131_415));
        assert_eq!(m.negative_prompt.as_deref(), Some("lowres, bad anatomy"));
        assert_eq!(m.denoising_strength, None, "txt2img states no strength");
        assert_eq!(m.model.as_deref(), Some("Stable Diffusion XL C1E1DE52"));

        let m = read(&[
            ("Software", "NovelAI"),
            (
                "Comment",
                r#"{"steps": 23, "scale": 5, "seed": 1, "width": 1024, "height": 1024, "sampler": "k_dpmpp_2m_sde",
                   "noise_schedule": "karras",
                   "v4_prompt": {"caption": {"base_caption": "two girls", "char_captions": [{"char_caption": "girl, red hair", "centers": [{"x": 0.3, "y": 0.5}]}]}},
                   "v4_negative_prompt": {"caption": {"base_caption": "blurry", "char_captions": []}}}"#,
            ),
        ]);
        assert_eq!(m.prompt.as_deref(), Some("two girls"));
        assert_eq!(m.negative_prompt.as_deref(), Some("blurry"));
        assert_eq!(m.sampler.as_deref(), Some("DPM++ 2M SDE"));
        assert_eq!(m.extra_value("NovelAI characters"), Some("girl, red hair"));
    }

    #[test]
    fn invokeai_dream_and_tensorart() {
        let m = read(&[(
            "Dream",
            "\"a photo of a cat [blurry, dark]\" -s 50 -S 3357757885 -W 512 -H 768 -C 7.5 -A k_euler_a",
        )]);
        assert_eq!(m.generator, "InvokeAI");
        assert_eq!(m.prompt.as_deref(), Some("a photo of a cat"));
        assert_eq!(m.negative_prompt.as_deref(), Some("blurry, dark"));
        assert_eq!(
            (m.steps, m.seed, m.width, m.height),
            (Some(50), Some(3_357_757_885), Some(512), Some(768))
        );
        assert_eq!(m.sampler.as_deref(), Some("Euler a"));

        let m = read(&[(
            "generation_data",
            r#"{"prompt": "a forest", "negativePrompt": "people", "width": 768, "height": 1152, "steps": 25,
               "cfgScale": 6, "seed": "777", "clipSkip": 2, "samplerName": "DPM++ 2M Karras",
               "baseModel": {"modelFileName": "dreamshaper_8.safetensors", "hash": "879DB523C3"},
               "models": [{"type": "LORA", "label": "detail", "weight": 0.5}]}"#,
        )]);
        assert_eq!(m.generator, "TensorArt");
        assert_eq!(m.negative_prompt.as_deref(), Some("people"));
        assert_eq!(m.seed, Some(777));
        assert_eq!(m.sampler.as_deref(), Some("DPM++ 2M"));
        assert_eq!(m.schedule.as_deref(), Some("Karras"));
        assert_eq!(m.model.as_deref(), Some("dreamshaper_8"));
        assert_eq!(m.loras[0].weight, Some(0.5));
    }

    #[test]
    fn comfyui_prompt_from_webp_exif_and_unknown_json() {
        let graph = r#"{"3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 20, "cfg": 8,
            "sampler_name": "euler_ancestral", "scheduler": "karras", "denoise": 1, "model": ["4", 0],
            "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
            "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5.safetensors"}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a house", "clip": ["4", 1]}},
            "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
            "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0]}},
            "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}}}"#;
        let m = read(&[("prompt", graph)]);
        assert_eq!(m.generator, "ComfyUI");
        assert_eq!(m.sampler.as_deref(), Some("Euler a"));
        assert_eq!(m.schedule.as_deref(), Some("Karras"));
        assert_eq!(m.model.as_deref(), Some("v1-5"));

        let m = read(&[(
            "parameters",
            r#"{"prompt": "a boat", "seed": 3, "num_inference_steps": 8}"#,
        )]);
        assert_eq!(m.generator, "unknown");
        assert_eq!((m.steps, m.seed), (Some(8), Some(3)));
        assert_eq!(m.warnings.len(), 1);
        assert!(recognise(&texts(&[("Software", "GIMP"), ("parameters", "{}")])).is_none());
        let m = read(&[
            ("prompt", "a kite"),
            ("negative_prompt", "rain"),
            ("seed", "31"),
            ("use_stable_diffusion_model", "sd-v1-4"),
            ("num_inference_steps", "25"),
            ("guidance_scale", "7.5"),
            ("sampler_name", "euler_a"),
            ("width", "512"),
            ("height", "640"),
        ]);
        assert_eq!(m.generator, "Easy Diffusion");
        assert_eq!(
            (m.seed, m.steps, m.cfg_scale, m.height),
            (Some(31), Some(25), Some(7.5), Some(640))
        );
        assert_eq!(m.model.as_deref(), Some("sd-v1-4"));
        // Draw Things' XMP JSON shares NovelAI's `uc` key but not its sampler names.
        let m = read(&[(
            "xmp:UserComment",
            r#"{"c": "a lamp", "uc": "dark", "sampler": "DPM++ 2M Karras", "seed": 9, "steps": 12, "scale": 4.5, "size": "768x512"}"#,
        )]);
        assert_eq!(m.generator, "unknown");
        assert_eq!(m.prompt.as_deref(), Some("a lamp"));
        assert_eq!(
            (m.width, m.height, m.cfg_scale),
            (Some(768), Some(512), Some(4.5))
        );
        assert_eq!(
            (m.sampler.as_deref(), m.schedule.as_deref()),
            (Some("DPM++ 2M"), Some("Karras"))
        );
        assert!(recognise(&texts(&[])).is_none());
    }
}
