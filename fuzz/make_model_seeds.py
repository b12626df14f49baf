#!/usr/bin/env python3
"""Writes the seed corpus of the model-file, config, prompt and infotext fuzz targets: small
safetensors files built from the format's specification with the key layouts Easel reads (LDM,
diffusers, kohya LoRA / LoHa / LoKr, textual inversion), the repository's tiny fixture configs, and
prompts and infotexts that use every piece of syntax. Run from the fuzz folder:
python3 make_model_seeds.py"""
import json
import struct
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"

SIZES = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "U8": 1}


def safetensors(tensors, metadata=None):
    """`tensors`: name -> (dtype, shape). Data is a simple ramp so every value is finite."""
    header, blobs, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, (dtype, shape) in tensors.items():
        count = 1
        for d in shape:
            count *= d
        if dtype == "F32":
            data = struct.pack(f"<{count}f", *[(i % 7 - 3) * 0.01 for i in range(count)])
        elif dtype == "F16":
            data = struct.pack(f"<{count}e", *[(i % 7 - 3) * 0.01 for i in range(count)])
        else:
            data = bytes(count * SIZES[dtype])
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def write(target, name, data):
    """Seeds whose name starts with `refused-` must be refused by the reader; the others read."""
    folder = Path(__file__).resolve().parent / "corpus" / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def main():
    ldm = "model.diffusion_model."
    write("safetensors_header", "ldm-unet", safetensors({
        ldm + "input_blocks.0.0.weight": ("F16", (4, 4, 3, 3)),
        ldm + "input_blocks.0.0.bias": ("F16", (4,)),
        "first_stage_model.decoder.conv_out.weight": ("F16", (3, 4, 3, 3)),
        "cond_stage_model.transformer.text_model.embeddings.position_ids": ("I64", (1, 4)),
    }))
    write("safetensors_header", "inpainting", safetensors({ldm + "input_blocks.0.0.weight": ("F32", (4, 9, 3, 3))}))
    write("safetensors_header", "vae", safetensors({
        "encoder.conv_in.weight": ("F32", (4, 3, 3, 3)),
        "decoder.conv_out.weight": ("F32", (3, 4, 3, 3)),
        "quant_conv.weight": ("F32", (8, 8, 1, 1)),
    }, {"format": "pt"}))
    write("safetensors_header", "controlnet", safetensors({
        "control_model.input_hint_block.0.weight": ("F16", (4, 3, 3, 3)),
        "control_model.zero_convs.0.0.weight": ("F16", (4, 4, 1, 1)),
        "control_model.middle_block_out.0.weight": ("F16", (4, 4, 1, 1)),
    }))
    write("safetensors_header", "empty", safetensors({}))
    write("safetensors_header", "bf16", safetensors({"x": ("BF16", (2, 2)), "y": ("U8", (3,))}))

    lora = "lora_unet_down_blocks_0_attentions_0_proj_in"
    write("lora", "lora", safetensors({
        lora + ".lora_down.weight": ("F16", (2, 8)),
        lora + ".lora_up.weight": ("F16", (8, 2)),
        lora + ".alpha": ("F16", ()),
        "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": ("F32", (2, 4)),
        "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight": ("F32", (8, 2)),
    }, {"ss_network_module": "networks.lora", "ss_base_model_version": "sd_v1"}))
    write("lora", "locon", safetensors({
        lora + ".lora_down.weight": ("F32", (2, 4, 3, 3)),
        lora + ".lora_up.weight": ("F32", (8, 2, 1, 1)),
    }))
    write("lora", "loha", safetensors({
        lora + ".hada_w1_a": ("F32", (8, 2)),
        lora + ".hada_w1_b": ("F32", (2, 4)),
        lora + ".hada_w2_a": ("F32", (8, 2)),
        lora + ".hada_w2_b": ("F32", (2, 4)),
        lora + ".alpha": ("F32", ()),
    }))
    write("lora", "lokr", safetensors({
        lora + ".lokr_w1": ("F32", (2, 2)),
        lora + ".lokr_w2_a": ("F32", (4, 1)),
        lora + ".lokr_w2_b": ("F32", (1, 2)),
    }))
    write("lora", "peft", safetensors({
        "unet.down_blocks.0.attentions.0.proj_in.lora_A.weight": ("F32", (2, 4)),
        "unet.down_blocks.0.attentions.0.proj_in.lora_B.weight": ("F32", (8, 2)),
    }))
    # Full-weight differences (`.diff`) are not a form Easel reads: the reader names the file and refuses it.
    write("lora", "refused-diff", safetensors({lora + ".diff": ("F32", (8, 4)), lora + ".diff_b": ("F32", (8,))}))
    write("lora", "fixture", (FIXTURES / "models" / "loras" / "tiny_partial.safetensors").read_bytes())

    write("embedding", "a1111", safetensors({"emb_params": ("F32", (2, 32))}, {"name": "tiny_neg"}))
    write("embedding", "single", safetensors({"*": ("F16", (32,))}))
    write("embedding", "refused-sdxl", safetensors({"clip_l": ("F32", (1, 32)), "clip_g": ("F32", (1, 64))}))
    write("embedding", "fixture", (FIXTURES / "models" / "embeddings" / "tiny_star.safetensors").read_bytes())

    models = FIXTURES / "models"
    # The fixtures name a CLIP folder beside them; the seeds use the stock CLIP instead.
    def yaml(name):
        return b"\x00" + (models / name).read_bytes().replace(b"version: tiny-clip", b"version: openai/clip-vit-large-patch14")
    write("model_config", "yaml", yaml("tiny-sd15.yaml"))
    write("model_config", "yaml-inpainting", yaml("tiny-sd15-inpainting.yaml"))
    write("model_config", "yaml-aliases", b"\x00" + b"a: &x [1, 2]\nb: *x\nmodel:\n  params:\n    unet_config:\n      params: {model_channels: 32, num_heads: 2}\n")
    write("model_config", "clip", b"\x01" + (models / "tiny-clip" / "config.json").read_bytes())
    diffusers = models / "tiny-sd15-diffusers"
    parts = [diffusers / "unet" / "config.json", diffusers / "vae" / "config.json",
             diffusers / "scheduler" / "scheduler_config.json", diffusers / "text_encoder" / "config.json"]
    write("model_config", "diffusers", b"\x02" + b"\xff".join(p.read_bytes() for p in parts))

    prompts = {
        "attention": "a (red:1.2) barn, ((sunset)), [fog], \\(literal\\), (a (nested [mix]):0.8) BREAK night",
        "editing": "a [cat:dog:0.4] on a [sofa|bed] [in the rain::5] [[x:y:2]:z:0.7]",
        "tags": "portrait <lora:tiny_style:0.8> <lora:other:1:0.5> <hypernet:h:1> tiny_neg, text",
        "long": ", ".join(f"word{i} (detail{i}:1.1)" for i in range(60)),
        "unicode": "一只猫 (可爱:1.3), [白天:夜晚:0.5] émigré ✨",
    }
    for i, (name, text) in enumerate(prompts.items()):
        write("prompt", name, bytes([20 + i]) + text.encode())

    infotexts = {
        "a1111": "a red barn, (sunset:1.2)\nNegative prompt: blurry\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, "
                 "CFG scale: 7, Seed: 123, Size: 512x768, Model hash: 6ce0161689, Model: v1-5, Denoising strength: 0.6, "
                 "Lora hashes: \"tiny_style: 0123456789ab\", Version: v1.10.1",
        "controlnet": "cat\nSteps: 4, Sampler: Euler a, CFG scale: 5, Seed: 1, Size: 64x64, "
                      "ControlNet 0: \"Module: canny, Model: tiny-control [deadbeef], Weight: 1.0, Resize Mode: Crop and Resize, "
                      "Processor Res: 512, Threshold A: 100.0, Threshold B: 200.0, Guidance Start: 0.0, Guidance End: 1.0, "
                      "Pixel Perfect: False, Control Mode: Balanced\", ADetailer model: face_yolov8n.pt, ADetailer confidence: 0.3",
        "quotes": "x\nSteps: 1, Sampler: Euler, Seed: 5, Size: 8x8, Template: \"a, \\\"b\\\": c\", Hires upscale: 2",
        "bare": "just a prompt with no parameters",
    }
    for name, text in infotexts.items():
        write("infotext", name, text.encode())


if __name__ == "__main__":
    main()
