//! A1111 v1.10 infotext: writing matches `processing.create_infotext` byte for byte; reading follows
//! `infotext_utils.parse_generation_parameters` and `sd_samplers.get_sampler_and_scheduler`.

use std::str::FromStr;

use crate::params::{GenerationParams, ParamsError, RngSource, Sampler, Schedule};

/// Keys of A1111's `create_infotext` dict, in its order, as (key, source). Keys we model are
/// written from the struct; the others come from [`GenerationParams::extra`] when present, so
/// that A1111 infotexts keep their order on a round trip. Remaining extra keys go where
/// `**p.extra_generation_params` sits, just before `Version`.
const INFOTEXT_ORDER: [(&str, Slot); 29] = [
    ("Steps", Slot::Modelled),
    ("Sampler", Slot::Modelled),
    ("Schedule type", Slot::Modelled),
    ("CFG scale", Slot::Modelled),
    ("Image CFG scale", Slot::Extra),
    ("Seed", Slot::Modelled),
    ("Face restoration", Slot::Extra),
    ("Size", Slot::Modelled),
    ("Model hash", Slot::Modelled),
    ("Model", Slot::Modelled),
    ("FP8 weight", Slot::Extra),
    ("Cache FP16 weight for LoRA", Slot::Extra),
    ("VAE hash", Slot::Extra),
    ("VAE", Slot::Extra),
    ("Variation seed", Slot::Extra),
    ("Variation seed strength", Slot::Extra),
    ("Seed resize from", Slot::Extra),
    ("Denoising strength", Slot::Modelled),
    ("Conditional mask weight", Slot::Extra),
    ("Clip skip", Slot::Modelled),
    ("ENSD", Slot::Modelled),
    ("Token merging ratio", Slot::Extra),
    ("Token merging ratio hr", Slot::Extra),
    ("Init image hash", Slot::Extra),
    ("RNG", Slot::Modelled),
    ("Tiling", Slot::Extra),
    (EXTRA_GENERATION_PARAMS, Slot::Rest),
    ("Version", Slot::Modelled),
    ("User", Slot::Extra),
];

/// Marker in [`INFOTEXT_ORDER`] for the place of the remaining extra keys.
const EXTRA_GENERATION_PARAMS: &str = "";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Modelled,
    Extra,
    Rest,
}

fn is_fixed_key(key: &str) -> bool {
    INFOTEXT_ORDER
        .iter()
        .any(|&(k, slot)| slot != Slot::Rest && k == key)
}

/// A1111 `parameters` text, byte-for-byte as `create_infotext` in A1111 v1.10 writes it.
///
/// `resolved_schedule_label` is what goes after `Schedule type:` (see
/// [`GenerationParams::a1111_schedule_label`]); `version` is the `Version:` value, omitted when empty.
/// As in A1111, `ENSD` is written only for samplers that use it ([`Sampler::writes_ensd`]),
/// `Clip skip` only above 1, `RNG` only when not GPU, and the whole text is stripped of
/// surrounding whitespace. Batch count and size are not part of the text.
#[must_use]
pub fn render(params: &GenerationParams, resolved_schedule_label: &str, version: &str) -> String {
    let mut fields: Vec<(&str, String)> = Vec::new();
    for &(key, slot) in &INFOTEXT_ORDER {
        match slot {
            Slot::Modelled => {
                if let Some(value) = modelled_value(params, key, resolved_schedule_label, version) {
                    fields.push((key, value));
                }
            }
            Slot::Extra => {
                if let Some((_, value)) = params.extra.iter().find(|(k, _)| k == key) {
                    fields.push((key, value.clone()));
                }
            }
            Slot::Rest => {
                for (k, v) in &params.extra {
                    let already = fields.iter().any(|(done, _)| done == k);
                    if !is_fixed_key(k) && !already {
                        fields.push((k, v.clone()));
                    }
                }
            }
        }
    }

    // `", ".join([k if k == v else f'{k}: {quote(v)}' ...])`
    let params_line = fields
        .iter()
        .map(|(k, v)| {
            if k == v {
                (*k).to_owned()
            } else {
                format!("{k}: {}", quote(v))
            }
        })
        .collect::<Vec<_>>()
        .join(", ");

    let negative = if params.negative_prompt.is_empty() {
        String::new()
    } else {
        format!("\nNegative prompt: {}", params.negative_prompt)
    };
    let text = format!("{}{negative}\n{params_line}", params.prompt);
    py_strip(&text).to_owned()
}

fn modelled_value(
    params: &GenerationParams,
    key: &str,
    schedule_label: &str,
    version: &str,
) -> Option<String> {
    match key {
        "Steps" => Some(params.steps.to_string()),
        "Sampler" => Some(params.sampler.a1111_name().to_owned()),
        "Schedule type" => Some(schedule_label.to_owned()),
        "CFG scale" => Some(py_number(params.cfg_scale)),
        "Seed" => Some(params.seed.to_string()),
        "Size" => Some(format!("{}x{}", params.width, params.height)),
        "Model hash" => params.model_hash.clone(),
        "Model" => params.model_name.clone(),
        "Denoising strength" => params.denoising_strength.map(py_number),
        "Clip skip" => (params.clip_skip > 1).then(|| params.clip_skip.to_string()),
        "ENSD" => (params.eta_noise_seed_delta != 0 && params.sampler.writes_ensd())
            .then(|| params.eta_noise_seed_delta.to_string()),
        "RNG" => (params.rng != RngSource::Gpu).then(|| params.rng.a1111_name().to_owned()),
        "Version" => (!version.is_empty()).then(|| version.to_owned()),
        _ => None,
    }
}

