//! A tiny interpreter for the TFLite operator lists that `scripts/convert_mediapipe.py` stores
//! with MediaPipe's weights: it runs the file's ops in order on candle tensors.
//!
//! Layout: a rank-4 tensor is held as NCHW (TFLite's NHWC shapes and axes are mapped on the way);
//! other ranks keep TFLite's layout. Kernels were moved to candle's layout by the converter.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use super::DetectError;

/// One operator of the converted graph (see `assets/detect/graphs.txt` for the lists).
#[derive(Debug, Deserialize)]
struct Node {
    op: String,
    #[serde(rename = "in")]
    inputs: Vec<i64>,
    out: i64,
    /// Output shape in TFLite's NHWC order.
    shape: Vec<usize>,
    #[serde(default)]
    stride: Vec<usize>,
    #[serde(default)]
    kernel: Vec<usize>,
    #[serde(default)]
    padding: String,
    #[serde(default)]
    act: String,
    #[serde(default)]
    pads: Vec<Vec<usize>>,
    #[serde(default)]
    axis: i64,
    #[serde(default)]
    align_corners: bool,
    #[serde(default)]
    half_pixel_centers: bool,
    #[serde(default)]
    block: usize,
    /// MEAN: the reduced axes (NHWC) and whether they stay as size-1 dimensions.
    #[serde(default)]
    axes: Vec<i64>,
    #[serde(default)]
    keep_dims: bool,
}

#[derive(Debug, Deserialize)]
struct GraphJson {
    source: String,
    input: i64,
    input_shape: Vec<usize>,
    outputs: Vec<i64>,
    ops: Vec<Node>,
}

/// A converted MediaPipe network with its weights, ready to run.
pub struct Graph {
    json: GraphJson,
    consts: HashMap<i64, Tensor>,
    device: Device,
}

fn bad(source: &str, why: impl std::fmt::Display) -> DetectError {
    DetectError::Model(format!("{source}: {why}"))
}

