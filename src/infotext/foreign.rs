//! Generation parameters from PNGs made by ComfyUI (`prompt` graph, UI `workflow`) and InvokeAI
//! (`invokeai_metadata`, `invokeai_graph`, 2.x `sd-metadata`), with A1111 sampler names.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::fmt;

use serde_json::{Map, Value};
use thiserror::Error;

/// PNG text keyword of ComfyUI's API-format graph (written by `SaveImage.save_images`).
pub const COMFYUI_PROMPT_KEYWORD: &str = "prompt";
/// PNG text keyword of ComfyUI's UI workflow (the frontend's `extra_pnginfo["workflow"]`).
pub const COMFYUI_WORKFLOW_KEYWORD: &str = "workflow";
/// PNG text keyword of InvokeAI 3.x+ core metadata (`image_files_disk.py`).
pub const INVOKEAI_METADATA_KEYWORD: &str = "invokeai_metadata";
/// PNG text keyword of the InvokeAI 3.x+ execution graph; its `core_metadata` node is read.
pub const INVOKEAI_GRAPH_KEYWORD: &str = "invokeai_graph";
/// PNG text keyword of InvokeAI 2.x metadata (`ldm/invoke/pngwriter.py`).
pub const INVOKEAI_LEGACY_KEYWORD: &str = "sd-metadata";

/// Most links one parse follows; bounds the work on graphs with cycles or wide fan-in.
const MAX_HOPS: u32 = 4096;
/// Most nested link steps one lookup takes (a chain of LoRA loaders, strings, conditionings).
const MAX_DEPTH: u32 = 64;

/// The tool whose metadata was read. (`Default` exists only so [`ForeignParams`] can derive it.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ForeignSource {
    /// ComfyUI (API-format `prompt` graph or UI `workflow`).
    #[default]
    ComfyUi,
    /// InvokeAI (`invokeai_metadata`, `invokeai_graph` or 2.x `sd-metadata`).
    InvokeAi,
}

impl ForeignSource {
    /// The tool's name as it spells it.
    pub fn name(self) -> &'static str {
        match self {
            ForeignSource::ComfyUi => "ComfyUI",
            ForeignSource::InvokeAi => "InvokeAI",
        }
    }
}

impl fmt::Display for ForeignSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Generation parameters recovered from another tool's metadata. Fields the source does not
/// state stay `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ForeignParams {
    /// The tool that wrote the metadata.
    pub source: ForeignSource,
    /// Positive prompt, in the source's own syntax (ComfyUI and A1111 share `(word:1.2)`;
    /// InvokeAI uses Compel's `word+`). ComfyUI's ConditioningCombine is joined with ` AND `,
    /// ConditioningConcat with ` BREAK `, as A1111 writes the same operations.
    pub prompt: Option<String>,
    /// Negative prompt, in the source's syntax.
    pub negative_prompt: Option<String>,
    /// Sampling steps (for a ComfyUI KSamplerAdvanced: its `steps`, the whole schedule's length).
    pub steps: Option<u32>,
    /// Classifier-free guidance scale.
    pub cfg_scale: Option<f32>,
    /// Noise seed.
    pub seed: Option<u64>,
    /// A1111 sampler label when one matches ("Euler a", "DPM++ 2M", …), else the source's name
    /// verbatim.
    pub sampler: Option<String>,
    /// A1111 "Schedule type" label when one matches ("Karras", "Uniform", …), else the source's
    /// name verbatim.
    pub schedule: Option<String>,
    /// Image width in pixels.
    pub width: Option<u32>,
    /// Image height in pixels.
    pub height: Option<u32>,
    /// Checkpoint name as the source gives it; the file stem when it is a file name or path.
    pub model: Option<String>,
    /// img2img denoising strength, stated only when the sampler starts from an image (or a
    /// previous sampler's latent) or denoises less than fully.
    pub denoising_strength: Option<f32>,
    /// A1111 clip skip: 1 uses CLIP's last layer, 2 the penultimate one.
    pub clip_skip: Option<u32>,
    /// LoRAs as (file stem or model name, model weight), in the order they are applied. A weight
    /// that cannot be read counts as 1.0, the default of ComfyUI's LoraLoader and InvokeAI.
    pub loras: Vec<(String, f32)>,
    /// ComfyUI: the other sampler nodes of the graph (not the one reported), one line each, such
    /// as `KSampler 12: seed 5, 20 steps, CFG 7, euler/normal, denoise 0.5`.
    pub other_samplers: Vec<String>,
}

/// Why another tool's metadata could not be read. The parsers never panic: malformed JSON gives
/// an error, and wrong types, out-of-range numbers, links to missing nodes and cycles of links
/// leave fields `None` (link walks stop after 64 nested steps or 4096 links per parse).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ForeignMetaError {
    /// The chunk text is not JSON.
    #[error("{tool} metadata is not valid JSON: {message}")]
    InvalidJson {
        /// The tool whose chunk it is.
        tool: ForeignSource,
        /// serde_json's description, with line and column.
        message: String,
    },
    /// The chunk is JSON but not an object.
    #[error("{tool} metadata is not a JSON object (it is {found})")]
    NotAnObject {
        /// The tool whose chunk it is.
        tool: ForeignSource,
        /// The JSON type found instead, e.g. "an array".
        found: &'static str,
    },
    /// No node of the ComfyUI graph samples (KSampler and friends).
    #[error(
        "ComfyUI metadata has no sampler node (KSampler, KSamplerAdvanced, SamplerCustom or \
         SamplerCustomAdvanced)"
    )]
    NoSamplerNode,
    /// The ComfyUI `workflow` chunk has no `nodes` list.
    #[error("ComfyUI workflow has no list of nodes")]
    NoWorkflowNodes,
    /// The InvokeAI graph has no `core_metadata` (3.0: `metadata_accumulator`) node.
    #[error("InvokeAI graph has no metadata node (core_metadata)")]
    NoMetadataNode,
    /// The metadata parsed but states none of the parameters Easel reads.
    #[error("{tool} metadata states no generation parameters (prompt, seed, steps, size or model)")]
    NoParameters {
        /// The tool whose chunk it is.
        tool: ForeignSource,
    },
}

/// Parses ComfyUI's PNG `prompt` chunk, the API-format graph `{"id": {"class_type", "inputs"}}`.
/// Node and input names are ComfyUI's (`nodes.py`, `comfy/samplers.py`,
/// `comfy_extras/nodes_custom_sampler.py`, `nodes_primitive.py`, `nodes_string.py`).
///
/// The sampler reported is the one nearest upstream of the first `SaveImage` (then
/// `PreviewImage`) node, in breadth-first order over all links, ties broken by numeric node id;
/// without output nodes it is the sampler with the lowest numeric id. A KSamplerAdvanced (or
/// custom sampler) that adds no noise and continues another sampler's latent, as an SDXL refiner
/// does, is replaced by that sampler. A hires-fix second pass is reported as is: its size is the
/// upscaled size and its denoise becomes `denoising_strength`.
pub fn parse_comfyui_prompt(json: &str) -> Result<ForeignParams, ForeignMetaError> {
    let root = parse_object(json, ForeignSource::ComfyUi)?;
    comfy_params(&root)
}

/// Parses ComfyUI's PNG `workflow` chunk (the frontend's UI graph) by rebuilding the API graph
/// for the core nodes whose widget order is known, then reading it as [`parse_comfyui_prompt`]
/// does. Muted nodes are dropped, bypassed ones pass their inputs through, Reroute and primitive
/// nodes are resolved. Prefer the `prompt` chunk: custom nodes' widgets are not understood here.
pub fn parse_comfyui_workflow(json: &str) -> Result<ForeignParams, ForeignMetaError> {
    let root = parse_object(json, ForeignSource::ComfyUi)?;
    let graph = api_graph_from_workflow(&root)?;
    comfy_params(&graph)
}

/// Parses InvokeAI's `invokeai_metadata` chunk: `CoreMetadataInvocation`'s fields
/// (`invokeai/app/invocations/metadata.py`), with 3.x models as `{"model_name"}` and 4.x+ as
/// `ModelIdentifierField` `{"name"}`. An object in the 2.x `sd-metadata` shape is read as
/// [`parse_invokeai_legacy_metadata`] does.
pub fn parse_invokeai_metadata(json: &str) -> Result<ForeignParams, ForeignMetaError> {
    let root = parse_object(json, ForeignSource::InvokeAi)?;
    if !root.contains_key("positive_prompt")
        && (root.get("image").is_some_and(Value::is_object) || root.contains_key("images"))
    {
        return invokeai_legacy_params(&root);
    }
    stated_or_error(invokeai_params(&root))
}

/// Parses InvokeAI's `invokeai_graph` chunk by reading its `core_metadata` node (3.0:
/// `metadata_accumulator`). Fields fed by edges rather than set on the node are not recovered.
pub fn parse_invokeai_graph(json: &str) -> Result<ForeignParams, ForeignMetaError> {
    let root = parse_object(json, ForeignSource::InvokeAi)?;
    let is_metadata = |node: &&Map<String, Value>| {
        matches!(
            node.get("type").and_then(Value::as_str),
            Some("core_metadata" | "metadata_accumulator")
        )
    };
    let node = match root.get("nodes") {
        Some(Value::Object(nodes)) => nodes.values().filter_map(Value::as_object).find(is_metadata),
        Some(Value::Array(nodes)) => nodes.iter().filter_map(Value::as_object).find(is_metadata),
        _ => None,
    };
    stated_or_error(invokeai_params(node.ok_or(ForeignMetaError::NoMetadataNode)?))
}

/// Parses InvokeAI 2.x's `sd-metadata` chunk (`{"model_id", "image": {"prompt": [{"prompt",
/// "weight"}], "sampler": "k_lms", …}}`). 2.x wrote the negative prompt in square brackets
/// inside the prompt; it is split out as 2.x's `split_prompt_to_positive_and_negative` does.
pub fn parse_invokeai_legacy_metadata(json: &str) -> Result<ForeignParams, ForeignMetaError> {
    let root = parse_object(json, ForeignSource::InvokeAi)?;
    invokeai_legacy_params(&root)
}

/// Picks the parser by PNG text keyword and runs it; `None` when no chunk of ComfyUI or InvokeAI
/// is present. InvokeAI's `invokeai_metadata` comes first (then `invokeai_graph`, then
/// `sd-metadata`), then ComfyUI's `prompt`, falling back to `workflow` when `prompt` is missing or
/// fails. `prompt` is a generic keyword: a caller that also found A1111's `parameters` should
/// prefer that.
pub fn parse_text_chunks(chunks: &[(String, String)]) -> Option<Result<ForeignParams, ForeignMetaError>> {
    let find = |keyword: &str| {
        chunks
            .iter()
            .find(|(key, _)| key == keyword)
            .map(|(_, text)| text.as_str())
    };
    if let Some(metadata) = find(INVOKEAI_METADATA_KEYWORD) {
        let result = parse_invokeai_metadata(metadata);
        if result.is_err()
            && let Some(graph) = find(INVOKEAI_GRAPH_KEYWORD)
            && let Ok(params) = parse_invokeai_graph(graph)
        {
            return Some(Ok(params));
        }
        return Some(result);
    }
    if let Some(graph) = find(INVOKEAI_GRAPH_KEYWORD) {
        return Some(parse_invokeai_graph(graph));
    }
    if let Some(legacy) = find(INVOKEAI_LEGACY_KEYWORD) {
        return Some(parse_invokeai_legacy_metadata(legacy));
    }
    match (find(COMFYUI_PROMPT_KEYWORD), find(COMFYUI_WORKFLOW_KEYWORD)) {
        (Some(prompt), workflow) => {
            let result = parse_comfyui_prompt(prompt);
            if result.is_err()
                && let Some(workflow) = workflow
                && let Ok(params) = parse_comfyui_workflow(workflow)
            {
                return Some(Ok(params));
            }
            Some(result)
        }
        (None, Some(workflow)) => Some(parse_comfyui_workflow(workflow)),
        (None, None) => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

fn parse_object(json: &str, tool: ForeignSource) -> Result<Map<String, Value>, ForeignMetaError> {
    let value: Value = serde_json::from_str(json).map_err(|e| ForeignMetaError::InvalidJson {
        tool,
        message: e.to_string(),
    })?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(ForeignMetaError::NotAnObject {
            tool,
            found: json_type_name(&other),
        }),
    }
}

fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn stated_or_error(params: ForeignParams) -> Result<ForeignParams, ForeignMetaError> {
    let nothing = ForeignParams {
        source: params.source,
        ..ForeignParams::default()
    };
    if params == nothing {
        Err(ForeignMetaError::NoParameters { tool: params.source })
    } else {
        Ok(params)
    }
}

/// A whole number ≥ 0: JSON integers, or floats with no fraction (Python may write `20.0`).
pub(crate) fn to_u64(value: &Value) -> Option<u64> {
    if let Some(n) = value.as_u64() {
        return Some(n);
    }
    let x = value.as_f64()?;
    // 2^64 as f64; anything at or above it does not fit.
    (x.is_finite() && x >= 0.0 && x.fract() == 0.0 && x < 18_446_744_073_709_551_616.0).then_some(x as u64)
}

pub(crate) fn to_u32(value: &Value) -> Option<u32> {
    to_u64(value).and_then(|n| u32::try_from(n).ok())
}

fn to_i64(value: &Value) -> Option<i64> {
    if let Some(n) = value.as_i64() {
        return Some(n);
    }
    let x = value.as_f64()?;
    // ±2^63 as f64.
    (x.is_finite()
        && x.fract() == 0.0
        && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&x))
    .then_some(x as i64)
}

/// A finite number that fits in f32.
pub(crate) fn to_f32(value: &Value) -> Option<f32> {
    let x = value.as_f64()?;
    (x.is_finite() && x.abs() <= f64::from(f32::MAX)).then_some(x as f32)
}