/// Reads an A1111 `parameters` text as `parse_generation_parameters` does.
///
/// Fields the text lacks keep their [`Default`] values, except that a missing sampler means
/// A1111's first sampler, DPM++ 2M. Old sampler names with a schedule suffix
/// (`DPM++ 2M Karras`) are split, and a schedule equal to the sampler's default becomes
/// `Automatic`, as in A1111's `get_sampler_and_scheduler`. `Version` is not kept (the writer
/// takes it as an argument; [`RawInfotext`] has it). Unknown keys go to `extra` in order.
///
/// # Errors
/// A sampler, schedule type or RNG source Easel does not know, or a number or size that
/// cannot be read ([`ParamsError::InvalidValue`]).
pub fn parse(text: &str) -> Result<GenerationParams, ParamsError> {
    let raw = RawInfotext::parse(text);
    let mut params = GenerationParams {
        prompt: raw.prompt,
        negative_prompt: raw.negative_prompt,
        ..GenerationParams::default()
    };
    let mut sampler_name = None;
    let mut schedule_name = None;

    for (key, value) in raw.params {
        match key.as_str() {
            "Steps" => params.steps = parse_int(&key, &value)?,
            "Sampler" => sampler_name = Some(value),
            "Schedule type" => schedule_name = Some(value),
            "CFG scale" => params.cfg_scale = parse_float(&key, &value)?,
            "Seed" => params.seed = parse_int(&key, &value)?,
            "Size" => (params.width, params.height) = parse_size(&key, &value)?,
            "Model hash" => params.model_hash = Some(value),
            "Model" => params.model_name = Some(value),
            "Denoising strength" => {
                params.denoising_strength = Some(parse_float(&key, &value)?);
            }
            "Clip skip" => params.clip_skip = parse_int(&key, &value)?,
            "ENSD" => params.eta_noise_seed_delta = parse_int(&key, &value)?,
            "RNG" => params.rng = RngSource::from_name(&value)?,
            "Version" => {}
            _ => params.extra.push((key, value)),
        }
    }

    (params.sampler, params.schedule) =
        sampler_and_schedule(sampler_name.as_deref(), schedule_name.as_deref())?;
    Ok(params)
}

/// Every A1111 v1.10 scheduler as (internal name, label, aliases), in `sd_schedulers.schedulers`
/// order. Used to split old sampler names such as `DPM++ 2M Karras`.
pub(crate) const A1111_SCHEDULERS: [(&str, &str, &[&str]); 12] = [
    ("automatic", "Automatic", &[]),
    ("uniform", "Uniform", &[]),
    ("karras", "Karras", &[]),
    ("exponential", "Exponential", &[]),
    ("polyexponential", "Polyexponential", &[]),
    ("sgm_uniform", "SGM Uniform", &["SGMUniform"]),
    ("kl_optimal", "KL Optimal", &[]),
    ("align_your_steps", "Align Your Steps", &[]),
    ("simple", "Simple", &[]),
    ("normal", "Normal", &[]),
    ("ddim", "DDIM", &[]),
    ("beta", "Beta", &[]),
];

/// A1111's `get_sampler_and_scheduler(sampler, scheduler, convert_automatic=True)`, except that
/// names Easel does not implement are errors instead of silently becoming the defaults.
fn sampler_and_schedule(
    sampler_name: Option<&str>,
    schedule_name: Option<&str>,
) -> Result<(Sampler, Schedule), ParamsError> {
    let mut name = sampler_name.unwrap_or(Sampler::DpmPp2M.a1111_name()).trim();
    let mut schedule_label = schedule_name.map(str::trim);

    for (internal, label, aliases) in A1111_SCHEDULERS {
        let options = [label, internal].into_iter().chain(aliases.iter().copied());
        for option in options {
            if let Some(stem) = strip_suffix_ignore_ascii_case(name, option) {
                name = stem;
                schedule_label = Some(label);
                break;
            }
        }
    }

    let sampler = Sampler::from_name(name)?;
    let schedule = match schedule_label {
        Some(label) => Schedule::from_name(label)?,
        None => Schedule::Automatic,
    };
    if sampler.default_schedule() == Some(schedule) {
        return Ok((sampler, Schedule::Automatic));
    }
    Ok((sampler, schedule))
}

/// `name[:-len(suffix)-1]` when `name` ends with a space and `suffix` (ASCII case ignored).
pub(crate) fn strip_suffix_ignore_ascii_case<'a>(name: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = name.len().checked_sub(suffix.len() + 1)?;
    // `tail` may start with a multi-byte character (found by fuzzing: "x€IM" against "DDIM").
    let word = name.get(cut..)?.strip_prefix(' ')?;
    word.eq_ignore_ascii_case(suffix).then(|| &name[..cut])
}

fn parse_int<T: FromStr>(key: &str, value: &str) -> Result<T, ParamsError> {
    value.trim().parse().map_err(|_| ParamsError::InvalidValue {
        key: key.to_owned(),
        value: value.to_owned(),
        expected: "a whole number",
    })
}

fn parse_float(key: &str, value: &str) -> Result<f32, ParamsError> {
    value
        .trim()
        .parse::<f32>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| ParamsError::InvalidValue {
            key: key.to_owned(),
            value: value.to_owned(),
            expected: "a number such as 7 or 7.5",
        })
}

/// `Size: WxH`, read like A1111's `re_imagesize` (`^(\d+)x(\d+)$`).
fn parse_size(key: &str, value: &str) -> Result<(u32, u32), ParamsError> {
    let invalid = || ParamsError::InvalidValue {
        key: key.to_owned(),
        value: value.to_owned(),
        expected: "WIDTHxHEIGHT such as 512x768",
    };
    let (w, h) = value.split_once('x').ok_or_else(invalid)?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(w) || !digits(h) {
        return Err(invalid());
    }
    Ok((
        w.parse().map_err(|_| invalid())?,
        h.parse().map_err(|_| invalid())?,
    ))
}

