#!/usr/bin/env python3
"""Convert MediaPipe's TFLite detectors into the safetensors files Easel ships in assets/detect/.

Reads the models out of the installed `mediapipe==0.10.14` wheel (Apache-2.0), and writes for each
one `assets/detect/<model>.safetensors`:

* every constant tensor an operator reads (kernels, biases, PReLU slopes, ...), named `t<index>`
  after its TFLite tensor index, in the dtype the file stores (float16 stays float16), with conv
  kernels moved to candle's layout: CONV_2D `[O, KH, KW, I]` -> `[O, I, KH, KW]`, DEPTHWISE_CONV_2D
  `[1, KH, KW, C]` -> `[C, 1, KH, KW]`;
* the op graph as JSON in the safetensors metadata under `graph`: the input and output tensor
  indices, and one entry per compute operator (type, input/output indices, output shape in NHWC,
  padding, strides, fused activation, ...). DEQUANTIZE (fp16 -> fp32) and DENSIFY (sparse -> dense)
  are folded away: their outputs become constants. The Rust interpreter (src/detect/graph.rs) runs
  this list in order, so the network is the file's network, operator by operator.

Sparse weights (face_detection_full_range_sparse.tflite) are densified by running TFLite's own
DENSIFY kernel (ai-edge-litert's interpreter with all tensors preserved), not by a re-implementation.

Also writes assets/detect/SOURCE.md (wheel version, file names, sha256 of each .tflite) and copies
MediaPipe's LICENSE next to the weights.

Usage:
    python -m venv /work/venv-mp
    /work/venv-mp/bin/pip install mediapipe==0.10.14 tflite ai-edge-litert
    /work/venv-mp/bin/python scripts/convert_mediapipe.py [--out assets/detect] [--graphs]

`--graphs` also prints each model's operator list (what the JSON records) for reading.
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np

import mediapipe
import tflite
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from safetensors.numpy import save_file

MODELS = [
    "face_detection/face_detection_short_range.tflite",
    "face_detection/face_detection_full_range_sparse.tflite",
    "selfie_segmentation/selfie_segmentation.tflite",
    "palm_detection/palm_detection_lite.tflite",
    "hand_landmark/hand_landmark_lite.tflite",
    "palm_detection/palm_detection_full.tflite",
    "hand_landmark/hand_landmark_full.tflite",
]

OP_NAMES = {v: k for k, v in tflite.BuiltinOperator.__dict__.items() if not k.startswith("_")}
ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}
PADDINGS = {0: "SAME", 1: "VALID"}
FLOAT_TYPES = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.FLOAT16: np.float16}


def options(op, cls):
    table = op.BuiltinOptions()
    o = cls()
    o.Init(table.Bytes, table.Pos)
    return o


def convert(path, out_dir, show):
    buf = open(path, "rb").read()
    model = tflite.Model.GetRootAsModel(buf, 0)
    if model.SubgraphsLength() != 1:
        raise SystemExit(f"{path}: expected one subgraph")
    g = model.Subgraphs(0)

    def shape(i):
        return [int(d) for d in g.Tensors(i).ShapeAsNumpy()] if g.Tensors(i).ShapeLength() else []

    def raw(i):
        t = g.Tensors(i)
        data = model.Buffers(t.Buffer()).DataAsNumpy()
        if isinstance(data, int) or data.size == 0:
            return None
        dtype = FLOAT_TYPES.get(t.Type(), np.int32 if t.Type() == tflite.TensorType.INT32 else None)
        if dtype is None:
            raise SystemExit(f"{path}: tensor {i} has unsupported type {t.Type()}")
        return np.frombuffer(data.tobytes(), dtype=dtype).reshape(shape(i))

    # Sparse tensors: TFLite's DENSIFY kernel, run once (the input values do not matter).
    densified = {}
    ops = [g.Operators(k) for k in range(g.OperatorsLength())]

    def opname(op):
        code = model.OperatorCodes(op.OpcodeIndex())
        c = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if c == tflite.BuiltinOperator.CUSTOM:
            return "CUSTOM:" + code.CustomCode().decode()
        return OP_NAMES[c]

    if any(opname(op) == "DENSIFY" for op in ops):
        it = Interpreter(
            model_path=path,
            experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        it.allocate_tensors()
        inp = it.get_input_details()[0]
        it.set_tensor(inp["index"], np.zeros(inp["shape"], np.float32))
        it.invoke()
        for op in ops:
            if opname(op) == "DENSIFY":
                o = int(op.Outputs(0))
                densified[o] = it.get_tensor(o).copy()

    consts = {}  # tensor index -> numpy array (after folding DEQUANTIZE/DENSIFY)

    def const(i):
        if i in consts:
            return consts[i]
        if i in densified:
            return densified[i]
        return raw(i)

    tensors = {}
    graph_ops = []

    def keep(i, arr):
        tensors[f"t{i}"] = np.ascontiguousarray(arr)
        return i

    for op in ops:
        name = opname(op)
        ins = [int(i) for i in op.InputsAsNumpy()]
        outs = [int(i) for i in op.OutputsAsNumpy()]
        if name == "DEQUANTIZE":
            # fp16 weights stay fp16 in the asset; the runtime widens them to f32 as TFLite does.
            consts[outs[0]] = const(ins[0])
            continue
        if name == "DENSIFY":
            consts[outs[0]] = densified[outs[0]]
            continue
        entry = {"op": name, "in": ins, "out": outs[0], "shape": shape(outs[0])}
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            cls = tflite.Conv2DOptions if name == "CONV_2D" else tflite.DepthwiseConv2DOptions
            o = options(op, cls)
            if o.DilationHFactor() != 1 or o.DilationWFactor() != 1:
                raise SystemExit(f"{path}: dilated convolutions are not supported")
            w = const(ins[1])
            if name == "CONV_2D":
                w = w.transpose(0, 3, 1, 2)
            else:
                if o.DepthMultiplier() != 1 and w.shape[3] != shape(ins[0])[3]:
                    raise SystemExit(f"{path}: depth multiplier {o.DepthMultiplier()} unsupported")
                w = w.transpose(3, 0, 1, 2)
            keep(ins[1], w)
            if len(ins) > 2 and ins[2] >= 0:
                keep(ins[2], const(ins[2]))
            entry.update(
                stride=[o.StrideH(), o.StrideW()],
                padding=PADDINGS[o.Padding()],
                act=ACTIVATIONS[o.FusedActivationFunction()],
            )
        elif name in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            o = options(op, tflite.Pool2DOptions)
            entry.update(
                stride=[o.StrideH(), o.StrideW()],
                kernel=[o.FilterHeight(), o.FilterWidth()],
                padding=PADDINGS[o.Padding()],
                act=ACTIVATIONS[o.FusedActivationFunction()],
            )
        elif name in ("ADD", "MUL"):
            cls = tflite.AddOptions if name == "ADD" else tflite.MulOptions
            entry["act"] = ACTIVATIONS[options(op, cls).FusedActivationFunction()]
            for i in ins:
                c = const(i)
                if c is not None:
                    keep(i, c)
        elif name == "PAD":
            entry["pads"] = const(ins[1]).tolist()
            entry["in"] = ins[:1]
        elif name == "RESHAPE":
            entry["in"] = ins[:1]
        elif name == "CONCATENATION":
            o = options(op, tflite.ConcatenationOptions)
            entry.update(axis=o.Axis(), act=ACTIVATIONS[o.FusedActivationFunction()])
        elif name == "RESIZE_BILINEAR":
            o = options(op, tflite.ResizeBilinearOptions)
            entry.update(align_corners=bool(o.AlignCorners()), half_pixel_centers=bool(o.HalfPixelCenters()))
            entry["in"] = ins[:1]
        elif name == "DEPTH_TO_SPACE":
            entry["block"] = options(op, tflite.DepthToSpaceOptions).BlockSize()
        elif name == "PRELU":
            keep(ins[1], const(ins[1]).reshape(-1))
        elif name == "MEAN":
            o = options(op, tflite.ReducerOptions)
            entry.update(axes=[int(a) for a in const(ins[1]).reshape(-1)], keep_dims=bool(o.KeepDims()))
            entry["in"] = ins[:1]
        elif name == "FULLY_CONNECTED":
            o = options(op, tflite.FullyConnectedOptions)
            if o.WeightsFormat() != 0 or o.KeepNumDims():
                raise SystemExit(f"{path}: only plain FULLY_CONNECTED is supported")
            keep(ins[1], const(ins[1]))  # [O, I], as candle's linear layers store it
            if len(ins) > 2 and ins[2] >= 0:
                keep(ins[2], const(ins[2]))
            entry["act"] = ACTIVATIONS[o.FusedActivationFunction()]
        elif name in ("RELU", "LOGISTIC", "HARD_SWISH"):
            pass
        elif name == "CUSTOM:Convolution2DTransposeBias":
            # Custom options: TfLiteTransposeConvParams {padding, stride_width, stride_height}.
            co = op.CustomOptionsAsNumpy().tobytes()
            padding, stride_w, stride_h = np.frombuffer(co[:12], np.int32)
            w = const(ins[1])  # [O, KH, KW, I]
            keep(ins[1], w.transpose(3, 0, 1, 2))  # candle conv_transpose2d: [I, O, KH, KW]
            keep(ins[2], const(ins[2]))
            entry.update(stride=[int(stride_h), int(stride_w)], padding=PADDINGS[int(padding)])
        else:
            raise SystemExit(f"{path}: operator {name} is not supported by the converter")
        graph_ops.append(entry)

    graph = {
        "source": os.path.basename(path),
        "input": int(g.Inputs(0)),
        "input_shape": shape(int(g.Inputs(0))),
        "outputs": [int(g.Outputs(i)) for i in range(g.OutputsLength())],
        "ops": graph_ops,
    }
    listing = [f"# {graph['source']}: input {graph['input_shape']}, outputs {graph['outputs']}"]
    for e in graph_ops:
        extra = {k: v for k, v in e.items() if k not in ("op", "in", "out", "shape")}
        listing.append(f"  {e['op']:<22} {e['in']} -> {e['out']} {e['shape']} {extra}")
    if show:
        print("\n".join(listing))
    stem = os.path.splitext(os.path.basename(path))[0]
    out = os.path.join(out_dir, stem + ".safetensors")
    save_file(tensors, out, metadata={"graph": json.dumps(graph, separators=(",", ":"))})
    return out, listing


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "assets", "detect"))
    ap.add_argument("--graphs", action="store_true", help="print each operator list")
    ap.add_argument("--models", nargs="*", default=MODELS)
    args = ap.parse_args()
    if mediapipe.__version__ != "0.10.14":
        sys.exit(f"expected mediapipe 0.10.14, found {mediapipe.__version__}")
    os.makedirs(args.out, exist_ok=True)
    root = os.path.join(os.path.dirname(mediapipe.__file__), "modules")
    lines = [
        "# Source of the detector weights",
        "",
        "Converted by `scripts/convert_mediapipe.py` from the TFLite models inside the PyPI wheel",
        f"`mediapipe=={mediapipe.__version__}` (Apache License 2.0, Copyright The MediaPipe Authors;",
        "see LICENSE in this folder). Weights are unchanged (float16 as stored); DEQUANTIZE and DENSIFY",
        "operators are folded into constants and conv kernels are transposed to candle's layout.",
        "",
        "| asset | TFLite file in the wheel | sha256 of the .tflite |",
        "|---|---|---|",
    ]
    listings = ["Operator lists of the converted models (written by scripts/convert_mediapipe.py).", ""]
    for rel in args.models:
        path = os.path.join(root, rel)
        digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
        out, listing = convert(path, args.out, args.graphs)
        listings += listing + [""]
        print(f"{out}: {os.path.getsize(out)} bytes")
        lines.append(f"| {os.path.basename(out)} | mediapipe/modules/{rel} | `{digest}` |")
    with open(os.path.join(args.out, "SOURCE.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(args.out, "graphs.txt"), "w") as f:
        f.write("\n".join(listings))
    lic = os.path.join(os.path.dirname(mediapipe.__file__), "..", "mediapipe-0.10.14.dist-info", "LICENSE")
    with open(lic) as src, open(os.path.join(args.out, "LICENSE"), "w") as dst:
        dst.write(src.read())


if __name__ == "__main__":
    main()