/// Known model and LoRA file extensions, stripped from names.
const MODEL_EXTENSIONS: [&str; 7] = [".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft"];

/// The file name without folders (either slash) and without a known model extension; names
/// without one keep their dots (`sd_xl_base_1.0`).
pub(crate) fn file_stem(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let stem = MODEL_EXTENSIONS
        .iter()
        .find_map(|ext| {
            let cut = base.len().checked_sub(ext.len())?;
            let tail = base.get(cut..)?;
            tail.eq_ignore_ascii_case(ext).then(|| &base[..cut])
        })
        .unwrap_or(base);
    if stem.is_empty() { base } else { stem }.to_owned()
}

// ---------------------------------------------------------------------------------------------
// ComfyUI: names
// ---------------------------------------------------------------------------------------------

/// ComfyUI sampler names (`comfy/samplers.py` `KSAMPLER_NAMES`, `SAMPLER_NAMES`) that have an
/// A1111 sampler. `_gpu` variants only move the noise sampler to the GPU. ComfyUI's `ddim` runs
/// Euler on the model's discrete schedule, which is A1111's DDIM with eta 0. ComfyUI's `uni_pc`
/// and `uni_pc_bh2` (its own σ-schedule UniPC, bh1 and bh2) map to A1111's UniPC, whose variant is
/// bh1 unless the infotext says `UniPC variant: bh2`; `tcd` is ComfyUI's TCD (gamma 0.3).
pub(crate) const COMFY_SAMPLERS: [(&str, &str); 23] = [
    ("euler", "Euler"),
    ("euler_ancestral", "Euler a"),
    ("heun", "Heun"),
    ("dpm_2", "DPM2"),
    ("dpm_2_ancestral", "DPM2 a"),
    ("lms", "LMS"),
    ("dpm_fast", "DPM fast"),
    ("dpm_adaptive", "DPM adaptive"),
    ("dpmpp_2s_ancestral", "DPM++ 2S a"),
    ("dpmpp_sde", "DPM++ SDE"),
    ("dpmpp_sde_gpu", "DPM++ SDE"),
    ("dpmpp_2m", "DPM++ 2M"),
    ("dpmpp_2m_sde", "DPM++ 2M SDE"),
    ("dpmpp_2m_sde_gpu", "DPM++ 2M SDE"),
    ("dpmpp_2m_sde_heun", "DPM++ 2M SDE Heun"),
    ("dpmpp_2m_sde_heun_gpu", "DPM++ 2M SDE Heun"),
    ("dpmpp_3m_sde", "DPM++ 3M SDE"),
    ("dpmpp_3m_sde_gpu", "DPM++ 3M SDE"),
    ("lcm", "LCM"),
    ("ddim", "DDIM"),
    ("uni_pc", "UniPC"),
    ("uni_pc_bh2", "UniPC"),
    ("tcd", "TCD"),
];

/// ComfyUI scheduler names (`comfy/samplers.py` `SCHEDULER_HANDLERS`) with an A1111 schedule
/// type. ComfyUI's `normal` (evenly spaced timesteps from `timestep(sigma_max)` to
/// `timestep(sigma_min)`) gives the same sigmas as A1111's `Uniform` (`model.get_sigmas(n)`,
/// evenly spaced from t_max to 0); A1111 1.10 also lists a port of it as "Normal", but Easel
/// implements it under the Uniform name. `ddim_uniform` is A1111's port named "DDIM".
pub(crate) const COMFY_SCHEDULES: [(&str, &str); 10] = [
    ("normal", "Uniform"),
    ("karras", "Karras"),
    ("exponential", "Exponential"),
    ("polyexponential", "Polyexponential"),
    ("sgm_uniform", "SGM Uniform"),
    ("simple", "Simple"),
    ("ddim_uniform", "DDIM"),
    ("beta", "Beta"),
    ("kl_optimal", "KL Optimal"),
    ("align_your_steps", "Align Your Steps"),
];

/// ComfyUI sampler-object nodes (`comfy_extras/nodes_custom_sampler.py`) and the sampler name
/// each stands for.
const COMFY_SAMPLER_NODES: [(&str, &str); 8] = [
    ("SamplerEulerAncestral", "euler_ancestral"),
    ("SamplerEulerAncestralCFGPP", "euler_ancestral_cfg_pp"),
    ("SamplerLMS", "lms"),
    ("SamplerDPMPP_3M_SDE", "dpmpp_3m_sde"),
    ("SamplerDPMPP_SDE", "dpmpp_sde"),
    ("SamplerDPMPP_2S_Ancestral", "dpmpp_2s_ancestral"),
    ("SamplerDPMAdaptative", "dpm_adaptive"),
    ("SamplerTCD", "tcd"),
];

/// ComfyUI sigma-schedule nodes (`nodes_custom_sampler.py`) and the scheduler each stands for.
const COMFY_SCHEDULE_NODES: [(&str, &str); 5] = [
    ("KarrasScheduler", "karras"),
    ("ExponentialScheduler", "exponential"),
    ("PolyexponentialScheduler", "polyexponential"),
    ("BetaSamplingScheduler", "beta"),
    ("SDTurboScheduler", "turbo"),
];

fn comfy_sampler_label(name: &str) -> String {
    lookup(&COMFY_SAMPLERS, name).unwrap_or(name).to_owned()
}

fn comfy_schedule_label(name: &str) -> String {
    lookup(&COMFY_SCHEDULES, name).unwrap_or(name).to_owned()
}

pub(crate) fn lookup<'t>(table: &[(&str, &'t str)], name: &str) -> Option<&'t str> {
    table
        .iter()
        .find(|(key, _)| *key == name)
        .map(|(_, label)| *label)
}

/// Inputs that hold a checkpoint or diffusion-model file name.
const CHECKPOINT_INPUTS: [&str; 2] = ["ckpt_name", "unet_name"];
/// Inputs of a text encoder that hold the prompt, in order of preference (`CLIPTextEncode`
/// `text`, `CLIPTextEncodeSDXL` `text_g`, `CLIPTextEncodeFlux` `t5xxl`).
const TEXT_INPUTS: [&str; 5] = ["text", "text_g", "t5xxl", "clip_l", "prompt"];
/// Inputs through which conditioning passes unchanged enough to keep its prompt.
const CONDITIONING_INPUTS: [&str; 5] = [
    "conditioning",
    "conditioning_to",
    "conditioning_1",
    "cond",
    "positive",
];
/// Inputs of value nodes (`PrimitiveInt`, `PrimitiveString`, seed nodes of custom packs).
const VALUE_INPUTS: [&str; 8] = [
    "value",
    "seed",
    "noise_seed",
    "int",
    "float",
    "number",
    "string",
    "text",
];
/// Inputs of string nodes, in order of preference.
const STRING_INPUTS: [&str; 5] = ["value", "string", "text", "prompt", "text_g"];
/// Inputs through which a latent passes (`SetLatentNoiseMask`, `RepeatLatentBatch`, …).
const LATENT_INPUTS: [&str; 3] = ["samples", "latent", "latent_image"];

// ---------------------------------------------------------------------------------------------
// ComfyUI: graph walking
// ---------------------------------------------------------------------------------------------

/// An API-format graph and the link budget left to this parse.
struct Graph<'g> {
    nodes: &'g Map<String, Value>,
    hops_left: Cell<u32>,
}

#[derive(Clone, Copy)]
struct Node<'g> {
    id: &'g str,
    class: &'g str,
    inputs: Option<&'g Map<String, Value>>,
}

impl<'g> Node<'g> {
    fn new(id: &'g str, value: &'g Value) -> Option<Self> {
        let node = value.as_object()?;
        Some(Node {
            id,
            class: node.get("class_type")?.as_str()?,
            inputs: node.get("inputs").and_then(Value::as_object),
        })
    }

    fn input(&self, name: &str) -> Option<&'g Value> {
        self.inputs?.get(name)
    }

    fn has(&self, name: &str) -> bool {
        self.input(name).is_some()
    }

    fn first_input(&self, names: &[&str]) -> Option<&'g Value> {
        names.iter().find_map(|name| self.input(name))
    }
}

/// `[node_id, output_index]`; ids are strings in the API format, numbers are accepted too.
fn link_target(value: &Value) -> Option<(String, u64)> {
    let [id, slot] = value.as_array()?.as_slice() else {
        return None;
    };
    let slot = slot.as_u64()?;
    let id = match id {
        Value::String(id) => id.clone(),
        Value::Number(id) => id.to_string(),
        _ => return None,
    };
    Some((id, slot))
}

fn is_link(value: &Value) -> bool {
    link_target(value).is_some()
}

/// Sort key for node ids: numerically by `:`-separated parts ("3" < "10" < "10:2"), then as text.
fn id_key(id: &str) -> (Vec<u64>, &str) {
    (
        id.split(':')
            .map(|part| part.parse().unwrap_or(u64::MAX))
            .collect(),
        id,
    )
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SamplerKind {
    /// `KSampler` and custom nodes with its inputs.
    Simple,
    /// `KSamplerAdvanced`.
    Advanced,
    /// `SamplerCustom`.
    Custom,
    /// `SamplerCustomAdvanced`.
    CustomAdvanced,
}

fn sampler_kind(node: Node<'_>) -> Option<SamplerKind> {
    match node.class {
        "KSampler" => Some(SamplerKind::Simple),
        "KSamplerAdvanced" => Some(SamplerKind::Advanced),
        "SamplerCustom" => Some(SamplerKind::Custom),
        "SamplerCustomAdvanced" => Some(SamplerKind::CustomAdvanced),
        // Custom packs' samplers ("KSampler (Efficient)", …) keep KSampler's input names.
        _ if node.has("sampler_name") && node.has("positive") && node.has("latent_image") => {
            if node.has("start_at_step") && node.has("noise_seed") {
                Some(SamplerKind::Advanced)
            } else {
                Some(SamplerKind::Simple)
            }
        }
        _ => None,
    }
}

/// Rank of an output node: `SaveImage`-like nodes before `PreviewImage`; `None` if not an output.
fn output_rank(class: &str) -> Option<u8> {
    if class == "PreviewImage" {
        Some(1)
    } else if class.contains("SaveImage") || class.contains("Save Image") || class.contains("Image Save") {
        Some(0)
    } else {
        None
    }
}

/// Where a sampler's latent comes from.
#[derive(Clone, Copy)]
enum LatentOrigin<'g> {
    /// An empty latent (txt2img).
    Empty,
    /// An encoded image (img2img, inpainting).
    Image,
    /// Another sampler's output (hires fix, refiner).
    Sampler(Node<'g>),
    /// Not recognised.
    Unknown,
}

struct Latent<'g> {
    size: Option<(u32, u32)>,
    origin: LatentOrigin<'g>,
}

impl Latent<'_> {
    const UNKNOWN: Latent<'static> = Latent {
        size: None,
        origin: LatentOrigin::Unknown,
    };
}

/// Sampler settings gathered from a sampler node and its helper nodes.
#[derive(Default)]
struct SamplerSettings<'g> {
    seed: Option<u64>,
    steps: Option<u32>,
    cfg: Option<f32>,
    sampler_name: Option<String>,
    scheduler: Option<String>,
    denoise: Option<f32>,
    start_at_step: Option<u32>,
    model: Option<&'g Value>,
    positive: Option<&'g Value>,
    negative: Option<&'g Value>,
    latent: Option<&'g Value>,
    adds_noise: bool,
}

impl<'g> Graph<'g> {
    fn new(nodes: &'g Map<String, Value>) -> Self {
        Graph {
            nodes,
            hops_left: Cell::new(MAX_HOPS),
        }
    }