/// An infotext split into prompt, negative prompt and `key: value` pairs, before any field is
/// interpreted. This is the first half of A1111's `parse_generation_parameters`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawInfotext {
    /// Prompt lines, each stripped, joined with `\n`.
    pub prompt: String,
    /// Negative prompt lines, each stripped, joined with `\n`.
    pub negative_prompt: String,
    /// Pairs of the params line in order, values unquoted. A repeated key keeps its first place
    /// and its last value (Python dict semantics); keys with an empty value are skipped, as
    /// A1111's `v[0]` raises on them.
    pub params: Vec<(String, String)>,
}

impl RawInfotext {
    /// Splits `text` as A1111 does: the last line is the params line when it has at least three
    /// `key: value` matches of A1111's `re_param`; lines before it are the prompt until one that
    /// starts with `Negative prompt:`, after which they are the negative prompt.
    #[must_use]
    pub fn parse(text: &str) -> Self {
        let mut lines: Vec<&str> = py_strip(text).split('\n').collect();
        let last_line = lines.pop().unwrap_or_default();
        let mut matches = find_params(last_line);
        if matches.len() < 3 {
            lines.push(last_line);
            matches.clear();
        }

        let mut raw = RawInfotext::default();
        let mut done_with_prompt = false;
        for line in lines {
            let mut line = py_strip(line);
            if let Some(rest) = line.strip_prefix("Negative prompt:") {
                done_with_prompt = true;
                line = py_strip(rest);
            }
            let target = if done_with_prompt {
                &mut raw.negative_prompt
            } else {
                &mut raw.prompt
            };
            if !target.is_empty() {
                target.push('\n');
            }
            target.push_str(line);
        }

        for (key, value) in matches {
            if value.is_empty() {
                continue;
            }
            let value = if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
                unquote(&value)
            } else {
                value
            };
            match raw.params.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => raw.params.push((key, value)),
            }
        }
        raw
    }

    /// The value of `key` in the params line, if present.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Python's `str.isspace`: Rust's Unicode whitespace plus the separators U+001C..U+001F.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()`.
fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// Python's `\w` for `str` patterns (alphanumerics and underscore). Rust's alphanumeric set also
/// has a few combining marks that Python excludes; A1111 keys never contain them.
fn is_py_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `re_param.findall(line)` for A1111's
/// `\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)`, returning (key, raw value) pairs.
fn find_params(line: &str) -> Vec<(String, String)> {
    let chars: Vec<char> = line.chars().collect();
    let mut found = Vec::new();
    let mut scan = Scan::default();
    let mut pos = 0;
    while pos < chars.len() {
        match match_param_at(&chars, pos, &mut scan) {
            Ok((key, value, end)) => {
                found.push((key, value));
                pos = end;
            }
            // Every start up to `next` fails the same way (see `match_param_at`): skip them, so a
            // long line without pairs is read in linear time.
            Err(next) => pos = next.max(pos + 1),
        }
    }
    found
}

/// What earlier match attempts on the same line learned.
#[derive(Default)]
struct Scan {
    /// A quoted value opened here ran to the end of the line without closing, so every quote
    /// after it does too (the later quote was an escaped one of this scan, which then stays
    /// aligned with it): no need to scan again.
    unclosed_quote_from: Option<usize>,
}

/// One attempt of `re_param` anchored at `start`: key, value and the end of the match, or the
/// first start that could match differently when it fails.
///
/// The pattern needs no general backtracking: `\s*` is followed by `\w`, which never matches
/// space; the key run `[\w \-/]+` must be followed by `:`, which it cannot contain; the quoted
/// alternative has exactly one possible end; and `[^,]*(?:,|$)` always matches greedily. A start
/// inside a key run that is not followed by `:` reaches the same end of the run and fails too.
fn match_param_at(c: &[char], start: usize, scan: &mut Scan) -> Result<(String, String, usize), usize> {
    let n = c.len();
    let mut i = start;
    while i < n && is_py_space(c[i]) {
        i += 1;
    }
    if i >= n || !is_py_word(c[i]) {
        return Err(i);
    }
    let key_start = i;
    i += 1;
    let run_start = i;
    while i < n && (is_py_word(c[i]) || matches!(c[i], ' ' | '-' | '/')) {
        i += 1;
    }
    if i == run_start || i >= n || c[i] != ':' {
        return Err(i);
    }
    let key: String = c[key_start..i].iter().collect();
    i += 1;
    while i < n && is_py_space(c[i]) {
        i += 1;
    }
    let value_start = i;

    let quoted = if scan.unclosed_quote_from.is_some_and(|from| value_start > from) {
        None
    } else {
        match match_quoted(c, value_start) {
            Quoted::Closed(end) => Some(end),
            Quoted::Unclosed => {
                scan.unclosed_quote_from = Some(value_start);
                None
            }
            Quoted::No => None,
        }
    };
    if let Some(after_quote) = quoted {
        if after_quote == n {
            return Ok((key, c[value_start..].iter().collect(), n));
        }
        if c[after_quote] == ',' {
            let value = c[value_start..after_quote].iter().collect();
            return Ok((key, value, after_quote + 1));
        }
    }

    let value_end = c[value_start..]
        .iter()
        .position(|&ch| ch == ',')
        .map_or(n, |p| value_start + p);
    let end = if value_end < n { value_end + 1 } else { n };
    Ok((key, c[value_start..value_end].iter().collect(), end))
}