impl Graph {
    /// Loads a safetensors asset written by `scripts/convert_mediapipe.py`.
    pub fn from_safetensors(bytes: &[u8], name: &str, device: &Device) -> Result<Self, DetectError> {
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| bad(name, format!("not a safetensors file ({e})")))?;
        let graph = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("graph"))
            .ok_or_else(|| bad(name, "no operator graph in the metadata"))?;
        let json: GraphJson =
            serde_json::from_str(graph).map_err(|e| bad(name, format!("bad operator graph ({e})")))?;
        let mut consts = HashMap::new();
        for (key, tensor) in candle_core::safetensors::load_buffer(bytes, device)? {
            let id = key
                .strip_prefix('t')
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| bad(name, format!("unexpected tensor name '{key}'")))?;
            consts.insert(id, tensor.to_dtype(DType::F32)?);
        }
        Ok(Self {
            json,
            consts,
            device: device.clone(),
        })
    }

    /// The model's name (the TFLite file it was converted from).
    pub fn source(&self) -> &str {
        &self.json.source
    }

    /// The input size (height, width) in pixels.
    pub fn input_hw(&self) -> (usize, usize) {
        let s = &self.json.input_shape;
        (s.get(1).copied().unwrap_or(0), s.get(2).copied().unwrap_or(0))
    }

    /// Runs the network on one NHWC image given as `[h, w, c]` f32 values; returns the graph's
    /// outputs in TFLite's layout (NHWC for rank 4), in the file's output order.
    pub fn run(&self, input_hwc: &[f32]) -> Result<Vec<Tensor>, DetectError> {
        let values = self.run_values(input_hwc, None)?;
        self.json
            .outputs
            .iter()
            .map(|&id| self.nhwc_value(&values, id))
            .collect()
    }

    /// Runs the network up to the operator producing tensor `id` and returns that tensor in
    /// TFLite's layout (for parity checks of a model cut before an op a reference cannot run).
    pub fn run_to(&self, input_hwc: &[f32], id: i64) -> Result<Tensor, DetectError> {
        let values = self.run_values(input_hwc, Some(id))?;
        self.nhwc_value(&values, id)
    }

    fn nhwc_value(&self, values: &HashMap<i64, Tensor>, id: i64) -> Result<Tensor, DetectError> {
        let t = values
            .get(&id)
            .ok_or_else(|| bad(&self.json.source, format!("tensor {id} was not computed")))?;
        Ok(if t.rank() == 4 {
            t.permute((0, 2, 3, 1))?.contiguous()?
        } else {
            t.clone()
        })
    }

    fn run_values(&self, input_hwc: &[f32], stop: Option<i64>) -> Result<HashMap<i64, Tensor>, DetectError> {
        let s = &self.json.input_shape;
        let (h, w, c) = match s.as_slice() {
            [1, h, w, c] => (*h, *w, *c),
            _ => return Err(bad(&self.json.source, format!("unexpected input shape {s:?}"))),
        };
        let x = Tensor::from_slice(input_hwc, (1, h, w, c), &self.device)?.permute((0, 3, 1, 2))?;
        let mut values: HashMap<i64, Tensor> = HashMap::new();
        values.insert(self.json.input, x);
        for op in &self.json.ops {
            let y = self
                .step(op, &values)
                .map_err(|e| bad(&self.json.source, format!("{} -> {}: {e}", op.op, op.out)))?;
            values.insert(op.out, y);
            if stop == Some(op.out) {
                break;
            }
        }
        Ok(values)
    }

    fn get<'a>(&'a self, values: &'a HashMap<i64, Tensor>, id: i64) -> candle_core::Result<&'a Tensor> {
        values
            .get(&id)
            .or_else(|| self.consts.get(&id))
            .ok_or_else(|| candle_core::Error::Msg(format!("tensor {id} is missing")))
    }

    /// An elementwise operand: a constant is moved from NHWC to broadcast against NCHW.
    fn operand(&self, values: &HashMap<i64, Tensor>, id: i64, other: i64) -> candle_core::Result<Tensor> {
        let t = self.get(values, id)?;
        if values.contains_key(&id) {
            return Ok(t.clone());
        }
        nchw_operand(t, self.get(values, other)?)
    }

    fn step(&self, op: &Node, values: &HashMap<i64, Tensor>) -> candle_core::Result<Tensor> {
        let x = self.get(values, op.inputs[0])?;
        let y = match op.op.as_str() {
            "CONV_2D" | "DEPTHWISE_CONV_2D" => {
                let w = self.get(values, op.inputs[1])?;
                let (_, _, kh, kw) = w.dims4()?;
                let stride = single_stride(op)?;
                let x = pad_same(x, op, kh, kw, 0.0)?;
                let groups = if op.op == "CONV_2D" { 1 } else { x.dim(1)? };
                let mut y = x.conv2d(w, 0, stride, 1, groups)?;
                if let Some(&b) = op.inputs.get(2).filter(|&&b| b >= 0) {
                    let b = self.get(values, b)?;
                    y = y.broadcast_add(&b.reshape((1, (), 1, 1))?)?;
                }
                y
            }
            "MAX_POOL_2D" | "AVERAGE_POOL_2D" => {
                let (kh, kw) = (op.kernel[0], op.kernel[1]);
                let stride = (op.stride[0], op.stride[1]);
                if op.op == "MAX_POOL_2D" {
                    pad_same(x, op, kh, kw, f32::NEG_INFINITY)?.max_pool2d_with_stride((kh, kw), stride)?
                } else {
                    // TFLite's average pool divides by the number of pixels inside the image.
                    let sum = pad_same(x, op, kh, kw, 0.0)?.avg_pool2d_with_stride((kh, kw), stride)?;
                    let ones = Tensor::ones((1, 1, x.dim(2)?, x.dim(3)?), DType::F32, x.device())?;
                    let count = pad_same(&ones, op, kh, kw, 0.0)?.avg_pool2d_with_stride((kh, kw), stride)?;
                    sum.broadcast_div(&count)?
                }
            }
            "ADD" | "MUL" => {
                let a = self.operand(values, op.inputs[0], op.inputs[1])?;
                let b = self.operand(values, op.inputs[1], op.inputs[0])?;
                if op.op == "ADD" {
                    a.broadcast_add(&b)?
                } else {
                    a.broadcast_mul(&b)?
                }
            }
            "PAD" => {
                let mut y = x.clone();
                for (axis, p) in op.pads.iter().enumerate() {
                    let dim = if x.rank() == 4 { [0, 2, 3, 1][axis] } else { axis };
                    if p.len() == 2 && (p[0] > 0 || p[1] > 0) {
                        y = y.pad_with_zeros(dim, p[0], p[1])?;
                    }
                }
                y
            }
            "RESHAPE" => {
                let nhwc = if x.rank() == 4 {
                    x.permute((0, 2, 3, 1))?.contiguous()?
                } else {
                    x.clone()
                };
                let y = nhwc.reshape(op.shape.as_slice())?;
                if y.rank() == 4 {
                    y.permute((0, 3, 1, 2))?
                } else {
                    y
                }
            }
            "CONCATENATION" => {
                let parts = op
                    .inputs
                    .iter()
                    .map(|&i| self.get(values, i))
                    .collect::<candle_core::Result<Vec<_>>>()?;
                let rank = parts[0].rank() as i64;
                let axis = if op.axis < 0 { op.axis + rank } else { op.axis } as usize;
                let dim = if rank == 4 { [0, 2, 3, 1][axis] } else { axis };
                Tensor::cat(&parts, dim)?
            }
            "RESIZE_BILINEAR" => {
                if !op.half_pixel_centers || op.align_corners {
                    candle_core::bail!("only half-pixel-centre resizing is supported");
                }
                x.upsample_bilinear2d(op.shape[1], op.shape[2], false)?
            }
            "DEPTH_TO_SPACE" => {
                let (n, c, h, w) = x.dims4()?;
                let b = op.block;
                let co = c / (b * b);
                x.reshape((n, b, b, co, h, w))?
                    .permute((0, 3, 4, 1, 5, 2))?
                    .reshape((n, co, h * b, w * b))?
            }
            "PRELU" => {
                let alpha = self.get(values, op.inputs[1])?.reshape((1, (), 1, 1))?;
                x.relu()?.add(&x.minimum(0f32)?.broadcast_mul(&alpha)?)?
            }
            "MEAN" => {
                let rank = x.rank();
                let mut dims: Vec<usize> = op
                    .axes
                    .iter()
                    .map(|&a| {
                        let a = if a < 0 { a + rank as i64 } else { a } as usize;
                        if rank == 4 { [0, 2, 3, 1][a] } else { a }
                    })
                    .collect();
                // NCHW without the spatial axes is NHWC without them; other drops would not be.
                if rank == 4 && !op.keep_dims && dims.iter().any(|&d| d < 2) {
                    candle_core::bail!("MEAN over axes {:?} is not supported", op.axes);
                }
                dims.sort_unstable();
                let mut y = x.clone();
                for &d in dims.iter().rev() {
                    y = if op.keep_dims {
                        y.mean_keepdim(d)?
                    } else {
                        y.mean(d)?
                    };
                }
                y
            }
            "FULLY_CONNECTED" => {
                if x.rank() != 2 {
                    candle_core::bail!("FULLY_CONNECTED on a rank-{} input", x.rank());
                }
                let w = self.get(values, op.inputs[1])?;
                let mut y = x.matmul(&w.t()?)?;
                if let Some(&b) = op.inputs.get(2).filter(|&&b| b >= 0) {
                    y = y.broadcast_add(self.get(values, b)?)?;
                }
                y
            }
            "RELU" => x.relu()?,
            "LOGISTIC" => candle_nn::ops::sigmoid(x)?,
            "HARD_SWISH" => x.mul(&((x + 3.0)?.clamp(0f32, 6f32)? / 6.0)?)?,
            "CUSTOM:Convolution2DTransposeBias" => {
                let w = self.get(values, op.inputs[1])?;
                let b = self.get(values, op.inputs[2])?;
                let stride = single_stride(op)?;
                if op.padding != "SAME" && op.padding != "VALID" {
                    candle_core::bail!("unknown padding {}", op.padding);
                }
                let full = x.conv_transpose2d(w, 0, 0, stride, 1)?;
                // TFLite transposed conv: output is `shape`; the extra border of the full result
                // is cropped from the start by (full - out) / 2 (SAME) or nothing (VALID).
                let (oh, ow) = (op.shape[1], op.shape[2]);
                let (fh, fw) = (full.dim(2)?, full.dim(3)?);
                let (top, left) = if op.padding == "SAME" {
                    ((fh - oh) / 2, (fw - ow) / 2)
                } else {
                    (0, 0)
                };
                full.narrow(2, top, oh)?
                    .narrow(3, left, ow)?
                    .broadcast_add(&b.reshape((1, (), 1, 1))?)?
            }
            other => candle_core::bail!("operator {other} is not supported"),
        };
        activation(&y, &op.act)
    }
}