    fn node(&self, id: &str) -> Option<Node<'g>> {
        let (id, value) = self.nodes.get_key_value(id)?;
        Node::new(id, value)
    }

    /// The node a link points at, without spending the hop budget (for walks that visit each
    /// node once).
    fn target(&self, value: &Value) -> Option<(Node<'g>, u64)> {
        let (id, slot) = link_target(value)?;
        Some((self.node(&id)?, slot))
    }

    /// The node a link points at, spending one hop.
    fn follow(&self, value: &Value) -> Option<(Node<'g>, u64)> {
        if !is_link(value) {
            return None;
        }
        let left = self.hops_left.get().checked_sub(1)?;
        self.hops_left.set(left);
        self.target(value)
    }

    fn nodes(&self) -> impl Iterator<Item = Node<'g>> + '_ {
        self.nodes.iter().filter_map(|(id, value)| Node::new(id, value))
    }

    /// A literal input value, following links into value nodes.
    fn literal(&self, value: &'g Value, depth: u32) -> Option<&'g Value> {
        if !is_link(value) {
            return Some(value);
        }
        if depth >= MAX_DEPTH {
            return None;
        }
        let (node, _) = self.follow(value)?;
        self.literal(node.first_input(&VALUE_INPUTS)?, depth + 1)
    }

    fn u64_input(&self, node: Node<'g>, name: &str) -> Option<u64> {
        to_u64(self.literal(node.input(name)?, 0)?)
    }

    fn u32_input(&self, node: Node<'g>, name: &str) -> Option<u32> {
        to_u32(self.literal(node.input(name)?, 0)?)
    }

    fn f32_input(&self, node: Node<'g>, name: &str) -> Option<f32> {
        to_f32(self.literal(node.input(name)?, 0)?)
    }

    fn string_input(&self, node: Node<'g>, name: &str) -> Option<String> {
        self.string(node.input(name)?, 0)
    }

    /// A string input value, following links into string nodes (`PrimitiveString`,
    /// `StringConcatenate`, custom text nodes).
    fn string(&self, value: &'g Value, depth: u32) -> Option<String> {
        if let Value::String(text) = value {
            return Some(text.clone());
        }
        if depth >= MAX_DEPTH {
            return None;
        }
        let (node, _) = self.follow(value)?;
        if node.class == "StringConcatenate" {
            // nodes_string.py: delimiter.join((string_a, string_b))
            let a = node.input("string_a").and_then(|v| self.string(v, depth + 1));
            let b = node.input("string_b").and_then(|v| self.string(v, depth + 1));
            let delimiter = node
                .input("delimiter")
                .and_then(|v| self.string(v, depth + 1))
                .unwrap_or_default();
            return join(a, b, &delimiter);
        }
        self.string(node.first_input(&STRING_INPUTS)?, depth + 1)
    }

    /// The prompt text behind a conditioning input; text encoders met on the way are collected
    /// (for clip skip).
    fn conditioning(&self, value: &'g Value, depth: u32, encoders: &mut Vec<Node<'g>>) -> Option<String> {
        if depth >= MAX_DEPTH {
            return None;
        }
        let (node, slot) = self.follow(value)?;
        let next = |name: &str, encoders: &mut Vec<Node<'g>>| {
            node.input(name)
                .and_then(|v| self.conditioning(v, depth + 1, encoders))
        };
        match node.class {
            // The conditioning is zeros: no negative prompt was used.
            "ConditioningZeroOut" => None,
            // Both conditionings are sampled and their predictions combined, as A1111's AND does.
            "ConditioningCombine" => {
                let a = next("conditioning_1", encoders);
                let b = next("conditioning_2", encoders);
                join(a, b, " AND ")
            }
            // The token sequences are concatenated, as A1111's BREAK does.
            "ConditioningConcat" => {
                let a = next("conditioning_to", encoders);
                let b = next("conditioning_from", encoders);
                join(a, b, " BREAK ")
            }
            _ => {
                if node.has("clip")
                    && let Some(text) = node.first_input(&TEXT_INPUTS)
                {
                    encoders.push(node);
                    return self.string(text, depth + 1);
                }
                // Nodes that pass both (ControlNetApplyAdvanced, InpaintModelConditioning): output
                // 0 is the positive conditioning, output 1 the negative.
                if node.has("positive") && node.has("negative") {
                    return next(if slot == 1 { "negative" } else { "positive" }, encoders);
                }
                if let Some(name) = CONDITIONING_INPUTS.iter().find(|name| node.has(name)) {
                    return next(name, encoders);
                }
                let text = node.first_input(&TEXT_INPUTS)?;
                self.string(text, depth + 1)
            }
        }
    }

    /// Checkpoint name and LoRAs along a MODEL link (LoRA loaders and model patches pass the
    /// model on through their `model` input).
    fn model_chain(&self, value: Option<&'g Value>) -> (Option<String>, Vec<(String, f32)>) {
        let mut loras = Vec::new();
        let mut model = None;
        let mut current = value;
        for _ in 0..MAX_DEPTH {
            let Some((node, _)) = current.and_then(|v| self.follow(v)) else {
                break;
            };
            if let Some(name) = node
                .first_input(&CHECKPOINT_INPUTS)
                .and_then(|v| self.string(v, 0))
            {
                model = Some(file_stem(&name));
                break;
            }
            if let Some(name) = self.string_input(node, "lora_name") {
                let weight = self.f32_input(node, "strength_model").unwrap_or(1.0);
                loras.push((file_stem(&name), weight));
            }
            current = node.input("model");
        }
        // Walked from the sampler back to the checkpoint; report in the order applied.
        loras.reverse();
        (model, loras)
    }

    /// Clip skip from the `CLIPSetLastLayer` nearest a text encoder along its CLIP link.
    fn clip_skip(&self, encoder: Node<'g>) -> Option<u32> {
        let mut current = encoder.input("clip")?;
        for _ in 0..MAX_DEPTH {
            let (node, _) = self.follow(current)?;
            if node.class == "CLIPSetLastLayer" {
                // stop_at_clip_layer -1 is the last layer (A1111 clip skip 1), -2 the penultimate.
                let layer = to_i64(self.literal(node.input("stop_at_clip_layer")?, 0)?)?;
                return u32::try_from(layer.checked_neg()?).ok().filter(|&skip| skip >= 1);
            }
            current = node.input("clip")?;
        }
        None
    }

    /// Size and origin of a sampler's latent input.
    fn latent(&self, value: Option<&'g Value>, depth: u32) -> Latent<'g> {
        let Some((node, _)) = value.filter(|_| depth < MAX_DEPTH).and_then(|v| self.follow(v)) else {
            return Latent::UNKNOWN;
        };
        if sampler_kind(node).is_some() {
            return Latent {
                size: self.latent(node.input("latent_image"), depth + 1).size,
                origin: LatentOrigin::Sampler(node),
            };
        }
        // VAEEncode, VAEEncodeTiled, VAEEncodeForInpaint, InpaintModelConditioning (its latent
        // output): an encoded image.
        if node.class.starts_with("VAEEncode") || node.has("pixels") {
            return Latent {
                size: self.image_size(node.input("pixels"), depth + 1),
                origin: LatentOrigin::Image,
            };
        }
        match node.class {
            "LatentUpscale" => {
                let upstream = self.latent(node.input("samples"), depth + 1);
                let width = self.u32_input(node, "width");
                let height = self.u32_input(node, "height");
                Latent {
                    size: latent_upscale_size(upstream.size, width, height),
                    origin: upstream.origin,
                }
            }
            "LatentUpscaleBy" => {
                let upstream = self.latent(node.input("samples"), depth + 1);
                let scale = node
                    .input("scale_by")
                    .and_then(|v| self.literal(v, 0))
                    .and_then(Value::as_f64);
                Latent {
                    size: upstream
                        .size
                        .zip(scale)
                        .and_then(|(size, scale)| latent_scale_size(size, scale)),
                    origin: upstream.origin,
                }
            }
            class
                if node.has("width")
                    && node.has("height")
                    && (node.has("batch_size") || class.starts_with("Empty")) =>
            {
                let size = self.u32_input(node, "width").zip(self.u32_input(node, "height"));
                Latent {
                    size,
                    origin: LatentOrigin::Empty,
                }
            }
            _ => match node.first_input(&LATENT_INPUTS) {
                Some(next) => self.latent(Some(next), depth + 1),
                None => Latent::UNKNOWN,
            },
        }
    }

    /// Pixel size of an image input when an `ImageScale` states it.
    fn image_size(&self, value: Option<&'g Value>, depth: u32) -> Option<(u32, u32)> {
        if depth >= MAX_DEPTH {
            return None;
        }
        let (node, _) = self.follow(value?)?;
        if node.class == "ImageScale" {
            let size = self.u32_input(node, "width").zip(self.u32_input(node, "height"));
            if let Some((width, height)) = size
                && width > 0
                && height > 0
            {
                return Some((width, height));
            }
        }
        self.image_size(node.input("image"), depth + 1)
    }

    /// The sampler whose settings the image shows (see [`parse_comfyui_prompt`]).
    fn chosen_sampler(&self) -> Option<Node<'g>> {
        let mut outputs: Vec<(u8, Node<'g>)> = self
            .nodes()
            .filter_map(|node| Some((output_rank(node.class)?, node)))
            .collect();
        outputs.sort_by(|(rank_a, a), (rank_b, b)| (rank_a, id_key(a.id)).cmp(&(rank_b, id_key(b.id))));
        let mut seen = HashSet::new();
        let from_output = outputs
            .iter()
            .find_map(|&(_, output)| self.nearest_sampler_upstream(output, &mut seen));
        let mut chosen = from_output.or_else(|| {
            self.nodes()
                .filter(|&node| sampler_kind(node).is_some())
                .min_by(|a, b| id_key(a.id).cmp(&id_key(b.id)))
        })?;
        // A sampler that adds no noise continues another sampler's work (SDXL refiner, split
        // schedules): report the sampler that started it.
        for _ in 0..MAX_DEPTH {
            let settings = self.settings(chosen);
            if settings.adds_noise {
                break;
            }
            match self.latent(settings.latent, 0).origin {
                LatentOrigin::Sampler(previous) if previous.id != chosen.id => chosen = previous,
                _ => break,
            }
        }
        Some(chosen)
    }

    /// Breadth-first search upstream of `start` for a sampler; among samplers at the same
    /// distance, the lowest numeric id. `seen` is shared by the searches from several outputs:
    /// a node an earlier, fruitless search reached has no sampler upstream, so each node is
    /// visited once in all.
    fn nearest_sampler_upstream(&self, start: Node<'g>, seen: &mut HashSet<&'g str>) -> Option<Node<'g>> {
        seen.insert(start.id);
        let mut frontier = vec![start];
        while !frontier.is_empty() {
            let mut next = Vec::new();
            let mut found = Vec::new();
            for node in frontier {
                for value in node.inputs.into_iter().flat_map(Map::values) {
                    let Some((upstream, _)) = self.target(value) else {
                        continue;
                    };
                    if !seen.insert(upstream.id) {
                        continue;
                    }
                    if sampler_kind(upstream).is_some() {
                        found.push(upstream);
                    } else {
                        next.push(upstream);
                    }
                }
            }
            if let Some(sampler) = found.into_iter().min_by(|a, b| id_key(a.id).cmp(&id_key(b.id))) {
                return Some(sampler);
            }
            frontier = next;
        }
        None
    }

    /// Settings of a sampler node, reading KSamplerSelect, BasicScheduler, RandomNoise and
    /// CFGGuider-style helper nodes of the custom samplers.
    fn settings(&self, node: Node<'g>) -> SamplerSettings<'g> {
        let mut s = SamplerSettings {
            adds_noise: true,
            ..SamplerSettings::default()
        };
        let Some(kind) = sampler_kind(node) else {
            return s;
        };
        s.latent = node.input("latent_image");
        match kind {
            SamplerKind::Simple | SamplerKind::Advanced => {
                s.seed = self
                    .u64_input(node, "seed")
                    .or_else(|| self.u64_input(node, "noise_seed"));
                s.steps = self.u32_input(node, "steps");
                s.cfg = self.f32_input(node, "cfg");
                s.sampler_name = self.string_input(node, "sampler_name");
                s.scheduler = self.string_input(node, "scheduler");
                s.denoise = self.f32_input(node, "denoise");
                s.model = node.input("model");
                s.positive = node.input("positive");
                s.negative = node.input("negative");
                if kind == SamplerKind::Advanced {
                    s.start_at_step = self.u32_input(node, "start_at_step");
                    s.adds_noise = self.string_input(node, "add_noise").as_deref() != Some("disable");
                }
            }
            SamplerKind::Custom => {
                s.seed = self.u64_input(node, "noise_seed");
                s.cfg = self.f32_input(node, "cfg");
                s.model = node.input("model");
                s.positive = node.input("positive");
                s.negative = node.input("negative");
                s.adds_noise = node
                    .input("add_noise")
                    .and_then(|v| self.literal(v, 0))
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                self.read_sampler_object(node.input("sampler"), &mut s);
                self.read_sigmas(node.input("sigmas"), &mut s);
            }
            SamplerKind::CustomAdvanced => {
                if let Some((noise, _)) = node.input("noise").and_then(|v| self.follow(v)) {
                    if noise.class == "DisableNoise" {
                        s.adds_noise = false;
                    } else {
                        s.seed = self.u64_input(noise, "noise_seed");
                    }
                }
                if let Some((guider, _)) = node.input("guider").and_then(|v| self.follow(v)) {
                    s.model = guider.input("model");
                    s.positive = guider.first_input(&["positive", "conditioning", "cond1"]);
                    s.negative = guider.input("negative");
                    s.cfg = self
                        .f32_input(guider, "cfg")
                        .or_else(|| self.f32_input(guider, "cfg_conds"));
                }
                self.read_sampler_object(node.input("sampler"), &mut s);
                self.read_sigmas(node.input("sigmas"), &mut s);
            }
        }
        s
    }

    /// One line for each sampler node other than `chosen`, in node-id order (at most 16).
    fn other_samplers(&self, chosen: Node<'g>) -> Vec<String> {
        let mut others: Vec<Node<'g>> = self
            .nodes()
            .filter(|&node| node.id != chosen.id && sampler_kind(node).is_some())
            .collect();
        others.sort_by(|a, b| id_key(a.id).cmp(&id_key(b.id)));
        others
            .into_iter()
            .take(16)
            .map(|node| {
                let s = self.settings(node);
                let mut parts = Vec::new();
                if let Some(seed) = s.seed {
                    parts.push(format!("seed {seed}"));
                }
                if let Some(steps) = s.steps {
                    parts.push(format!("{steps} steps"));
                }
                if let Some(cfg) = s.cfg {
                    parts.push(format!("CFG {}", super::py_number(cfg)));
                }
                match (&s.sampler_name, &s.scheduler) {
                    (Some(a), Some(b)) => parts.push(format!("{a}/{b}")),
                    (Some(a), None) | (None, Some(a)) => parts.push(a.clone()),
                    (None, None) => {}
                }
                if let Some(d) = s.denoise {
                    parts.push(format!("denoise {}", super::py_number(d)));
                }
                format!("{} {}: {}", node.class, node.id, parts.join(", "))
            })
            .collect()
    }

    fn read_sampler_object(&self, value: Option<&'g Value>, s: &mut SamplerSettings<'g>) {
        let Some((node, _)) = value.and_then(|v| self.follow(v)) else {
            return;
        };
        s.sampler_name = if node.class == "SamplerDPMPP_2M_SDE" {
            let heun = self.string_input(node, "solver_type").as_deref() == Some("heun");
            Some(if heun { "dpmpp_2m_sde_heun" } else { "dpmpp_2m_sde" }.to_owned())
        } else if let Some(name) = lookup(&COMFY_SAMPLER_NODES, node.class) {
            Some(name.to_owned())
        } else {
            self.string_input(node, "sampler_name")
        };
    }

    fn read_sigmas(&self, value: Option<&'g Value>, s: &mut SamplerSettings<'g>) {
        let mut current = value;
        for _ in 0..MAX_DEPTH {
            let Some((node, _)) = current.and_then(|v| self.follow(v)) else {
                return;
            };
            // SplitSigmas, FlipSigmas, SetFirstSigma, … pass a schedule on through `sigmas`.
            if let Some(next) = node.input("sigmas") {
                current = Some(next);
                continue;
            }
            s.steps = self.u32_input(node, "steps");
            s.denoise = self.f32_input(node, "denoise");
            s.scheduler = lookup(&COMFY_SCHEDULE_NODES, node.class)
                .map(str::to_owned)
                .or_else(|| self.string_input(node, "scheduler"));
            return;
        }
    }
}

