#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets: small files built byte by byte from the PNG, JPEG,
WebP, EXIF and XMP specifications and the generators' formats (no other project's images).
Run from the fuzz folder: python3 make_seeds.py"""
import gzip
import json
import struct
import zlib
from pathlib import Path


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(chunks, width=2, height=2, color=2, pixels=None, after_idat=()):
    channels = {0: 1, 2: 3, 6: 4}[color]
    if pixels is None:
        pixels = bytes(width * height * channels)
    rows = b"".join(b"\0" + pixels[y * width * channels:(y + 1) * width * channels] for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0))
            + b"".join(chunk(k, d) for k, d in chunks) + chunk(b"IDAT", zlib.compress(rows))
            + b"".join(chunk(k, d) for k, d in after_idat) + chunk(b"IEND", b""))


def exif(comment, little=True):
    e = "<" if little else ">"
    head = (b"II*\0" if little else b"MM\0*") + struct.pack(e + "I", 8)
    ifd0 = struct.pack(e + "HHHII", 1, 0x8769, 4, 1, 26) + struct.pack(e + "I", 0)
    ifd = struct.pack(e + "HHHII", 1, 0x9286, 7, len(comment), 44) + struct.pack(e + "I", 0)
    return head + ifd0 + ifd + comment


def ifd0_ascii(tag, text):
    """A big-endian EXIF block whose IFD0 holds one ASCII tag, as Pillow writes ComfyUI's WebP."""
    value = text.encode() + b"\0"
    return b"MM\0*" + struct.pack(">IHHHII", 8, 1, tag, 2, len(value), 26) + struct.pack(">I", 0) + value


def unicode(text, little=True):
    return b"UNICODE\0" + text.encode("utf-16-le" if little else "utf-16-be")


def segment(marker, body):
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def riff(chunks):
    body = b"WEBP" + b"".join(k + struct.pack("<I", len(d)) + d + (b"\0" if len(d) % 2 else b"") for k, d in chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


A1111 = ("a lighthouse <lora:ink:0.7>\nNegative prompt: fog\nSteps: 20, Sampler: DPM++ 2M SDE, Schedule type: Karras, "
         "CFG scale: 7, Seed: 1, Size: 512x768, Model hash: 0123456789, Model: m, Lora hashes: \"ink: abc\", "
         "Civitai resources: [{\"type\":\"lora\",\"weight\":0.5,\"modelName\":\"x\"}], Version: f2.0")
COMFY = json.dumps({
    "3": {"class_type": "KSampler", "inputs": {"seed": ["10", 0], "steps": 20, "cfg": 7, "sampler_name": "euler_ancestral",
          "scheduler": "karras", "denoise": 1, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
          "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "a.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": ["11", 0], "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "bad", "clip": ["4", 1]}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0]}},
    "10": {"class_type": "PrimitiveInt", "inputs": {"value": 5}},
    "11": {"class_type": "StringConcatenate", "inputs": {"string_a": "a", "string_b": "b", "delimiter": ", "}},
})
NOVELAI = json.dumps({"prompt": "1girl", "uc": "lowres", "steps": 28, "scale": 5, "seed": 3, "width": 832, "height": 1216,
                      "sampler": "k_euler_ancestral", "noise_schedule": "native",
                      "v4_prompt": {"caption": {"base_caption": "1girl", "char_captions": [{"char_caption": "red"}]}}})
SWARM = json.dumps({"sui_image_params": {"prompt": "cat", "seed": 1, "steps": 2, "cfgscale": 3, "sampler": "dpmpp_2m",
                                         "scheduler": "sgm_uniform", "loras": ["l"], "loraweights": ["0.5"]},
                    "sui_models": [{"name": "l.safetensors", "param": "loras", "hash": "0xab"}]})
