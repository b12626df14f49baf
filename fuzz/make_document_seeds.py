#!/usr/bin/env python3
"""Writes the seed corpus of the `document` fuzz target: small `.easel` documents built from the
format's description in src/document/file.rs (a zip of stored entries: document.json,
picture.png, mask.png, versions/NNNN.png and versions/NNNN-mask.png), plus `refused-…` files the
reader must refuse. Standard library only. Run from the fuzz folder: python3 make_document_seeds.py"""
import json
import struct
import zipfile
import zlib
from pathlib import Path


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width, height, channels, fill):
    color = {1: 0, 3: 2}[channels]
    row = b"\0" + bytes([fill]) * (width * channels)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b""))


def manifest(versions, current, width=8, height=8, version=1, fmt="easel-document"):
    return json.dumps({"format": fmt, "version": version, "width": width, "height": height,
                       "current": current, "versions": versions}).encode()


def document(path, entries, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in entries:
            z.writestr(name, data)


def main():
    out = Path("corpus/document")
    out.mkdir(parents=True, exist_ok=True)
    v = lambda mask, label=None: {"width": 8, "height": 8, "mask": mask, **({"label": label} if label else {})}
    one = [("document.json", manifest([v(True, "a red barn\nSteps: 3")], 0)),
           ("picture.png", png(8, 8, 3, 200)), ("mask.png", png(8, 8, 1, 255))]
    document(out / "one-version.easel", one)
    document(out / "three-versions.easel", [
        ("document.json", manifest([v(False), v(True, "second"), v(False)], 1)),
        ("versions/0000.png", png(8, 8, 3, 10)),
        ("picture.png", png(8, 8, 3, 20)), ("mask.png", png(8, 8, 1, 128)),
        ("versions/0002.png", png(8, 8, 3, 30)),
    ])
    document(out / "refused-newer-format.easel",
             [("document.json", manifest([v(True)], 0, version=7))] + one[1:])
    document(out / "refused-compressed.easel", one, zipfile.ZIP_DEFLATED)
    document(out / "refused-wrong-size.easel",
             [("document.json", manifest([v(True)], 0, width=9))] + one[1:])
    document(out / "refused-missing-mask.easel", one[:2])
    whole = (out / "one-version.easel").read_bytes()
    (out / "refused-truncated.easel").write_bytes(whole[: len(whole) // 2])


if __name__ == "__main__":
    main()