fn join(a: Option<String>, b: Option<String>, separator: &str) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(format!("{a}{separator}{b}")),
        (a, b) => a.or(b),
    }
}

/// `LatentUpscale`'s output size in pixels (nodes.py: a zero side keeps the aspect ratio, both
/// zero keep the size, sides are at least 64 and floored to multiples of 8).
fn latent_upscale_size(
    upstream: Option<(u32, u32)>,
    width: Option<u32>,
    height: Option<u32>,
) -> Option<(u32, u32)> {
    let (width, height) = (width?, height?);
    let floor8 = |x: u32| x.max(64) / 8 * 8;
    let aspect = |other: u32, num: u32, den: u32| -> Option<u32> {
        if den == 0 {
            return None;
        }
        let scaled = (f64::from(other) * f64::from(num) / f64::from(den)).round_ties_even();
        (scaled <= f64::from(u32::MAX)).then_some(scaled as u32)
    };
    match (width, height) {
        (0, 0) => upstream,
        (0, h) => {
            let (up_w, up_h) = upstream?;
            Some((floor8(aspect(h, up_w, up_h)?), floor8(h)))
        }
        (w, 0) => {
            let (up_w, up_h) = upstream?;
            Some((floor8(w), floor8(aspect(w, up_h, up_w)?)))
        }
        (w, h) => Some((floor8(w), floor8(h))),
    }
}

/// `LatentUpscaleBy`'s output size in pixels: each latent side (pixels / 8) times `scale`,
/// rounded half to even as Python's `round`.
fn latent_scale_size((width, height): (u32, u32), scale: f64) -> Option<(u32, u32)> {
    let side = |pixels: u32| -> Option<u32> {
        let latent = (f64::from(pixels / 8) * scale).round_ties_even() * 8.0;
        (latent.is_finite() && latent >= 0.0 && latent <= f64::from(u32::MAX)).then_some(latent as u32)
    };
    Some((side(width)?, side(height)?))
}

fn comfy_params(nodes: &Map<String, Value>) -> Result<ForeignParams, ForeignMetaError> {
    let graph = Graph::new(nodes);
    let sampler = graph.chosen_sampler().ok_or(ForeignMetaError::NoSamplerNode)?;
    let settings = graph.settings(sampler);

    let mut encoders = Vec::new();
    let prompt = settings
        .positive
        .and_then(|v| graph.conditioning(v, 0, &mut encoders));
    let clip_skip = encoders.iter().find_map(|&encoder| graph.clip_skip(encoder));
    let negative_prompt = settings
        .negative
        .and_then(|v| graph.conditioning(v, 0, &mut Vec::new()));
    let (model, loras) = graph.model_chain(settings.model);
    let latent = graph.latent(settings.latent, 0);

    let from_empty = matches!(latent.origin, LatentOrigin::Empty);
    let denoising_strength = match sampler_kind(sampler) {
        Some(SamplerKind::Advanced) => {
            // Starting later in the schedule on an existing latent is img2img.
            settings
                .start_at_step
                .zip(settings.steps)
                .filter(|&(start, steps)| !from_empty && start > 0 && steps > 0)
                .map(|(start, steps)| 1.0 - start.min(steps) as f32 / steps as f32)
        }
        _ => settings.denoise.filter(|&d| !from_empty || d < 1.0),
    };

    Ok(ForeignParams {
        source: ForeignSource::ComfyUi,
        prompt,
        negative_prompt,
        steps: settings.steps,
        cfg_scale: settings.cfg,
        seed: settings.seed,
        sampler: settings.sampler_name.as_deref().map(comfy_sampler_label),
        schedule: settings.scheduler.as_deref().map(comfy_schedule_label),
        width: latent.size.map(|(w, _)| w),
        height: latent.size.map(|(_, h)| h),
        model,
        denoising_strength,
        clip_skip,
        loras,
        other_samplers: graph.other_samplers(sampler),
    })
}

// ---------------------------------------------------------------------------------------------
// ComfyUI: UI workflow → API graph
// ---------------------------------------------------------------------------------------------

/// Widget names, in widget order, of the core nodes this module reads (the order of their
/// non-link inputs in `INPUT_TYPES`/`define_schema`).
fn widget_names(class: &str) -> &'static [&'static str] {
    match class {
        "KSampler" => &["seed", "steps", "cfg", "sampler_name", "scheduler", "denoise"],
        "KSamplerAdvanced" => &[
            "add_noise",
            "noise_seed",
            "steps",
            "cfg",
            "sampler_name",
            "scheduler",
            "start_at_step",
            "end_at_step",
            "return_with_leftover_noise",
        ],
        "SamplerCustom" => &["add_noise", "noise_seed", "cfg"],
        "RandomNoise" => &["noise_seed"],
        "CFGGuider" => &["cfg"],
        "KSamplerSelect" => &["sampler_name"],
        "BasicScheduler" => &["scheduler", "steps", "denoise"],
        "KarrasScheduler" | "PolyexponentialScheduler" => &["steps", "sigma_max", "sigma_min", "rho"],
        "ExponentialScheduler" => &["steps", "sigma_max", "sigma_min"],
        "CLIPTextEncode" => &["text"],
        "CLIPTextEncodeSDXL" => &[
            "width",
            "height",
            "crop_w",
            "crop_h",
            "target_width",
            "target_height",
            "text_g",
            "text_l",
        ],
        "CLIPTextEncodeSDXLRefiner" => &["ascore", "width", "height", "text"],
        "CheckpointLoaderSimple" | "unCLIPCheckpointLoader" => &["ckpt_name"],
        "CheckpointLoader" => &["config_name", "ckpt_name"],
        "UNETLoader" => &["unet_name", "weight_dtype"],
        "LoraLoader" => &["lora_name", "strength_model", "strength_clip"],
        "LoraLoaderModelOnly" => &["lora_name", "strength_model"],
        "CLIPSetLastLayer" => &["stop_at_clip_layer"],
        "EmptyLatentImage" | "EmptySD3LatentImage" => &["width", "height", "batch_size"],
        "LatentUpscale" | "ImageScale" => &["upscale_method", "width", "height", "crop"],
        "LatentUpscaleBy" => &["upscale_method", "scale_by"],
        "PrimitiveString" | "PrimitiveStringMultiline" | "PrimitiveInt" | "PrimitiveFloat" => &["value"],
        "StringConcatenate" => &["string_a", "string_b", "delimiter"],
        _ => &[],
    }
}

/// The frontend stores a "control after generate" value after seed widgets.
const CONTROL_VALUES: [&str; 4] = ["fixed", "increment", "decrement", "randomize"];

fn widget_inputs(class: &str, widgets: Option<&Value>) -> Map<String, Value> {
    let mut inputs = Map::new();
    match widgets {
        // Some nodes store their widgets by name.
        Some(Value::Object(named)) => inputs.clone_from(named),
        Some(Value::Array(values)) => {
            let mut values = values.iter().peekable();
            for &name in widget_names(class) {
                let Some(value) = values.next() else {
                    break;
                };
                inputs.insert(name.to_owned(), value.clone());
                let controlled =
                    matches!(name, "seed" | "noise_seed") || (class == "PrimitiveInt" && name == "value");
                if controlled
                    && values
                        .peek()
                        .and_then(|v| v.as_str())
                        .is_some_and(|v| CONTROL_VALUES.contains(&v))
                {
                    values.next();
                }
            }
        }
        _ => {}
    }
    inputs
}

fn id_string(value: &Value) -> Option<String> {
    match value {
        Value::String(id) => Some(id.clone()),
        Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

/// The UI workflow's nodes and links, indexed.
struct Workflow<'w> {
    nodes: HashMap<String, &'w Map<String, Value>>,
    /// Link id → (origin node id, origin slot).
    links: HashMap<String, (String, u64)>,
}

impl<'w> Workflow<'w> {
    fn new(root: &'w Map<String, Value>) -> Result<Self, ForeignMetaError> {
        let nodes = root
            .get("nodes")
            .and_then(Value::as_array)
            .ok_or(ForeignMetaError::NoWorkflowNodes)?
            .iter()
            .filter_map(|node| {
                let node = node.as_object()?;
                Some((id_string(node.get("id")?)?, node))
            })
            .collect();
        let links = root
            .get("links")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|link| match link {
                // [id, origin_id, origin_slot, target_id, target_slot, type]
                Value::Array(parts) => Some((
                    id_string(parts.first()?)?,
                    (id_string(parts.get(1)?)?, parts.get(2)?.as_u64()?),
                )),
                Value::Object(link) => Some((
                    id_string(link.get("id")?)?,
                    (
                        id_string(link.get("origin_id")?)?,
                        link.get("origin_slot")?.as_u64()?,
                    ),
                )),
                _ => None,
            })
            .collect();
        Ok(Workflow { nodes, links })
    }

    /// The API-format value of a link: `[origin, slot]`, through Reroute nodes; a frontend
    /// PrimitiveNode becomes its value.
    fn link_value(&self, link: &Value, depth: u32) -> Option<Value> {
        if depth >= MAX_DEPTH {
            return None;
        }
        let (origin, slot) = self.links.get(&id_string(link)?)?;
        let node = self.nodes.get(origin)?;
        match node.get("type").and_then(Value::as_str) {
            Some("Reroute") => {
                let input = node.get("inputs")?.as_array()?.first()?;
                self.link_value(input.get("link")?, depth + 1)
            }
            Some("PrimitiveNode") => node.get("widgets_values")?.as_array()?.first().cloned(),
            _ => Some(Value::Array(vec![
                Value::String(origin.clone()),
                Value::from(*slot),
            ])),
        }
    }
}

fn api_graph_from_workflow(root: &Map<String, Value>) -> Result<Map<String, Value>, ForeignMetaError> {
    let workflow = Workflow::new(root)?;
    let mut graph = Map::new();
    for (id, node) in &workflow.nodes {
        let Some(class) = node.get("type").and_then(Value::as_str) else {
            continue;
        };
        if matches!(class, "Reroute" | "PrimitiveNode" | "Note" | "MarkdownNote") {
            continue;
        }
        // LiteGraph modes: 0 always, 2 never (muted), 4 bypassed.
        let mode = node.get("mode").and_then(Value::as_u64).unwrap_or(0);
        if mode == 2 {
            continue;
        }
        let bypassed = mode == 4;
        let mut inputs = if bypassed {
            Map::new()
        } else {
            widget_inputs(class, node.get("widgets_values"))
        };
        for input in node.get("inputs").and_then(Value::as_array).into_iter().flatten() {
            let Some(name) = input.get("name").and_then(Value::as_str) else {
                continue;
            };
            if let Some(value) = input.get("link").and_then(|link| workflow.link_value(link, 0)) {
                inputs.insert(name.to_owned(), value);
            }
        }
        // A bypassed node passes its inputs through: keep its links under a class nothing
        // recognises, so walks go through it by input name without reading its widgets.
        let class_type = if bypassed { "(bypassed)" } else { class };
        let mut api_node = Map::new();
        api_node.insert("class_type".to_owned(), Value::from(class_type));
        api_node.insert("inputs".to_owned(), Value::Object(inputs));
        graph.insert(id.clone(), Value::Object(api_node));
    }
    Ok(graph)
}

// ---------------------------------------------------------------------------------------------
// InvokeAI
// ---------------------------------------------------------------------------------------------

/// InvokeAI scheduler names (`SCHEDULER_MAP` in `schedulers.py`) as A1111 (sampler, schedule
/// type). `_k` variants set diffusers' `use_karras_sigmas`; their plain twins use the model's
/// evenly spaced timesteps, A1111's Uniform. `pndm` with SD's `skip_prk_steps` is PLMS.
/// `dpmpp_2s` (not ancestral), `dpmpp_3m`, `deis`, `ddpm`, `er_sde` and `tcd` have no A1111
/// sampler and stay verbatim.
const INVOKEAI_SCHEDULERS: [(&str, &str, Option<&str>); 22] = [
    ("ddim", "DDIM", None),
    ("lms", "LMS", Some("Uniform")),
    ("lms_k", "LMS", Some("Karras")),
    ("pndm", "PLMS", None),
    ("heun", "Heun", Some("Uniform")),
    ("heun_k", "Heun", Some("Karras")),
    ("euler", "Euler", Some("Uniform")),
    ("euler_k", "Euler", Some("Karras")),
    ("euler_a", "Euler a", None),
    ("kdpm_2", "DPM2", Some("Uniform")),
    ("kdpm_2_k", "DPM2", Some("Karras")),
    ("kdpm_2_a", "DPM2 a", Some("Uniform")),
    ("kdpm_2_a_k", "DPM2 a", Some("Karras")),
    ("dpmpp_2m", "DPM++ 2M", Some("Uniform")),
    ("dpmpp_2m_k", "DPM++ 2M", Some("Karras")),
    ("dpmpp_2m_sde", "DPM++ 2M SDE", Some("Uniform")),
    ("dpmpp_2m_sde_k", "DPM++ 2M SDE", Some("Karras")),
    ("dpmpp_sde", "DPM++ SDE", Some("Uniform")),
    ("dpmpp_sde_k", "DPM++ SDE", Some("Karras")),
    ("unipc", "UniPC", None),
    ("unipc_k", "UniPC", Some("Karras")),
    ("lcm", "LCM", None),
];