fn single_stride(op: &Node) -> candle_core::Result<usize> {
    match op.stride.as_slice() {
        [h, w] if h == w => Ok(*h),
        s => candle_core::bail!("unsupported strides {s:?}"),
    }
}

/// TFLite's SAME padding (extra pixel at the bottom/right) or none for VALID; `value` fills.
fn pad_same(x: &Tensor, op: &Node, kh: usize, kw: usize, value: f32) -> candle_core::Result<Tensor> {
    if op.padding != "SAME" {
        return Ok(x.clone());
    }
    let (sh, sw) = (op.stride[0], op.stride[1]);
    let mut y = x.clone();
    for (dim, k, s) in [(2, kh, sh), (3, kw, sw)] {
        let size = x.dim(dim)?;
        let out = size.div_ceil(s);
        let total = ((out - 1) * s + k).saturating_sub(size);
        let (before, after) = (total / 2, total - total / 2);
        if total > 0 {
            y = if value == 0.0 {
                y.pad_with_zeros(dim, before, after)?
            } else {
                let mut shape = y.dims().to_vec();
                shape[dim] = before;
                let a = Tensor::full(value, shape.as_slice(), y.device())?;
                shape[dim] = after;
                let b = Tensor::full(value, shape.as_slice(), y.device())?;
                Tensor::cat(&[&a, &y, &b], dim)?
            };
        }
    }
    Ok(y)
}

/// A constant operand of an elementwise op, broadcast against a rank-4 NCHW activation: TFLite
/// stores it in NHWC (e.g. `[1, 1, 1, C]` or `[C]`), so its channels move to axis 1.
fn nchw_operand(t: &Tensor, other: &Tensor) -> candle_core::Result<Tensor> {
    if other.rank() != 4 {
        return Ok(t.clone());
    }
    match t.rank() {
        4 => t.permute((0, 3, 1, 2)),
        0 => Ok(t.clone()),
        _ => t.flatten_all()?.reshape((1, (), 1, 1)),
    }
}

fn activation(y: &Tensor, act: &str) -> candle_core::Result<Tensor> {
    match act {
        "" | "NONE" => Ok(y.clone()),
        "RELU" => y.relu(),
        "RELU6" => y.clamp(0f32, 6f32),
        "RELU_N1_TO_1" => y.clamp(-1f32, 1f32),
        other => candle_core::bail!("unknown activation {other}"),
    }
}