/// How a quoted value at a position reads.
enum Quoted {
    /// It closes; the index after the closing quote.
    Closed(usize),
    /// It opens but runs to the end of the line.
    Unclosed,
    /// No quoted value here.
    No,
}

/// `"(?:\\.|[^\\"])+"` at `start`: the index after the closing quote.
fn match_quoted(c: &[char], start: usize) -> Quoted {
    if c.get(start) != Some(&'"') {
        return Quoted::No;
    }
    let mut i = start + 1;
    let mut items = 0;
    loop {
        let Some(&ch) = c.get(i) else {
            return Quoted::Unclosed;
        };
        match ch {
            '"' => break,
            // `.` does not match a newline; params lines have none.
            '\\' if c.get(i + 1).is_some_and(|&e| e != '\n') => i += 2,
            '\\' => return Quoted::No,
            _ => i += 1,
        }
        items += 1;
    }
    if items > 0 {
        Quoted::Closed(i + 1)
    } else {
        Quoted::No
    }
}

/// A1111 `infotext_utils.quote`: JSON-quote (like `json.dumps(ensure_ascii=False)`) when the
/// value has `,`, `:` or a newline; otherwise unchanged.
pub(crate) fn quote(text: &str) -> String {
    if !text.contains([',', '\n', ':']) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let code = u32::from(c) as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[code >> 4]));
                out.push(char::from(HEX[code & 0xf]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A1111 `infotext_utils.unquote`: `json.loads` of a quoted value, or the value unchanged when
/// that fails.
fn unquote(text: &str) -> String {
    serde_json::from_str::<String>(text).unwrap_or_else(|_| text.to_owned())
}

/// A number as A1111 writes one that came from the web UI: browsers send whole numbers as JSON
/// integers (`7`), others as floats, printed with Python's `repr` (`7.5`, `1e-05`).
pub fn py_number(x: f32) -> String {
    if x.is_nan() {
        return "nan".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if x == 0.0 {
        return "0".to_owned(); // also for -0.0, which JavaScript sends as 0
    }
    // JavaScript prints whole numbers below 1e21 in full. Rust's `Display` prints the shortest
    // digits that round-trip, padded with zeros and without an exponent, e.g. 1e20 in full.
    if x.fract() == 0.0 && x.abs() < 1e21 {
        return format!("{x}");
    }
    py_float_repr(x)
}

/// Python's `repr(float)` of the shortest decimal that round-trips `x` as an f32.
fn py_float_repr(x: f32) -> String {
    // `{:e}` gives the shortest round-trip digits, e.g. "-1.25e-5".
    let formatted = format!("{x:e}");
    let (mantissa, exponent) = formatted.split_once('e').unwrap_or((&formatted, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();

    if (-4..16).contains(&exponent) {
        // Digits before the decimal point; `exponent` is in -4..16 so both conversions succeed.
        let point = usize::try_from(exponent + 1).unwrap_or(0);
        if point == 0 {
            let zeros = "0".repeat(usize::try_from(-exponent - 1).unwrap_or(0));
            format!("{sign}0.{zeros}{digits}")
        } else if digits.len() > point {
            format!("{sign}{}.{}", &digits[..point], &digits[point..])
        } else {
            format!("{sign}{digits}{}.0", "0".repeat(point - digits.len()))
        }
    } else {
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        let body = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits
        };
        format!("{sign}{body}e{exp_sign}{:02}", exponent.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_names_with_multibyte_characters_are_errors_not_panics() {
        for name in ["x€IM", "€IM", "a€ Karras", "Euler a ☃", "☃"] {
            let text = format!("p\nSteps: 2, Sampler: {name}, Seed: 1");
            assert!(parse(&text).is_err(), "{name}");
        }
        assert_eq!(
            strip_suffix_ignore_ascii_case("DPM++ 2M karras", "Karras"),
            Some("DPM++ 2M")
        );
    }

    /// Parses `text` and writes it back with the label and version A1111 would have used.
    fn rewrite(text: &str) -> String {
        let params = parse(text).expect("parses");
        let version = RawInfotext::parse(text)
            .get("Version")
            .unwrap_or_default()
            .to_owned();
        render(&params, params.a1111_schedule_label(), &version)
    }

    #[test]
    fn names_round_trip_and_ignore_case() {
        for s in Sampler::ALL {
            assert_eq!(Sampler::from_name(s.a1111_name()), Ok(s));
            assert_eq!(Sampler::from_name(&s.a1111_name().to_uppercase()), Ok(s));
            assert_eq!(s.to_string().parse::<Sampler>(), Ok(s));
        }
        for s in Schedule::ALL {
            assert_eq!(Schedule::from_name(&s.a1111_name().to_lowercase()), Ok(s));
        }
        for r in RngSource::ALL {
            assert_eq!(RngSource::from_name(&r.a1111_name().to_lowercase()), Ok(r));
        }
        assert_eq!(Sampler::from_name(" euler A "), Ok(Sampler::EulerA));
        assert_eq!(Sampler::from_name("k_dpmpp_2m"), Ok(Sampler::DpmPp2M));
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        let err = Sampler::from_name("Euler a CFG++").expect_err("not supported yet");
        assert_eq!(
            err.to_string(),
            "unknown sampler 'Euler a CFG++': Easel supports DPM++ 2M, DPM++ SDE, DPM++ 2M SDE, DPM++ \
             2M SDE Heun, DPM++ 2S a, DPM++ 3M SDE, Euler a, Euler, LMS, Heun, DPM2, DPM2 a, DPM fast, \
             DPM adaptive, Restart, DDIM, DDIM CFG++, PLMS, UniPC, LCM, TCD"
        );
        let err = Schedule::from_name("Karras Exponential").expect_err("not an A1111 v1.10 schedule");
        assert_eq!(
            err.to_string(),
            "unknown schedule type 'Karras Exponential': Easel supports Automatic, Uniform, Karras, \
             Exponential, Polyexponential, SGM Uniform, KL Optimal, Align Your Steps, Simple, Normal, \
             DDIM, Beta"
        );
        let err = RngSource::from_name("TPU").expect_err("not a source");
        assert_eq!(
            err.to_string(),
            "unknown RNG source 'TPU': valid sources are GPU, CPU, NV"
        );
    }

    #[test]
    fn default_infotext_matches_a1111_layout() {
        let params = GenerationParams {
            prompt: "a cat".into(),
            seed: 1,
            ..GenerationParams::default()
        };
        assert_eq!(
            render(&params, params.a1111_schedule_label(), "easel 0.1.0"),
            "a cat\nSteps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 1, \
             Size: 512x512, Version: easel 0.1.0"
        );
    }

    #[test]
    fn writes_every_modelled_field_in_a1111_order() {
        let params = GenerationParams {
            prompt: "a cat".into(),
            negative_prompt: "blurry".into(),
            steps: 30,
            sampler: Sampler::EulerA,
            schedule: Schedule::Karras,
            cfg_scale: 7.5,
            seed: 3_000_000_000,
            width: 640,
            height: 384,
            clip_skip: 2,
            batch_count: 4,
            batch_size: 2,
            rng: RngSource::Cpu,
            eta_noise_seed_delta: 31337,
            model_name: Some("dreamshaper_8".into()),
            model_hash: Some("879db523c3".into()),
            denoising_strength: Some(0.75),
            extra: vec![
                ("Lora hashes".into(), "detail: 0123456789ab".into()),
                ("VAE hash".into(), "735e4c3a44".into()),
                ("User".into(), "alice".into()),
                (
                    "Steps".into(),
                    "ignored: modelled keys come from the struct".into(),
                ),
            ],
        };
        assert_eq!(
            render(&params, "Karras", "easel 0.1.0"),
            "a cat\nNegative prompt: blurry\nSteps: 30, Sampler: Euler a, Schedule type: Karras, \
             CFG scale: 7.5, Seed: 3000000000, Size: 640x384, Model hash: 879db523c3, \
             Model: dreamshaper_8, VAE hash: 735e4c3a44, Denoising strength: 0.75, Clip skip: 2, \
             ENSD: 31337, RNG: CPU, Lora hashes: \"detail: 0123456789ab\", Version: easel 0.1.0, \
             User: alice"
        );
    }

    #[test]
    fn ensd_is_written_only_for_samplers_that_use_it() {
        let mut params = GenerationParams {
            eta_noise_seed_delta: 31337,
            sampler: Sampler::Euler,
            ..GenerationParams::default()
        };
        assert!(!render(&params, "Automatic", "").contains("ENSD"));
        params.sampler = Sampler::EulerA;
        assert!(render(&params, "Automatic", "").contains(", ENSD: 31337"));
    }

    #[test]
    fn empty_version_is_left_out() {
        let text = render(&GenerationParams::default(), "Automatic", "");
        assert!(text.ends_with("Size: 512x512"), "{text}");
    }

    #[test]
    fn schedule_label_follows_the_sampler_default() {
        let mut params = GenerationParams {
            sampler: Sampler::DpmPp2M,
            ..GenerationParams::default()
        };
        assert_eq!(params.a1111_schedule_label(), "Karras");
        params.schedule = Schedule::Exponential;
        assert_eq!(params.a1111_schedule_label(), "Exponential");
        params.sampler = Sampler::Euler;
        params.schedule = Schedule::Automatic;
        assert_eq!(params.a1111_schedule_label(), "Automatic");
        params.sampler = Sampler::Ddim;
        params.schedule = Schedule::Karras;
        assert_eq!(params.a1111_schedule_label(), "Karras");
    }

    #[test]
    fn numbers_print_like_python() {
        let cases: [(f32, &str); 12] = [
            (7.0, "7"),
            (7.5, "7.5"),
            (0.1, "0.1"),
            (0.75, "0.75"),
            (0.7, "0.7"),
            (1.0, "1"),
            (-0.0, "0"),
            (1e-5, "1e-05"),
            (0.000_123, "0.000123"),
            (123_456.5, "123456.5"),
            (1e20, "100000000000000000000"),
            (3.4e38, "3.4e+38"),
        ];
        for (x, want) in cases {
            assert_eq!(py_number(x), want, "{x:e}");
        }
    }

    #[test]
    fn quote_matches_json_dumps() {
        assert_eq!(quote("plain value"), "plain value");
        assert_eq!(quote("has \"quotes\" only"), "has \"quotes\" only");
        assert_eq!(quote("a: b"), "\"a: b\"");
        for s in [
            "a, b",
            "x\ny",
            "c:\\d",
            "tab\t:\u{1}\u{1f}\u{7f}",
            "中文：, é",
            "\"q\": \u{8}\u{c}\r",
        ] {
            assert_eq!(quote(s), serde_json::to_string(s).expect("json"), "{s:?}");
            assert_eq!(unquote(&quote(s)), s);
        }
        assert_eq!(unquote("\"not json\\x\""), "\"not json\\x\"");
    }

    #[test]
    fn params_line_regex_semantics() {
        let found = |s: &str| find_params(s);
        let pairs = |v: &[(&str, &str)]| {
            v.iter()
                .map(|&(k, v)| (k.to_owned(), v.to_owned()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            found(r#"Steps: 20, Lora hashes: "a: 1, b: 2", Model: x"#),
            pairs(&[
                ("Steps", "20"),
                ("Lora hashes", r#""a: 1, b: 2""#),
                ("Model", "x")
            ])
        );
        // A quoted value followed by more text falls back to `[^,]*`.
        assert_eq!(
            found(r#"Ab: "x, y" z, Cd: 1"#),
            pairs(&[("Ab", "\"x"), ("Cd", "1")])
        );
        // Keys need two characters and may hold spaces, `-` and `/`.
        assert_eq!(
            found("a: 1, X-Y/Z plot: 2,Steps :3"),
            pairs(&[("X-Y/Z plot", "2"), ("Steps ", "3")])
        );
        assert_eq!(found(r#"Ab: "", Cd: "\"", Ef: "\""#).len(), 3);
    }

    /// Realistic A1111 v1.10 infotexts: each must survive parse + write unchanged.
    const A1111_TEXTS: [&str; 9] = [
        // txt2img, DPM++ 2M resolved to Karras.
        "masterpiece, best quality, 1girl, solo, looking at viewer\n\
         Negative prompt: lowres, bad anatomy, bad hands, text, error\n\
         Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1234567890, \
         Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.10.1",
        // Chinese prompt, LoRA, clip skip, ENSD, quoted hashes.
        "一只可爱的猫，坐在窗台上，阳光明媚 <lora:catStyle:0.8>\n\
         Negative prompt: 低质量，模糊，水印\n\
         Steps: 30, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7.5, Seed: 42, \
         Size: 768x512, Model hash: e6bb9ea85b, Model: anything-v5, Clip skip: 2, ENSD: 31337, \
         Lora hashes: \"catStyle: 0123456789ab, b: ba9876543210\", Version: v1.10.1",
        // Multi-line prompt with a blank line, no negative prompt, NV RNG.
        "a castle on a hill\nat sunset, dramatic lighting\n\nhighly detailed, 8k\n\
         Steps: 25, Sampler: Heun, Schedule type: Karras, CFG scale: 5.5, Seed: 3000000000, \
         Size: 640x640, Model hash: 879db523c3, Model: dreamshaper_8, RNG: NV, Version: v1.10.1",
        // Inpainting: VAE fields and denoising strength sit in A1111's fixed slots.
        "portrait of a woman, (freckles:1.2), soft light\n\
         Negative prompt: (worst quality:1.4), nsfw\n\
         Steps: 28, Sampler: DPM++ 2M, Schedule type: Exponential, CFG scale: 6, Seed: 987654321, \
         Size: 512x512, Model hash: 4199bcdd14, Model: revAnimated_v122, VAE hash: 735e4c3a44, \
         VAE: vae-ft-mse-840000-ema-pruned, Denoising strength: 0.75, Clip skip: 2, Mask blur: 4, \
         Inpaint area: Only masked, Masked area padding: 32, \
         TI hashes: \"easynegative: c74b4e810b03\", Version: v1.10.1",
        // Hires fix: denoising strength before the hires extras.
        "a red fox in the snow\n\
         Steps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 1, \
         Size: 512x512, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, \
         Denoising strength: 0.7, Hires upscale: 2, Hires steps: 10, Hires upscaler: Latent, \
         Version: v1.10.1",
        // LCM with CPU RNG, no model fields.
        "isometric tiny room, cozy\n\
         Steps: 4, Sampler: LCM, Schedule type: Automatic, CFG scale: 1.5, Seed: 7, \
         Size: 512x512, RNG: CPU, Version: v1.10.1",
        // DDIM; values with colons and commas are JSON-quoted, plain quotes are not.
        "\"hello\" said the robot, (chrome:1.1)\n\
         Negative prompt: line one\nline two\n\
         Steps: 50, Sampler: DDIM, Schedule type: Automatic, CFG scale: 9, Seed: 0, \
         Size: 1024x576, Model: \"weird,name: v2\", Emphasis: Original, Version: v1.10.1",
        // Empty prompt with a negative prompt.
        "Negative prompt: ugly\n\
         Steps: 15, Sampler: Euler, Schedule type: Uniform, CFG scale: 4, Seed: 99, Size: 320x448, \
         Version: v1.10.1",
        // Variation seed fields and the user name after Version.
        "a lighthouse\n\
         Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 5, \
         Size: 512x512, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Variation seed: 6, \
         Variation seed strength: 0.3, Version: v1.10.1, User: alice",
    ];

    #[test]
    fn real_a1111_texts_survive_a_round_trip() {
        for text in A1111_TEXTS {
            assert_eq!(rewrite(text), text);
        }
    }

    #[test]
    fn reads_the_fields_of_a_real_infotext() {
        let params = parse(A1111_TEXTS[1]).expect("parses");
        assert_eq!(
            params.prompt,
            "一只可爱的猫，坐在窗台上，阳光明媚 <lora:catStyle:0.8>"
        );
        assert_eq!(params.negative_prompt, "低质量，模糊，水印");
        assert_eq!(params.steps, 30);
        assert_eq!(params.sampler, Sampler::EulerA);
        assert_eq!(params.schedule, Schedule::Automatic);
        assert!((params.cfg_scale - 7.5).abs() < f32::EPSILON);
        assert_eq!((params.seed, params.width, params.height), (42, 768, 512));
        assert_eq!(params.model_hash.as_deref(), Some("e6bb9ea85b"));
        assert_eq!(params.model_name.as_deref(), Some("anything-v5"));
        assert_eq!((params.clip_skip, params.eta_noise_seed_delta), (2, 31337));
        assert_eq!(
            params.extra,
            vec![(
                "Lora hashes".to_owned(),
                "catStyle: 0123456789ab, b: ba9876543210".to_owned()
            )]
        );

        let raw = RawInfotext::parse(A1111_TEXTS[2]);
        assert_eq!(
            raw.prompt,
            "a castle on a hill\nat sunset, dramatic lighting\n\nhighly detailed, 8k"
        );
        assert_eq!(raw.negative_prompt, "");
        assert_eq!(raw.get("Version"), Some("v1.10.1"));
        let params = parse(A1111_TEXTS[2]).expect("parses");
        assert_eq!(params.rng, RngSource::Nv);
        assert_eq!(params.schedule, Schedule::Karras);
    }

    #[test]
    fn old_sampler_names_split_like_a1111() {
        let parse =
            |s: &str| parse(&format!("p\nSteps: 20, Sampler: {s}, Seed: 1")).map(|p| (p.sampler, p.schedule));
        // The sampler's own default schedule reads as Automatic (convert_automatic=True).
        assert_eq!(
            parse("DPM++ 2M Karras"),
            Ok((Sampler::DpmPp2M, Schedule::Automatic))
        );
        assert_eq!(parse("Euler a Karras"), Ok((Sampler::EulerA, Schedule::Karras)));
        assert_eq!(
            parse("Euler Exponential"),
            Ok((Sampler::Euler, Schedule::Exponential))
        );
        assert_eq!(parse("DPM++ 2M"), Ok((Sampler::DpmPp2M, Schedule::Automatic)));
        assert_eq!(
            parse("DPM++ 2M SDE Karras"),
            Ok((Sampler::DpmPp2MSde, Schedule::Karras))
        );
        assert_eq!(
            parse("DPM++ SDE Karras"),
            Ok((Sampler::DpmPpSde, Schedule::Automatic))
        );
        assert_eq!(
            parse("DPM++ 2M SDE Exponential"),
            Ok((Sampler::DpmPp2MSde, Schedule::Automatic))
        );
        assert_eq!(
            parse("DPM++ 2M SDE Heun Karras"),
            Ok((Sampler::DpmPp2MSdeHeun, Schedule::Karras))
        );
        assert_eq!(
            parse("DPM++ 3M SDE"),
            Ok((Sampler::DpmPp3MSde, Schedule::Automatic))
        );
        assert_eq!(parse("Euler Beta"), Ok((Sampler::Euler, Schedule::Beta)));
        assert_eq!(parse("LMS Karras"), Ok((Sampler::Lms, Schedule::Karras)));
        assert_eq!(parse("DPM2 a Karras"), Ok((Sampler::Dpm2A, Schedule::Automatic)));
        assert_eq!(
            parse("DPM++ 2S a Karras"),
            Ok((Sampler::DpmPp2SA, Schedule::Automatic))
        );
        assert_eq!(
            parse("DPM2 Align Your Steps"),
            Ok((Sampler::Dpm2, Schedule::AlignYourSteps))
        );
        // A1111 tries "Uniform" before "SGM Uniform", leaving the sampler name "Euler SGM".
        let err = parse("Euler SGM Uniform").expect_err("unsupported");
        assert!(
            matches!(&err, ParamsError::UnknownSampler { name, .. } if name == "Euler SGM"),
            "{err}"
        );

        let explicit =
            super::parse("p\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, Seed: 1").expect("parses");
        assert_eq!(explicit.schedule, Schedule::Automatic);
    }

    #[test]
    fn missing_fields_take_defaults() {
        let params = parse("just a prompt\nsecond line").expect("parses");
        assert_eq!(params.prompt, "just a prompt\nsecond line");
        // A1111 fills a missing sampler with its first sampler, DPM++ 2M.
        assert_eq!(params.sampler, Sampler::DpmPp2M);
        assert_eq!(
            GenerationParams {
                sampler: Sampler::EulerA,
                ..params
            },
            GenerationParams {
                prompt: "just a prompt\nsecond line".into(),
                ..GenerationParams::default()
            }
        );
        // Two key: value pairs are not a params line.
        let params = parse("Steps: 5, Seed: 9").expect("parses");
        assert_eq!(params.prompt, "Steps: 5, Seed: 9");
        assert_eq!(params.steps, 20);
    }

    #[test]
    fn bad_values_name_the_field() {
        let err = parse("p\nSteps: many, Sampler: Euler, Seed: 1").expect_err("bad steps");
        assert_eq!(
            err.to_string(),
            "infotext field 'Steps' has value 'many', expected a whole number"
        );
        let err = parse("p\nSteps: 2, Size: 512, Seed: 1").expect_err("bad size");
        assert_eq!(
            err.to_string(),
            "infotext field 'Size' has value '512', expected WIDTHxHEIGHT such as 512x768"
        );
        let err = parse("p\nSteps: 2, RNG: TPU, Seed: 1").expect_err("bad rng");
        assert!(matches!(err, ParamsError::UnknownRng { .. }));
        let err = parse("p\nSteps: 2, CFG scale: nan, Seed: 1").expect_err("bad cfg");
        assert!(err.to_string().contains("'CFG scale'"));
    }

    #[test]
    fn raw_params_use_dict_semantics() {
        let raw = RawInfotext::parse("p\nAa: 1, Bb: 2, Aa: 3, Cc: , Dd: \"x\"");
        assert_eq!(
            raw.params,
            vec![
                ("Aa".to_owned(), "3".to_owned()),
                ("Bb".to_owned(), "2".to_owned()),
                ("Dd".to_owned(), "x".to_owned()),
            ]
        );
    }

    /// xorshift64*: a tiny deterministic generator for the property test.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            let n = u64::try_from(n).expect("usize fits u64");
            usize::try_from(self.next() % n).expect("below n")
        }
        fn below_u32(&mut self, n: u32) -> u32 {
            u32::try_from(self.next() % u64::from(n)).expect("below n")
        }
        fn pick<T: Clone>(&mut self, items: &[T]) -> T {
            items[self.below(items.len())].clone()
        }
        fn chance(&mut self, percent: u64) -> bool {
            self.next() % 100 < percent
        }
    }

    fn random_text(rng: &mut Rng, max_lines: usize) -> String {
        const WORDS: [&str; 14] = [
            "cat",
            "(masterpiece:1.2)",
            "a, b",
            "key: value",
            "\"quoted\"",
            "中文",
            "猫，狗",
            "é",
            "[x|y]",
            "<lora:z:0.5>",
            "tab\there",
            "\\",
            "BREAK",
            "Steps: 3",
        ];
        let lines = 1 + rng.below(max_lines);
        (0..lines)
            .map(|_| {
                let words = 1 + rng.below(6);
                (0..words).map(|_| rng.pick(&WORDS)).collect::<Vec<_>>().join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn random_params(rng: &mut Rng) -> GenerationParams {
        const EXTRA_KEYS: [&str; 6] = [
            "Lora hashes",
            "Hires upscale",
            "Emphasis",
            "TI hashes",
            "Eta",
            "X-Y/Z plot",
        ];
        const EXTRA_VALUES: [&str; 6] = [
            "2",
            "a: 0123456789ab, b: ba9876543210",
            "Original",
            "multi\nline",
            "中文: 值",
            "back\\slash \"q\", x",
        ];
        let sampler = rng.pick(&Sampler::ALL);
        let mut schedule = rng.pick(&Schedule::ALL);
        if sampler.default_schedule() == Some(schedule) {
            schedule = Schedule::Automatic; // equivalent, and what A1111 reads back
        }
        let mut extra: Vec<(String, String)> = Vec::new();
        for key in EXTRA_KEYS {
            if rng.chance(30) {
                extra.push((key.to_owned(), rng.pick(&EXTRA_VALUES).to_owned()));
            }
        }
        GenerationParams {
            prompt: if rng.chance(10) {
                String::new()
            } else {
                random_text(rng, 3)
            },
            negative_prompt: if rng.chance(40) {
                String::new()
            } else {
                random_text(rng, 2)
            },
            steps: 1 + rng.below_u32(150),
            sampler,
            schedule,
            cfg_scale: rng.pick(&[1.0, 1.5, 7.0, 7.5, 0.1, 12.25, 30.0, 0.000_01]),
            seed: rng.next() >> rng.below(64),
            width: 64 * (1 + rng.below_u32(32)),
            height: 8 * (1 + rng.below_u32(256)),
            clip_skip: 1 + rng.below_u32(4),
            batch_count: 1,
            batch_size: 1,
            rng: rng.pick(&RngSource::ALL),
            eta_noise_seed_delta: if sampler.writes_ensd() && rng.chance(50) {
                rng.next()
            } else {
                0
            },
            model_name: rng.chance(70).then(|| {
                rng.pick(&["v1-5-pruned-emaonly", "my,model: v2", "模型"])
                    .to_owned()
            }),
            model_hash: rng.chance(70).then(|| "6ce0161689".to_owned()),
            denoising_strength: rng.chance(30).then(|| rng.pick(&[0.75, 0.3, 1.0, 0.05])),
            extra,
        }
    }

    #[test]
    fn written_params_parse_back_unchanged() {
        let mut rng = Rng(0x5eed_cafe_f00d_d00d);
        for _ in 0..5000 {
            let params = random_params(&mut rng);
            let text = render(&params, params.a1111_schedule_label(), "easel 0.1.0");
            let parsed = parse(&text).expect("parses");
            assert_eq!(parsed, params, "{text}");
            assert_eq!(
                render(&parsed, parsed.a1111_schedule_label(), "easel 0.1.0"),
                text
            );
        }
    }

    #[test]
    fn serde_uses_a1111_names() {
        let params = GenerationParams {
            sampler: Sampler::DpmPp2M,
            rng: RngSource::Nv,
            ..GenerationParams::default()
        };
        let json = serde_json::to_string(&params).expect("serializes");
        assert!(json.contains("\"sampler\":\"DPM++ 2M\""), "{json}");
        assert!(json.contains("\"rng\":\"NV\""), "{json}");
        let back: GenerationParams = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, params);
        let partial: GenerationParams =
            serde_json::from_str(r#"{"steps": 5}"#).expect("defaults fill the rest");
        assert_eq!(partial.steps, 5);
        assert_eq!(partial.width, 512);
    }

    #[test]
    fn long_lines_without_pairs_parse_in_linear_time() {
        // Each used to rescan the rest of its run from every start: minutes at 1 MB.
        let started = std::time::Instant::now();
        for line in [
            "word ".repeat(200_000),
            "key: \"".repeat(100_000),
            format!("aa: 1, bb: 2, cc: \"{}", "x, ".repeat(200_000)),
        ] {
            let text = format!("prompt\n{line}");
            let _ = RawInfotext::parse(&text);
        }
        assert!(started.elapsed().as_secs() < 20, "took {:?}", started.elapsed());
        // The unclosed quote is still read the regex's way: as plain values.
        assert_eq!(
            find_params(r#"ka: "x, kb: "y, kc: 3"#),
            vec![
                ("ka".to_owned(), "\"x".to_owned()),
                ("kb".to_owned(), "\"y".to_owned()),
                ("kc".to_owned(), "3".to_owned())
            ]
        );
    }
}