/// InvokeAI 2.x sampler names (`ldm/invoke/args.py` `SAMPLER_CHOICES`; 2.2's `generate.py` maps
/// `k_dpmpp_2` to `dpmpp_2m` and `k_dpmpp_2_a` to `dpmpp_2s_ancestral`).
pub(crate) const INVOKEAI_LEGACY_SAMPLERS: [(&str, &str); 11] = [
    ("ddim", "DDIM"),
    ("plms", "PLMS"),
    ("pndm", "PLMS"),
    ("k_lms", "LMS"),
    ("k_euler", "Euler"),
    ("k_euler_a", "Euler a"),
    ("k_heun", "Heun"),
    ("k_dpm_2", "DPM2"),
    ("k_dpm_2_a", "DPM2 a"),
    ("k_dpmpp_2", "DPM++ 2M"),
    ("k_dpmpp_2_a", "DPM++ 2S a"),
];

fn string_field(object: &Map<String, Value>, key: &str) -> Option<String> {
    object.get(key)?.as_str().map(str::to_owned)
}

/// A model's name: a string, or an object with `name` (4.x+ `ModelIdentifierField`) or
/// `model_name` (3.x `MainModelField`, `LoRAModelField`).
fn model_name(value: &Value) -> Option<String> {
    let name = match value {
        Value::String(name) => name.as_str(),
        Value::Object(model) => model
            .get("name")
            .and_then(Value::as_str)
            .or_else(|| model.get("model_name").and_then(Value::as_str))?,
        _ => return None,
    };
    (!name.is_empty()).then(|| file_stem(name))
}

fn invokeai_params(meta: &Map<String, Value>) -> ForeignParams {
    let get = |key: &str| meta.get(key);
    let (sampler, schedule) = match get("scheduler").and_then(Value::as_str) {
        Some(name) => match INVOKEAI_SCHEDULERS.iter().find(|(key, _, _)| *key == name) {
            Some(&(_, sampler, schedule)) => (Some(sampler.to_owned()), schedule.map(str::to_owned)),
            None => (Some(name.to_owned()), None),
        },
        None => (None, None),
    };
    // `strength` is the img2img denoising strength; a txt2img mode ignores it.
    let txt2img = get("generation_mode")
        .and_then(Value::as_str)
        .is_some_and(|mode| mode.ends_with("txt2img"));
    let loras = get("loras")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|lora| {
            let lora = lora.as_object()?;
            // 4.x+: {"model": {"name", …}, "weight"}; 3.x: {"lora": {"model_name", …}, "weight"}.
            let name = lora
                .get("model")
                .and_then(model_name)
                .or_else(|| lora.get("lora").and_then(model_name))?;
            let weight = lora.get("weight").and_then(to_f32).unwrap_or(1.0);
            Some((name, weight))
        })
        .collect();
    ForeignParams {
        source: ForeignSource::InvokeAi,
        prompt: string_field(meta, "positive_prompt"),
        negative_prompt: string_field(meta, "negative_prompt"),
        steps: get("steps").and_then(to_u32),
        cfg_scale: get("cfg_scale").and_then(to_f32),
        seed: get("seed").and_then(to_u64),
        sampler,
        schedule,
        width: get("width").and_then(to_u32),
        height: get("height").and_then(to_u32),
        model: get("model").and_then(model_name),
        denoising_strength: get("strength").and_then(to_f32).filter(|_| !txt2img),
        // InvokeAI counts skipped layers (0 = last layer); A1111 counts from 1.
        clip_skip: get("clip_skip")
            .and_then(to_u32)
            .and_then(|skipped| skipped.checked_add(1)),
        loras,
        other_samplers: Vec::new(),
    }
}

/// 2.x prompt: a string, or weighted sub-prompts `[{"prompt", "weight"}]` written back in 2.x's
/// `text:weight` blend syntax when there are several.
fn legacy_prompt(value: &Value) -> Option<String> {
    match value {
        Value::String(prompt) => Some(prompt.clone()),
        Value::Array(parts) => {
            let parts: Vec<(&str, Option<f64>)> = parts
                .iter()
                .filter_map(|part| {
                    let part = part.as_object()?;
                    Some((
                        part.get("prompt")?.as_str()?,
                        part.get("weight").and_then(Value::as_f64),
                    ))
                })
                .collect();
            match parts.as_slice() {
                [] => None,
                [(prompt, _)] => Some((*prompt).to_owned()),
                _ => Some(
                    parts
                        .iter()
                        .map(|(prompt, weight)| match weight {
                            Some(weight) => format!("{prompt}:{weight}"),
                            None => (*prompt).to_owned(),
                        })
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
            }
        }
        _ => None,
    }
}

/// 2.x `split_prompt_to_positive_and_negative`: every `[…]` (no newline inside, shortest match)
/// is negative, joined with spaces; each is replaced by a space in the positive prompt and runs
/// of spaces collapse. Both are trimmed here for display.
pub(crate) fn split_legacy_negative(prompt: &str) -> (String, Option<String>) {
    let mut positive = String::with_capacity(prompt.len());
    let mut negatives = Vec::new();
    let mut rest = prompt;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let close = after.find(']').filter(|&close| !after[..close].contains('\n'));
        if let Some(close) = close {
            positive.push_str(&rest[..open]);
            positive.push(' ');
            negatives.push(&after[..close]);
            rest = &after[close + 1..];
        } else {
            positive.push_str(&rest[..=open]);
            rest = after;
        }
    }
    positive.push_str(rest);
    if negatives.is_empty() {
        return (prompt.trim().to_owned(), None);
    }
    let mut collapsed = String::with_capacity(positive.len());
    for c in positive.chars() {
        if !(c == ' ' && collapsed.ends_with(' ')) {
            collapsed.push(c);
        }
    }
    (
        collapsed.trim().to_owned(),
        Some(negatives.join(" ").trim().to_owned()),
    )
}