FOOOCUS = json.dumps({"prompt": "car", "negative_prompt": "", "steps": 30, "guidance_scale": 4, "seed": "12",
                      "sampler": "dpmpp_2m_sde_gpu", "scheduler": "karras", "resolution": "(1152, 896)",
                      "base_model": "j.safetensors", "loras": [["l.safetensors", 0.1, "ff"]], "metadata_scheme": "fooocus"})


def stealth_png():
    payload = gzip.compress(A1111.encode())
    bits = "".join(f"{b:08b}" for b in b"stealth_pngcomp" + struct.pack(">I", len(payload) * 8) + payload)
    w, h = 64, 64
    px = bytearray(w * h * 4)
    for i, bit in enumerate(bits):
        x, y = divmod(i, h)
        px[(y * w + x) * 4 + 3] = 254 | int(bit)
    return png([], w, h, 6, bytes(px))


def main():
    out = Path("corpus")
    seeds = {
        "a1111.png": png([(b"tEXt", b"parameters\0" + A1111.encode())]),
        "utf8-itxt.png": png([(b"iTXt", b"parameters\0\0\0\0\0" + "猫\nSteps: 1, Seed: 2, Size: 8x8".encode())]),
        "comfy-ztxt-after-idat.png": png([], after_idat=[(b"zTXt", b"prompt\0\0" + zlib.compress(COMFY.encode()))]),
        "novelai.png": png([(b"tEXt", b"Software\0NovelAI"), (b"tEXt", b"Comment\0" + NOVELAI.encode())]),
        "stealth.png": stealth_png(),
        "a1111.jpg": b"\xff\xd8" + segment(0xE1, b"Exif\0\0" + exif(unicode(A1111))) + segment(0xFE, b"hi") + b"\xff\xd9",
        "xmp.jpg": b"\xff\xd8" + segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta><rdf:Description exif:UserComment=\"" +
                                        SWARM.replace('"', "&quot;").encode() + b"\"/></x:xmpmeta>") + b"\xff\xd9",
        "comfy.webp": riff([(b"VP8X", bytes(10)), (b"EXIF", ifd0_ascii(0x0110, "prompt:" + COMFY))]),
        "fooocus-be.webp": riff([(b"EXIF", b"Exif\0\0" + exif(unicode(FOOOCUS, False), False))]),
        "a1111.avif": b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf" + b"Exif\0\0" + exif(unicode(A1111)),
    }
    for name, data in seeds.items():
        (out / "read_image" / name).write_bytes(data)
    records = {
        "a1111": [(0, A1111)],
        "comfy": [(2, COMFY)],
        "novelai": [(6, "NovelAI"), (4, NOVELAI), (7, "NovelAI Diffusion V4.5")],
        "swarm": [(0, SWARM)],
        "fooocus": [(0, FOOOCUS)],
        "dream": [(11, "\"a cat [dog]\" -s 30 -S 5 -W 512 -H 512 -C 7 -A k_lms")],
        "invokeai": [(8, json.dumps({"positive_prompt": "x", "seed": 1, "scheduler": "dpmpp_2m_k", "model": {"name": "m"}}))],
        "tensorart": [(12, json.dumps({"prompt": "p", "seed": "3", "baseModel": {"modelFileName": "m"}})), (2, COMFY)],
    }
    for name, recs in records.items():
        data = b"\xff".join(bytes([key]) + text.encode() for key, text in recs)
        (out / "recognise_texts" / name).write_bytes(data)
    px = stealth_png()
    w, h = 64, 64
    # Raw RGBA pixels of the stealth seed: width byte (w - 1), alpha flag, pixels.
    raw = zlib.decompress(px[px.index(b"IDAT") + 4: px.index(b"IEND") - 8])
    rows = b"".join(raw[y * (w * 4 + 1) + 1:(y + 1) * (w * 4 + 1)] for y in range(h))
    (out / "stealth_pixels" / "alpha-gzip").write_bytes(bytes([w - 1, 1]) + rows)


if __name__ == "__main__":
    main()