fn invokeai_legacy_params(root: &Map<String, Value>) -> Result<ForeignParams, ForeignMetaError> {
    // A grid stores one entry per image in `images`; the first stands for the file.
    let image = root
        .get("image")
        .and_then(Value::as_object)
        .or_else(|| root.get("images")?.as_array()?.first()?.as_object());
    let Some(image) = image else {
        return Err(ForeignMetaError::NoParameters {
            tool: ForeignSource::InvokeAi,
        });
    };
    let get = |key: &str| image.get(key);
    let (prompt, negative_prompt) = match get("prompt").and_then(legacy_prompt) {
        Some(prompt) => {
            let (positive, negative) = split_legacy_negative(&prompt);
            (Some(positive), negative)
        }
        None => (None, None),
    };
    let img2img = get("type").and_then(Value::as_str) == Some("img2img");
    let params = ForeignParams {
        source: ForeignSource::InvokeAi,
        prompt,
        negative_prompt,
        steps: get("steps").and_then(to_u32),
        cfg_scale: get("cfg_scale").and_then(to_f32),
        seed: get("seed").and_then(to_u64),
        sampler: get("sampler")
            .and_then(Value::as_str)
            .map(|name| lookup(&INVOKEAI_LEGACY_SAMPLERS, name).unwrap_or(name).to_owned()),
        schedule: None,
        width: get("width").and_then(to_u32),
        height: get("height").and_then(to_u32),
        model: root.get("model_id").and_then(model_name),
        // metadata_dumps renames img2img's `strength` to `strength_steps`.
        denoising_strength: get("strength")
            .or_else(|| get("strength_steps"))
            .and_then(to_f32)
            .filter(|_| img2img),
        clip_skip: None,
        loras: Vec::new(),
        other_samplers: Vec::new(),
    };
    stated_or_error(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ComfyUI's default workflow as the API graph its SaveImage writes.
    const DEFAULT_GRAPH: &str = r#"{
        "3": {"inputs": {"seed": 156680208700286, "steps": 20, "cfg": 8, "sampler_name": "euler",
              "scheduler": "normal", "denoise": 1, "model": ["4", 0], "positive": ["6", 0],
              "negative": ["7", 0], "latent_image": ["5", 0]},
              "class_type": "KSampler", "_meta": {"title": "KSampler"}},
        "4": {"inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"},
              "class_type": "CheckpointLoaderSimple", "_meta": {"title": "Load Checkpoint"}},
        "5": {"inputs": {"width": 512, "height": 512, "batch_size": 1},
              "class_type": "EmptyLatentImage", "_meta": {"title": "Empty Latent Image"}},
        "6": {"inputs": {"text": "beautiful scenery nature glass bottle landscape, , purple galaxy bottle,",
              "clip": ["4", 1]}, "class_type": "CLIPTextEncode"},
        "7": {"inputs": {"text": "text, watermark", "clip": ["4", 1]}, "class_type": "CLIPTextEncode"},
        "8": {"inputs": {"samples": ["3", 0], "vae": ["4", 2]}, "class_type": "VAEDecode"},
        "9": {"inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}, "class_type": "SaveImage"}
    }"#;

    fn comfy(json: &str) -> ForeignParams {
        parse_comfyui_prompt(json).unwrap()
    }

    #[test]
    fn comfyui_default_workflow() {
        let p = comfy(DEFAULT_GRAPH);
        assert_eq!(
            p,
            ForeignParams {
                source: ForeignSource::ComfyUi,
                prompt: Some(
                    "beautiful scenery nature glass bottle landscape, , purple galaxy bottle,".into()
                ),
                negative_prompt: Some("text, watermark".into()),
                steps: Some(20),
                cfg_scale: Some(8.0),
                seed: Some(156_680_208_700_286),
                sampler: Some("Euler".into()),
                schedule: Some("Uniform".into()),
                width: Some(512),
                height: Some(512),
                model: Some("v1-5-pruned-emaonly".into()),
                denoising_strength: None,
                clip_skip: None,
                loras: vec![],
                other_samplers: Vec::new(),
            }
        );
    }

    #[test]
    fn comfyui_lora_chain_and_clip_skip() {
        let json = r#"{
            "3": {"class_type": "KSampler", "inputs": {"seed": 42, "steps": 28, "cfg": 6.5,
                  "sampler_name": "dpmpp_2m", "scheduler": "karras", "denoise": 1.0,
                  "model": ["11", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
            "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "SD1.5/dreamshaper_8.safetensors"}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 768, "batch_size": 1}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a portrait, (detailed eyes:1.2)", "clip": ["12", 0]}},
            "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "lowres, bad hands", "clip": ["12", 0]}},
            "10": {"class_type": "LoraLoader", "inputs": {"lora_name": "add_detail.safetensors",
                   "strength_model": 0.6, "strength_clip": 0.6, "model": ["4", 0], "clip": ["4", 1]}},
            "11": {"class_type": "LoraLoader", "inputs": {"lora_name": "styles\\ghibli_style_offset.safetensors",
                   "strength_model": 0.8, "strength_clip": 1.0, "model": ["10", 0], "clip": ["10", 1]}},
            "12": {"class_type": "CLIPSetLastLayer", "inputs": {"stop_at_clip_layer": -2, "clip": ["11", 1]}},
            "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
            "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}}
        }"#;
        let p = comfy(json);
        assert_eq!(p.model.as_deref(), Some("dreamshaper_8"));
        assert_eq!(
            p.loras,
            vec![
                ("add_detail".to_owned(), 0.6),
                ("ghibli_style_offset".to_owned(), 0.8)
            ]
        );
        assert_eq!(p.clip_skip, Some(2));
        assert_eq!(p.sampler.as_deref(), Some("DPM++ 2M"));
        assert_eq!(p.schedule.as_deref(), Some("Karras"));
        assert_eq!(p.cfg_scale, Some(6.5));
        assert_eq!((p.width, p.height), (Some(512), Some(768)));
        assert_eq!(p.prompt.as_deref(), Some("a portrait, (detailed eyes:1.2)"));
    }

    #[test]
    fn comfyui_img2img_has_no_size_and_states_denoise() {
        let json = r#"{
            "3": {"class_type": "KSampler", "inputs": {"seed": 7, "steps": 30, "cfg": 7,
                  "sampler_name": "euler_ancestral", "scheduler": "normal", "denoise": 0.55,
                  "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["11", 0]}},
            "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.ckpt"}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "oil painting of a harbour", "clip": ["4", 1]}},
            "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
            "10": {"class_type": "LoadImage", "inputs": {"image": "example.png", "upload": "image"}},
            "11": {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}},
            "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
            "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "img2img", "images": ["8", 0]}}
        }"#;
        let p = comfy(json);
        assert_eq!((p.width, p.height), (None, None));
        assert_eq!(p.denoising_strength, Some(0.55));
        assert_eq!(p.sampler.as_deref(), Some("Euler a"));
        assert_eq!(p.negative_prompt.as_deref(), Some(""));
        assert_eq!(p.model.as_deref(), Some("v1-5-pruned-emaonly"));
    }

    #[test]
    fn comfyui_img2img_size_from_image_scale() {
        let json = r#"{
            "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20, "cfg": 7,
                  "sampler_name": "euler", "scheduler": "normal", "denoise": 0.4,
                  "positive": ["6", 0], "negative": ["6", 0], "latent_image": ["11", 0]}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "x", "clip": ["4", 1]}},
            "10": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
            "12": {"class_type": "ImageScale", "inputs": {"image": ["10", 0], "upscale_method": "bicubic",
                   "width": 640, "height": 480, "crop": "disabled"}},
            "11": {"class_type": "VAEEncode", "inputs": {"pixels": ["12", 0], "vae": ["4", 2]}}
        }"#;
        let p = comfy(json);
        assert_eq!((p.width, p.height), (Some(640), Some(480)));
        assert_eq!(p.denoising_strength, Some(0.4));
    }

    /// SDXL base + refiner with KSamplerAdvanced: the refiner adds no noise and continues the
    /// base sampler's latent, so the base sampler is reported.
    #[test]
    fn comfyui_sdxl_base_and_refiner() {
        let json = r#"{
            "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
            "12": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_refiner_1.0.safetensors"}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
            "6": {"class_type": "CLIPTextEncodeSDXL", "inputs": {"width": 4096, "height": 4096, "crop_w": 0, "crop_h": 0,
                  "target_width": 4096, "target_height": 4096, "text_g": "a lighthouse at dusk",
                  "text_l": "a lighthouse at dusk", "clip": ["4", 1]}},
            "7": {"class_type": "CLIPTextEncodeSDXL", "inputs": {"width": 4096, "height": 4096, "crop_w": 0, "crop_h": 0,
                  "target_width": 4096, "target_height": 4096, "text_g": "blurry", "text_l": "blurry", "clip": ["4", 1]}},
            "15": {"class_type": "CLIPTextEncodeSDXLRefiner", "inputs": {"ascore": 6, "width": 2048, "height": 2048,
                   "text": "a lighthouse at dusk", "clip": ["12", 1]}},
            "16": {"class_type": "CLIPTextEncodeSDXLRefiner", "inputs": {"ascore": 2.5, "width": 2048, "height": 2048,
                   "text": "blurry", "clip": ["12", 1]}},
            "10": {"class_type": "KSamplerAdvanced", "inputs": {"add_noise": "enable", "noise_seed": 721897303308196,
                   "steps": 25, "cfg": 8, "sampler_name": "euler", "scheduler": "normal", "start_at_step": 0,
                   "end_at_step": 20, "return_with_leftover_noise": "enable", "model": ["4", 0],
                   "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
            "11": {"class_type": "KSamplerAdvanced", "inputs": {"add_noise": "disable", "noise_seed": 0,
                   "steps": 25, "cfg": 8, "sampler_name": "euler", "scheduler": "normal", "start_at_step": 20,
                   "end_at_step": 10000, "return_with_leftover_noise": "disable", "model": ["12", 0],
                   "positive": ["15", 0], "negative": ["16", 0], "latent_image": ["10", 0]}},
            "17": {"class_type": "VAEDecode", "inputs": {"samples": ["11", 0], "vae": ["12", 2]}},
            "19": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["17", 0]}}
        }"#;
        let p = comfy(json);
        assert_eq!(p.seed, Some(721_897_303_308_196));
        assert_eq!(p.steps, Some(25));
        assert_eq!(p.model.as_deref(), Some("sd_xl_base_1.0"));
        assert_eq!(p.prompt.as_deref(), Some("a lighthouse at dusk"));
        assert_eq!(p.negative_prompt.as_deref(), Some("blurry"));
        assert_eq!((p.width, p.height), (Some(1024), Some(1024)));
        assert_eq!(p.denoising_strength, None);
    }

    #[test]
    fn comfyui_ksampler_advanced_img2img_start_step() {
        let json = r#"{
            "3": {"class_type": "KSamplerAdvanced", "inputs": {"add_noise": "enable", "noise_seed": 5,
                  "steps": 20, "cfg": 7, "sampler_name": "dpmpp_2m_sde_gpu", "scheduler": "exponential",
                  "start_at_step": 5, "end_at_step": 10000, "return_with_leftover_noise": "disable",
                  "positive": ["6", 0], "negative": ["6", 0], "latent_image": ["11", 0]}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "x", "clip": ["4", 1]}},
            "11": {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}}
        }"#;
        let p = comfy(json);
        assert_eq!(p.seed, Some(5));
        assert_eq!(p.denoising_strength, Some(0.75));
        assert_eq!(p.sampler.as_deref(), Some("DPM++ 2M SDE"));
        assert_eq!(p.schedule.as_deref(), Some("Exponential"));
    }

    #[test]
    fn comfyui_text_from_primitive_and_concatenate_nodes() {
        let json = r#"{
            "3": {"class_type": "KSampler", "inputs": {"seed": ["21", 0], "steps": 20, "cfg": 7,
                  "sampler_name": "lcm", "scheduler": "sgm_uniform", "denoise": 1,
                  "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 768, "height": 512, "batch_size": 4}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": ["20", 0], "clip": ["4", 1]}},
            "7": {"class_type": "CLIPTextEncode", "inputs": {"text": ["22", 0], "clip": ["4", 1]}},
            "20": {"class_type": "PrimitiveStringMultiline", "inputs": {"value": "a red fox in snow"}},
            "21": {"class_type": "PrimitiveInt", "inputs": {"value": 99}},
            "22": {"class_type": "StringConcatenate", "inputs": {"string_a": "blurry", "string_b": ["23", 0],
                   "delimiter": ", "}},
            "23": {"class_type": "PrimitiveString", "inputs": {"value": "jpeg artifacts"}}
        }"#;
        let p = comfy(json);
        assert_eq!(p.prompt.as_deref(), Some("a red fox in snow"));
        assert_eq!(p.negative_prompt.as_deref(), Some("blurry, jpeg artifacts"));
        assert_eq!(p.seed, Some(99));
        assert_eq!(p.sampler.as_deref(), Some("LCM"));
        assert_eq!(p.schedule.as_deref(), Some("SGM Uniform"));
    }

    /// Hires fix: the second pass feeds SaveImage and is reported with the upscaled size; a
    /// PreviewImage of the first pass does not win over SaveImage.
    #[test]
    fn comfyui_hires_fix_reports_final_pass() {
        let json = r#"{
            "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20, "cfg": 7, "sampler_name": "euler",
                  "scheduler": "normal", "denoise": 1, "positive": ["6", 0], "negative": ["7", 0],
                  "model": ["4", 0], "latent_image": ["5", 0]}},
            "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "model.safetensors"}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "castle", "clip": ["4", 1]}},
            "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "fog", "clip": ["4", 1]}},
            "10": {"class_type": "LatentUpscaleBy", "inputs": {"upscale_method": "nearest-exact", "scale_by": 1.5,
                   "samples": ["3", 0]}},
            "11": {"class_type": "KSampler", "inputs": {"seed": 2, "steps": 14, "cfg": 7, "sampler_name": "dpmpp_2m",
                   "scheduler": "simple", "denoise": 0.5, "positive": ["6", 0], "negative": ["7", 0],
                   "model": ["4", 0], "latent_image": ["10", 0]}},
            "12": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
            "2": {"class_type": "PreviewImage", "inputs": {"images": ["12", 0]}},
            "13": {"class_type": "VAEDecode", "inputs": {"samples": ["11", 0], "vae": ["4", 2]}},
            "14": {"class_type": "SaveImage", "inputs": {"filename_prefix": "hires", "images": ["13", 0]}}
        }"#;
        let p = comfy(json);
        assert_eq!(p.seed, Some(2));
        assert_eq!(p.steps, Some(14));
        assert_eq!((p.width, p.height), (Some(768), Some(768)));
        assert_eq!(p.denoising_strength, Some(0.5));
        assert_eq!(p.schedule.as_deref(), Some("Simple"));
    }

    #[test]
    fn comfyui_latent_upscale_sizes() {
        assert_eq!(
            latent_upscale_size(Some((512, 768)), Some(1024), Some(0)),
            Some((1024, 1536))
        );
        assert_eq!(
            latent_upscale_size(Some((512, 768)), Some(0), Some(0)),
            Some((512, 768))
        );
        assert_eq!(latent_upscale_size(None, Some(1000), Some(20)), Some((1000, 64)));
        assert_eq!(latent_upscale_size(None, Some(0), Some(512)), None);
        assert_eq!(latent_scale_size((512, 512), 1.5), Some((768, 768)));
        assert_eq!(latent_scale_size((512, 512), 1e300), None);
        assert_eq!(latent_scale_size((512, 512), f64::NAN), None);
    }

    #[test]
    fn comfyui_without_outputs_takes_lowest_numeric_id() {
        let json = r#"{
            "10": {"class_type": "KSampler", "inputs": {"seed": 10, "steps": 10, "latent_image": ["5", 0]}},
            "3": {"class_type": "KSampler", "inputs": {"seed": 3, "steps": 3, "latent_image": ["5", 0]}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}}
        }"#;
        assert_eq!(comfy(json).seed, Some(3));
    }

    #[test]
    fn comfyui_sampler_custom_advanced_flux() {
        let json = r#"{
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a neon sign that says hello", "clip": ["11", 0]}},
            "8": {"class_type": "VAEDecode", "inputs": {"samples": ["13", 0], "vae": ["10", 0]}},
            "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "flux", "images": ["8", 0]}},
            "12": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors", "weight_dtype": "default"}},
            "13": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["25", 0], "guider": ["22", 0],
                   "sampler": ["16", 0], "sigmas": ["17", 0], "latent_image": ["27", 0]}},
            "16": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
            "17": {"class_type": "BasicScheduler", "inputs": {"scheduler": "simple", "steps": 20, "denoise": 1, "model": ["30", 0]}},
            "22": {"class_type": "BasicGuider", "inputs": {"model": ["30", 0], "conditioning": ["26", 0]}},
            "25": {"class_type": "RandomNoise", "inputs": {"noise_seed": 219670278747233}},
            "26": {"class_type": "FluxGuidance", "inputs": {"guidance": 3.5, "conditioning": ["6", 0]}},
            "27": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 1024, "height": 768, "batch_size": 1}},
            "30": {"class_type": "ModelSamplingFlux", "inputs": {"max_shift": 1.15, "base_shift": 0.5,
                   "width": 1024, "height": 768, "model": ["12", 0]}}
        }"#;
        let p = comfy(json);
        assert_eq!(p.prompt.as_deref(), Some("a neon sign that says hello"));
        assert_eq!(p.negative_prompt, None);
        assert_eq!(p.seed, Some(219_670_278_747_233));
        assert_eq!(p.steps, Some(20));
        assert_eq!(p.cfg_scale, None);
        assert_eq!(p.sampler.as_deref(), Some("Euler"));
        assert_eq!(p.schedule.as_deref(), Some("Simple"));
        assert_eq!(p.model.as_deref(), Some("flux1-dev"));
        assert_eq!((p.width, p.height), (Some(1024), Some(768)));
        assert_eq!(p.denoising_strength, None);
    }

    #[test]
    fn comfyui_sampler_custom_with_karras_scheduler_and_combine() {
        let json = r#"{
            "1": {"class_type": "SamplerCustom", "inputs": {"add_noise": true, "noise_seed": 8, "cfg": 5.5,
                  "model": ["4", 0], "positive": ["20", 0], "negative": ["21", 0], "sampler": ["2", 0],
                  "sigmas": ["3", 0], "latent_image": ["5", 0]}},
            "2": {"class_type": "SamplerDPMPP_2M_SDE", "inputs": {"solver_type": "heun", "eta": 1, "s_noise": 1,
                  "noise_device": "gpu"}},
            "3": {"class_type": "KarrasScheduler", "inputs": {"steps": 24, "sigma_max": 14.6, "sigma_min": 0.03, "rho": 7}},
            "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.safetensors"}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
            "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "a hat", "clip": ["4", 1]}},
            "8": {"class_type": "CLIPTextEncode", "inputs": {"text": "ugly", "clip": ["4", 1]}},
            "20": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["6", 0], "conditioning_2": ["22", 0]}},
            "22": {"class_type": "ConditioningConcat", "inputs": {"conditioning_to": ["7", 0], "conditioning_from": ["6", 0]}},
            "21": {"class_type": "ConditioningSetTimestepRange", "inputs": {"start": 0, "end": 1, "conditioning": ["8", 0]}}
        }"#;
        let p = comfy(json);
        assert_eq!(p.prompt.as_deref(), Some("a cat AND a hat BREAK a cat"));
        assert_eq!(p.negative_prompt.as_deref(), Some("ugly"));
        assert_eq!(p.sampler.as_deref(), Some("DPM++ 2M SDE Heun"));
        assert_eq!(p.schedule.as_deref(), Some("Karras"));
        assert_eq!(p.steps, Some(24));
        assert_eq!(p.cfg_scale, Some(5.5));
        assert_eq!(p.seed, Some(8));
    }

    #[test]
    fn comfyui_controlnet_pair_node_keeps_both_prompts() {
        let json = r#"{
            "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20, "cfg": 7, "sampler_name": "heun",
                  "scheduler": "ddim_uniform", "denoise": 1, "positive": ["30", 0], "negative": ["30", 1],
                  "latent_image": ["5", 0]}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "dancer", "clip": ["4", 1]}},
            "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "extra limbs", "clip": ["4", 1]}},
            "30": {"class_type": "ControlNetApplyAdvanced", "inputs": {"strength": 1, "start_percent": 0,
                   "end_percent": 1, "positive": ["6", 0], "negative": ["7", 0], "control_net": ["31", 0],
                   "image": ["32", 0]}}
        }"#;
        let p = comfy(json);
        assert_eq!(p.prompt.as_deref(), Some("dancer"));
        assert_eq!(p.negative_prompt.as_deref(), Some("extra limbs"));
        assert_eq!(p.sampler.as_deref(), Some("Heun"));
        assert_eq!(p.schedule.as_deref(), Some("DDIM"));
    }

    #[test]
    fn comfyui_unknown_names_stay_verbatim() {
        let json = r#"{"3": {"class_type": "KSampler", "inputs": {"sampler_name": "res_multistep",
                      "scheduler": "linear_quadratic"}}}"#;
        let p = comfy(json);
        assert_eq!(p.sampler.as_deref(), Some("res_multistep"));
        assert_eq!(p.schedule.as_deref(), Some("linear_quadratic"));
    }

    /// The default workflow as the frontend stores it in the `workflow` chunk, with a Reroute
    /// on the model link, a PrimitiveNode driving the positive text and a muted LoRA loader.
    const DEFAULT_WORKFLOW: &str = r#"{
        "last_node_id": 12, "last_link_id": 14,
        "nodes": [
            {"id": 7, "type": "CLIPTextEncode", "mode": 0,
             "inputs": [{"name": "clip", "type": "CLIP", "link": 5}],
             "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": [6], "slot_index": 0}],
             "widgets_values": ["text, watermark"]},
            {"id": 6, "type": "CLIPTextEncode", "mode": 0,
             "inputs": [{"name": "clip", "type": "CLIP", "link": 3},
                        {"name": "text", "type": "STRING", "widget": {"name": "text"}, "link": 12}],
             "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": [4], "slot_index": 0}],
             "widgets_values": ["ignored because linked"]},
            {"id": 5, "type": "EmptyLatentImage", "mode": 0, "inputs": [],
             "outputs": [{"name": "LATENT", "type": "LATENT", "links": [2], "slot_index": 0}],
             "widgets_values": [512, 768, 1]},
            {"id": 3, "type": "KSampler", "mode": 0,
             "inputs": [{"name": "model", "type": "MODEL", "link": 11},
                        {"name": "positive", "type": "CONDITIONING", "link": 4},
                        {"name": "negative", "type": "CONDITIONING", "link": 6},
                        {"name": "latent_image", "type": "LATENT", "link": 2}],
             "outputs": [{"name": "LATENT", "type": "LATENT", "links": [7], "slot_index": 0}],
             "widgets_values": [156680208700286, "randomize", 20, 8, "euler", "normal", 1]},
            {"id": 8, "type": "VAEDecode", "mode": 0,
             "inputs": [{"name": "samples", "type": "LATENT", "link": 7}, {"name": "vae", "type": "VAE", "link": 8}],
             "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [9], "slot_index": 0}]},
            {"id": 9, "type": "SaveImage", "mode": 0,
             "inputs": [{"name": "images", "type": "IMAGE", "link": 9}], "widgets_values": ["ComfyUI"]},
            {"id": 4, "type": "CheckpointLoaderSimple", "mode": 0,
             "outputs": [{"name": "MODEL", "type": "MODEL", "links": [10], "slot_index": 0},
                         {"name": "CLIP", "type": "CLIP", "links": [3, 5], "slot_index": 1},
                         {"name": "VAE", "type": "VAE", "links": [8], "slot_index": 2}],
             "widgets_values": ["v1-5-pruned-emaonly.safetensors"]},
            {"id": 10, "type": "Reroute", "mode": 0,
             "inputs": [{"name": "", "type": "*", "link": 10}],
             "outputs": [{"name": "", "type": "MODEL", "links": [11]}]},
            {"id": 11, "type": "PrimitiveNode", "mode": 0,
             "outputs": [{"name": "STRING", "type": "STRING", "links": [12], "widget": {"name": "text"}}],
             "widgets_values": ["a watercolor fox"]},
            {"id": 12, "type": "LoraLoader", "mode": 2, "inputs": [], "widgets_values": ["muted.safetensors", 1, 1]}
        ],
        "links": [[2, 5, 0, 3, 3, "LATENT"], [3, 4, 1, 6, 0, "CLIP"], [4, 6, 0, 3, 1, "CONDITIONING"],
                  [5, 4, 1, 7, 0, "CLIP"], [6, 7, 0, 3, 2, "CONDITIONING"], [7, 3, 0, 8, 0, "LATENT"],
                  [8, 4, 2, 8, 1, "VAE"], [9, 8, 0, 9, 0, "IMAGE"], [10, 4, 0, 10, 0, "MODEL"],
                  [11, 10, 0, 3, 0, "MODEL"], [12, 11, 0, 6, 1, "STRING"]],
        "groups": [], "config": {}, "extra": {}, "version": 0.4
    }"#;

    #[test]
    fn comfyui_workflow_chunk() {
        let p = parse_comfyui_workflow(DEFAULT_WORKFLOW).unwrap();
        assert_eq!(p.prompt.as_deref(), Some("a watercolor fox"));
        assert_eq!(p.negative_prompt.as_deref(), Some("text, watermark"));
        assert_eq!(p.seed, Some(156_680_208_700_286));
        assert_eq!(p.steps, Some(20));
        assert_eq!(p.cfg_scale, Some(8.0));
        assert_eq!(p.sampler.as_deref(), Some("Euler"));
        assert_eq!(p.schedule.as_deref(), Some("Uniform"));
        assert_eq!((p.width, p.height), (Some(512), Some(768)));
        assert_eq!(p.model.as_deref(), Some("v1-5-pruned-emaonly"));
        assert!(p.loras.is_empty());
    }

    #[test]
    fn comfyui_workflow_bypassed_lora_is_not_counted() {
        let json = r#"{
            "nodes": [
                {"id": 1, "type": "CheckpointLoaderSimple", "widgets_values": ["a.safetensors"]},
                {"id": 2, "type": "LoraLoader", "mode": 4,
                 "inputs": [{"name": "model", "link": 1}, {"name": "clip", "link": 2}],
                 "widgets_values": ["bypassed.safetensors", 1, 1]},
                {"id": 3, "type": "KSampler", "inputs": [{"name": "model", "link": 3}],
                 "widgets_values": [5, 30, 7, "euler", "karras", 1]}
            ],
            "links": [{"id": 1, "origin_id": 1, "origin_slot": 0, "target_id": 2, "target_slot": 0},
                      {"id": 2, "origin_id": 1, "origin_slot": 1, "target_id": 2, "target_slot": 1},
                      {"id": 3, "origin_id": 2, "origin_slot": 0, "target_id": 3, "target_slot": 0}]
        }"#;
        let p = parse_comfyui_workflow(json).unwrap();
        assert_eq!(p.model.as_deref(), Some("a"));
        assert!(p.loras.is_empty());
        assert_eq!(p.seed, Some(5), "no control value after the seed");
        assert_eq!(p.steps, Some(30));
        assert_eq!(p.schedule.as_deref(), Some("Karras"));
    }

    #[test]
    fn comfyui_workflow_garbage_and_reroute_loops() {
        let json = r#"{
            "nodes": [
                {"id": 1, "type": "Reroute", "inputs": [{"name": "", "link": 1}]},
                {"id": 2, "type": "KSampler", "inputs": [{"name": "model", "link": 1}, {"name": "positive", "link": "x"},
                 {"link": 5}, 7], "widgets_values": {"seed": 3, "steps": 9}},
                {"id": 3, "type": "PrimitiveNode", "widgets_values": []},
                {"id": 4}, 5, null, {"id": [1], "type": "KSampler"}
            ],
            "links": [[1, 1, 0, 1, 0, "*"], [2], {"id": 3}, "x", [4, 3, 0, 2, 1, "STRING"]]
        }"#;
        let p = parse_comfyui_workflow(json).unwrap();
        assert_eq!((p.seed, p.steps, p.model), (Some(3), Some(9), None));
        assert_eq!(
            parse_comfyui_workflow(r#"{"links": []}"#).unwrap_err(),
            ForeignMetaError::NoWorkflowNodes
        );
        assert_eq!(
            parse_comfyui_workflow(r#"{"nodes": []}"#).unwrap_err(),
            ForeignMetaError::NoSamplerNode
        );
    }

    #[test]
    fn comfyui_inpaint_model_conditioning_is_img2img() {
        let json = r#"{
            "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20, "cfg": 7, "sampler_name": "euler",
                  "scheduler": "normal", "denoise": 1, "positive": ["20", 0], "negative": ["20", 1],
                  "latent_image": ["20", 2]}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red door", "clip": ["4", 1]}},
            "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
            "20": {"class_type": "InpaintModelConditioning", "inputs": {"positive": ["6", 0], "negative": ["7", 0],
                   "vae": ["4", 2], "pixels": ["10", 0], "mask": ["10", 1], "noise_mask": true}}
        }"#;
        let p = comfy(json);
        assert_eq!(p.prompt.as_deref(), Some("a red door"));
        assert_eq!(p.negative_prompt.as_deref(), Some(""));
        assert_eq!(p.denoising_strength, Some(1.0));
        assert_eq!(p.width, None);
    }

    #[test]
    fn comfyui_many_outputs_without_samplers_upstream_stay_fast() {
        // 3,000 SaveImage nodes all reading one long chain of image nodes: each node is visited
        // once across all the searches, not once per output.
        let mut nodes = Map::new();
        for i in 0..3_000_u32 {
            nodes.insert(
                format!("{i}"),
                serde_json::json!({"class_type": "ImageInvert", "inputs": {"image": [(i + 1).to_string(), 0]}}),
            );
            nodes.insert(
                format!("s{i}"),
                serde_json::json!({"class_type": "SaveImage", "inputs": {"images": ["0", 0]}}),
            );
        }
        nodes.insert(
            "k".into(),
            serde_json::json!({"class_type": "KSampler", "inputs": {"steps": 6}}),
        );
        let started = std::time::Instant::now();
        assert_eq!(comfy_params(&nodes).unwrap().steps, Some(6));
        assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
    }

    #[test]
    fn comfyui_errors_read_well() {
        let err = parse_comfyui_prompt("{not json").unwrap_err();
        assert!(matches!(
            err,
            ForeignMetaError::InvalidJson {
                tool: ForeignSource::ComfyUi,
                ..
            }
        ));
        assert!(
            err.to_string()
                .starts_with("ComfyUI metadata is not valid JSON: "),
            "{err}"
        );
        assert_eq!(
            parse_comfyui_prompt("[1, 2]").unwrap_err().to_string(),
            "ComfyUI metadata is not a JSON object (it is an array)"
        );
        assert_eq!(
            parse_comfyui_prompt("{}").unwrap_err(),
            ForeignMetaError::NoSamplerNode
        );
        assert!(
            parse_comfyui_prompt("{}")
                .unwrap_err()
                .to_string()
                .contains("has no sampler node")
        );
        assert_eq!(
            parse_comfyui_workflow(r#"{"nodes": 3}"#).unwrap_err(),
            ForeignMetaError::NoWorkflowNodes
        );
        assert!(matches!(
            parse_comfyui_prompt("").unwrap_err(),
            ForeignMetaError::InvalidJson { .. }
        ));
    }

    #[test]
    fn comfyui_links_to_missing_nodes_leave_fields_empty() {
        let json = r#"{"3": {"class_type": "KSampler", "inputs": {"seed": ["404", 0], "steps": 20,
            "model": ["404", 0], "positive": ["404", 0], "negative": ["405", 7], "latent_image": ["406", 0]}},
            "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0]}}}"#;
        let p = comfy(json);
        assert_eq!(p.steps, Some(20));
        assert_eq!((p.seed, p.prompt, p.model, p.width), (None, None, None, None));
    }

    #[test]
    fn comfyui_cycles_terminate() {
        // Model chain, clip chain, text, latent, conditioning tree and output search all loop.
        let json = r#"{
            "3": {"class_type": "KSampler", "inputs": {"seed": ["3", 0], "steps": 20, "model": ["10", 0],
                  "positive": ["20", 0], "negative": ["6", 0], "latent_image": ["30", 0]}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": ["6", 0], "clip": ["12", 0]}},
            "10": {"class_type": "LoraLoader", "inputs": {"lora_name": "a.safetensors", "strength_model": 1,
                   "model": ["11", 0], "clip": ["11", 1]}},
            "11": {"class_type": "LoraLoader", "inputs": {"lora_name": "b.safetensors", "strength_model": 1,
                   "model": ["10", 0], "clip": ["10", 1]}},
            "12": {"class_type": "Anything", "inputs": {"clip": ["12", 0]}},
            "20": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["20", 0], "conditioning_2": ["20", 0]}},
            "30": {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["31", 0]}},
            "31": {"class_type": "LatentUpscaleBy", "inputs": {"samples": ["30", 0], "scale_by": 2}},
            "40": {"class_type": "SaveImage", "inputs": {"images": ["41", 0]}},
            "41": {"class_type": "VAEDecode", "inputs": {"samples": ["40", 0]}}
        }"#;
        let p = comfy(json);
        assert_eq!(p.steps, Some(20));
        assert_eq!(p.prompt, None);
        assert_eq!(p.model, None);
        assert!(p.loras.len() <= MAX_DEPTH as usize);
    }

    #[test]
    fn comfyui_refiner_cycle_terminates() {
        // Two samplers that add no noise and feed each other.
        let json = r#"{
            "1": {"class_type": "KSamplerAdvanced", "inputs": {"add_noise": "disable", "noise_seed": 1, "latent_image": ["2", 0]}},
            "2": {"class_type": "KSamplerAdvanced", "inputs": {"add_noise": "disable", "noise_seed": 2, "latent_image": ["1", 0]}}
        }"#;
        assert!(comfy(json).seed.is_some());
    }

    #[test]
    fn comfyui_wrong_types_and_huge_numbers() {
        let json = r#"{
            "1": 5, "2": {"class_type": 7}, "4": {"class_type": "CheckpointLoaderSimple", "inputs": []},
            "3": {"class_type": "KSampler", "inputs": {"seed": 18446744073709551615, "steps": "twenty",
                  "cfg": 1e300, "sampler_name": 5, "scheduler": ["karras"], "denoise": "full",
                  "model": ["4", 0], "positive": {"text": "x"}, "negative": ["7", -1], "latent_image": ["5", 0]}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 4294967296, "height": -512, "batch_size": 1}},
            "6": {"class_type": "CLIPSetLastLayer", "inputs": {"stop_at_clip_layer": -9223372036854775808}}
        }"#;
        let p = comfy(json);
        assert_eq!(p.seed, Some(u64::MAX));
        assert_eq!(
            (p.steps, p.cfg_scale, p.sampler, p.schedule),
            (None, None, None, None)
        );
        assert_eq!((p.width, p.height, p.model, p.prompt), (None, None, None, None));
        assert_eq!(p.denoising_strength, None);

        let json = r#"{"3": {"class_type": "KSampler", "inputs": {"seed": 1e300, "steps": 20.0,
            "positive": ["6", 0], "latent_image": ["5", 0]}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512.0, "height": 512.5, "batch_size": 1}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "x", "clip": ["7", 0]}},
            "7": {"class_type": "CLIPSetLastLayer", "inputs": {"stop_at_clip_layer": -9223372036854775808}}}"#;
        let p = comfy(json);
        // A size is reported whole or not at all.
        assert_eq!((p.seed, p.steps, p.width, p.height), (None, Some(20), None, None));
        assert_eq!(p.clip_skip, None);
    }

    #[test]
    fn comfyui_deeply_nested_json_is_an_error_not_a_crash() {
        let json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(
            parse_comfyui_prompt(&json).unwrap_err(),
            ForeignMetaError::InvalidJson { .. }
        ));
    }

    #[test]
    fn comfyui_long_lora_chain_is_bounded() {
        let mut nodes = Map::new();
        for i in 0..10_000_u32 {
            let node = serde_json::json!({"class_type": "LoraLoader", "inputs": {
                "lora_name": format!("l{i}.safetensors"), "strength_model": 0.5,
                "model": [(i + 1).to_string(), 0]}});
            nodes.insert(i.to_string(), node);
        }
        nodes.insert(
            "sampler".into(),
            serde_json::json!({"class_type": "KSampler", "inputs": {"model": ["0", 0], "steps": 4}}),
        );
        let p = comfy_params(&nodes).unwrap();
        assert_eq!(p.loras.len(), MAX_DEPTH as usize);
        assert_eq!(p.model, None);
    }

    #[test]
    fn file_stems() {
        assert_eq!(
            file_stem("v1-5-pruned-emaonly.safetensors"),
            "v1-5-pruned-emaonly"
        );
        assert_eq!(file_stem("SDXL/sd_xl_base_1.0.SafeTensors"), "sd_xl_base_1.0");
        assert_eq!(file_stem("C:\\models\\x.ckpt"), "x");
        assert_eq!(file_stem("sd_xl_base_1.0"), "sd_xl_base_1.0");
        assert_eq!(file_stem(".safetensors"), ".safetensors");
        assert_eq!(file_stem("dir/"), "");
    }

    /// InvokeAI 3.x core metadata (`MainModelField`, `LoRAMetadataField.lora`).
    const INVOKEAI_3: &str = r#"{
        "generation_mode": "txt2img",
        "positive_prompt": "a photo of an astronaut riding a horse on mars",
        "negative_prompt": "blurry, lowres",
        "width": 512, "height": 768, "seed": 1234567890, "rand_device": "cpu",
        "cfg_scale": 7.5, "steps": 30, "scheduler": "dpmpp_2m_k", "clip_skip": 1,
        "model": {"model_name": "stable-diffusion-v1-5", "base_model": "sd-1", "model_type": "main"},
        "controlnets": [], "ipAdapters": [], "t2iAdapters": [],
        "loras": [{"lora": {"model_name": "add_detail", "base_model": "sd-1"}, "weight": 0.75}],
        "vae": {"model_name": "sd-vae-ft-mse", "base_model": "sd-1"},
        "app_version": "3.4.0post2"
    }"#;

    /// InvokeAI 5.x core metadata (`ModelIdentifierField`, `LoRAMetadataField.model`).
    const INVOKEAI_5: &str = r#"{
        "generation_mode": "sdxl_img2img",
        "positive_prompt": "a cozy cabin in the woods, (snow)1.2",
        "negative_prompt": "",
        "width": 1024, "height": 1024, "seed": 987654321, "rand_device": "cpu",
        "cfg_scale": 6, "cfg_rescale_multiplier": 0, "steps": 28, "scheduler": "euler_a",
        "model": {"key": "2f4a6c1e-0d39-4c59-9a3b-86a1d3e0f1aa", "hash": "blake3:8c1f0e",
                  "name": "Juggernaut XL v9", "base": "sdxl", "type": "main"},
        "loras": [{"model": {"key": "b1", "hash": "blake3:00", "name": "detail-tweaker-xl", "base": "sdxl",
                   "type": "lora"}, "weight": 1.2},
                  {"lora": {"key": "only-a-key"}, "weight": 0.5}],
        "strength": 0.6,
        "positive_style_prompt": "a cozy cabin in the woods",
        "app_version": "5.6.0"
    }"#;

    #[test]
    fn invokeai_3x() {
        let p = parse_invokeai_metadata(INVOKEAI_3).unwrap();
        assert_eq!(
            p,
            ForeignParams {
                source: ForeignSource::InvokeAi,
                prompt: Some("a photo of an astronaut riding a horse on mars".into()),
                negative_prompt: Some("blurry, lowres".into()),
                steps: Some(30),
                cfg_scale: Some(7.5),
                seed: Some(1_234_567_890),
                sampler: Some("DPM++ 2M".into()),
                schedule: Some("Karras".into()),
                width: Some(512),
                height: Some(768),
                model: Some("stable-diffusion-v1-5".into()),
                denoising_strength: None,
                clip_skip: Some(2),
                loras: vec![("add_detail".into(), 0.75)],
                other_samplers: Vec::new(),
            }
        );
    }

    #[test]
    fn invokeai_5x() {
        let p = parse_invokeai_metadata(INVOKEAI_5).unwrap();
        assert_eq!(p.model.as_deref(), Some("Juggernaut XL v9"));
        assert_eq!(p.loras, vec![("detail-tweaker-xl".to_owned(), 1.2)]);
        assert_eq!(p.sampler.as_deref(), Some("Euler a"));
        assert_eq!(p.schedule, None);
        assert_eq!(p.denoising_strength, Some(0.6));
        assert_eq!(p.negative_prompt.as_deref(), Some(""));
        assert_eq!(p.cfg_scale, Some(6.0));
        assert_eq!(p.clip_skip, None);
    }

    #[test]
    fn invokeai_scheduler_names() {
        let cases = [
            ("euler", "Euler", Some("Uniform")),
            ("euler_k", "Euler", Some("Karras")),
            ("dpmpp_2m", "DPM++ 2M", Some("Uniform")),
            ("dpmpp_sde_k", "DPM++ SDE", Some("Karras")),
            ("kdpm_2_a", "DPM2 a", Some("Uniform")),
            ("ddim", "DDIM", None),
            ("lcm", "LCM", None),
            ("heun", "Heun", Some("Uniform")),
            ("tcd", "tcd", None),
            ("dpmpp_3m_k", "dpmpp_3m_k", None),
        ];
        for (name, sampler, schedule) in cases {
            let p = parse_invokeai_metadata(&format!(r#"{{"scheduler": "{name}"}}"#)).unwrap();
            assert_eq!(p.sampler.as_deref(), Some(sampler), "{name}");
            assert_eq!(p.schedule.as_deref(), schedule, "{name}");
        }
    }

    #[test]
    fn invokeai_txt2img_ignores_strength_and_model_may_be_a_string() {
        let p = parse_invokeai_metadata(
            r#"{"generation_mode": "txt2img", "strength": 0.7, "model": "models/realistic.safetensors"}"#,
        )
        .unwrap();
        assert_eq!(p.denoising_strength, None);
        assert_eq!(p.model.as_deref(), Some("realistic"));
    }

    #[test]
    fn invokeai_wrong_types_and_errors() {
        let p = parse_invokeai_metadata(
            r#"{"positive_prompt": 5, "seed": -1, "steps": 1e10, "cfg_scale": "7", "width": null,
                "model": [1], "loras": {"a": 1}, "clip_skip": 4294967295, "scheduler": 3, "height": 640}"#,
        )
        .unwrap();
        assert_eq!(
            p,
            ForeignParams {
                source: ForeignSource::InvokeAi,
                height: Some(640),
                ..ForeignParams::default()
            }
        );
        assert_eq!(
            parse_invokeai_metadata("{}").unwrap_err().to_string(),
            "InvokeAI metadata states no generation parameters (prompt, seed, steps, size or model)"
        );
        assert!(
            parse_invokeai_metadata("nope")
                .unwrap_err()
                .to_string()
                .starts_with("InvokeAI metadata is not valid JSON: ")
        );
        assert_eq!(
            parse_invokeai_metadata("\"text\"").unwrap_err(),
            ForeignMetaError::NotAnObject {
                tool: ForeignSource::InvokeAi,
                found: "a string"
            }
        );
    }

    #[test]
    fn invokeai_graph_reads_metadata_node() {
        let graph = r#"{"id": "g", "nodes": {"noise": {"id": "noise", "type": "noise", "seed": 1},
            "meta": {"id": "meta", "type": "core_metadata", "is_intermediate": true, "steps": 25,
                     "positive_prompt": "p", "seed": 77}}, "edges": []}"#;
        let p = parse_invokeai_graph(graph).unwrap();
        assert_eq!(
            (p.steps, p.seed, p.prompt.as_deref()),
            (Some(25), Some(77), Some("p"))
        );
        assert_eq!(
            parse_invokeai_graph(r#"{"nodes": {}}"#).unwrap_err(),
            ForeignMetaError::NoMetadataNode
        );
    }

    const INVOKEAI_2: &str = r#"{
        "model": "stable diffusion", "model_id": "stable-diffusion-1.5",
        "model_hash": "cc6cb27103417325ff94f52b7a5d2dde45a7515b25c255d8e396c90014281516",
        "app_id": "invoke-ai/InvokeAI", "app_version": "2.3.5",
        "image": {"prompt": [{"prompt": "a fantasy castle [blurry] on a hill [low quality, jpeg]", "weight": 1.0}],
                  "steps": 50, "cfg_scale": 7.5, "threshold": 0, "perlin": 0, "height": 512, "width": 512,
                  "seed": 3735928559, "seamless": false, "hires_fix": false, "type": "txt2img",
                  "postprocessing": null, "sampler": "k_lms", "variations": []}
    }"#;

    #[test]
    fn invokeai_2x_sd_metadata() {
        let p = parse_invokeai_legacy_metadata(INVOKEAI_2).unwrap();
        assert_eq!(p.prompt.as_deref(), Some("a fantasy castle on a hill"));
        assert_eq!(p.negative_prompt.as_deref(), Some("blurry low quality, jpeg"));
        assert_eq!(p.sampler.as_deref(), Some("LMS"));
        assert_eq!(p.seed, Some(3_735_928_559));
        assert_eq!(p.model.as_deref(), Some("stable-diffusion-1.5"));
        assert_eq!((p.width, p.height, p.steps), (Some(512), Some(512), Some(50)));
        // The same object in an invokeai_metadata chunk is recognised.
        assert_eq!(parse_invokeai_metadata(INVOKEAI_2).unwrap(), p);

        let img2img = r#"{"model_id": "m", "images": [{"prompt": [{"prompt": "a", "weight": 0.5},
            {"prompt": "b", "weight": 0.5}], "type": "img2img", "strength_steps": 0.7, "sampler": "k_dpmpp_2_a"}]}"#;
        let p = parse_invokeai_legacy_metadata(img2img).unwrap();
        assert_eq!(p.prompt.as_deref(), Some("a:0.5 b:0.5"));
        assert_eq!(p.denoising_strength, Some(0.7));
        assert_eq!(p.sampler.as_deref(), Some("DPM++ 2S a"));
        assert!(matches!(
            parse_invokeai_legacy_metadata(r#"{"image": 3}"#).unwrap_err(),
            ForeignMetaError::NoParameters { .. }
        ));
    }

    #[test]
    fn legacy_negative_split() {
        assert_eq!(split_legacy_negative("plain"), ("plain".into(), None));
        assert_eq!(
            split_legacy_negative("a [b\nc] d [e]"),
            ("a [b\nc] d".into(), Some("e".into()))
        );
        assert_eq!(split_legacy_negative("unclosed [x"), ("unclosed [x".into(), None));
        assert_eq!(split_legacy_negative("é[ü]ö"), ("é ö".into(), Some("ü".into())));
    }

    fn chunks(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn text_chunks_pick_the_parser() {
        assert!(parse_text_chunks(&chunks(&[("parameters", "a cat\nSteps: 20")])).is_none());
        assert!(parse_text_chunks(&[]).is_none());

        let p = parse_text_chunks(&chunks(&[
            ("prompt", DEFAULT_GRAPH),
            ("workflow", DEFAULT_WORKFLOW),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(p.source, ForeignSource::ComfyUi);
        assert_eq!((p.width, p.height), (Some(512), Some(512)), "prompt chunk wins");

        let p = parse_text_chunks(&chunks(&[("prompt", "{}"), ("workflow", DEFAULT_WORKFLOW)]))
            .unwrap()
            .unwrap();
        assert_eq!(p.height, Some(768), "workflow when prompt fails");

        let err = parse_text_chunks(&chunks(&[("prompt", "a plain text prompt")]))
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, ForeignMetaError::InvalidJson { .. }));

        let p = parse_text_chunks(&chunks(&[
            ("invokeai_metadata", INVOKEAI_3),
            ("invokeai_graph", "{}"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(p.source, ForeignSource::InvokeAi);
        assert_eq!(p.steps, Some(30));

        let p = parse_text_chunks(&chunks(&[("Dream", "\"x\" -s 50"), ("sd-metadata", INVOKEAI_2)]))
            .unwrap()
            .unwrap();
        assert_eq!(p.sampler.as_deref(), Some("LMS"));

        let graph = r#"{"nodes": [{"type": "metadata_accumulator", "steps": 12}]}"#;
        let p = parse_text_chunks(&chunks(&[("invokeai_metadata", "{}"), ("invokeai_graph", graph)]))
            .unwrap()
            .unwrap();
        assert_eq!(p.steps, Some(12), "graph when metadata states nothing");
    }
}
