#!/usr/bin/env python3
"""Build Easel's CLIP tokenizer asset (``assets/clip/tokenizer.json``).

Stable Diffusion 1.x/2.x and SDXL text encoders all use OpenAI's CLIP BPE
vocabulary (49408 tokens).  This script rebuilds that vocabulary from the BPE
merge list shipped inside the ``open-clip-torch`` wheel
(``open_clip/bpe_simple_vocab_16e6.txt.gz``, MIT licence) and writes it in the
Hugging Face ``tokenizers`` JSON format, so the Rust app can load it with
``tokenizers::Tokenizer::from_file`` (crate 0.22, ``fancy-regex`` backend, no
onig).

Vocabulary layout (identical to OpenAI CLIP / open_clip ``SimpleTokenizer``):

* ids 0..255      the 256 byte symbols of the GPT-2 byte-to-unicode table,
                  in table order;
* ids 256..511    the same symbols with the ``</w>`` end-of-word suffix;
* ids 512..49405  one token per merge, for the first 49152-256-2 merges of the
                  file (line 1 is a ``#version`` header and is skipped);
* id  49406       ``<|startoftext|>``;
* id  49407       ``<|endoftext|>``.

Pipeline written to the JSON (mirrors the ``tokenizer.json`` that
``transformers`` builds for CLIP, e.g. openai/clip-vit-large-patch14):

* normalizer:     NFC, ``\\s+`` -> ``" "``, lowercase;
* pre-tokenizer:  the CLIP split regex (matches kept, whitespace dropped),
                  then byte-level mapping without a prefix space.  HF sets
                  ``use_regex: true`` there; every piece the CLIP split
                  produces is already a single GPT-2 regex match, so we set
                  ``use_regex: false`` and skip a redundant regex pass
                  (``--verify`` checks the ids are identical);
* model:          BPE with ``end_of_word_suffix: "</w>"``, unk ``<|endoftext|>``
                  (never produced: every byte symbol, bare and with ``</w>``,
                  is in the vocabulary);
* post-processor: ``<|startoftext|> $A <|endoftext|>`` (TemplateProcessing);
* decoder:        byte-level decode, then ``</w>`` -> space and trim, which is
                  what CLIP's own ``decode`` does.

Not replicated (exotic input only; the HF fast tokenizer behaves the same as
ours): open_clip and the old pure-Python HF ``CLIPTokenizer`` run ``ftfy``
(uncurls quotes, folds full-width forms and ligatures, repairs mojibake) and
open_clip also HTML-unescapes; Python's ``str.lower`` handles final sigma.

Usage (any Python 3.9+ with ``open-clip-torch`` installed; it is only used as
the source of the vocabulary file, torch is not imported)::

    python scripts/build_clip_tokenizer.py                 # writes the asset
    python scripts/build_clip_tokenizer.py --vocab PATH    # explicit .txt.gz
    python scripts/build_clip_tokenizer.py --verify        # also compare ids
    python scripts/build_clip_tokenizer.py --write-cases   # also write fixture

``--verify`` needs ``tokenizers``, ``transformers`` and (for the open_clip
comparison) ``ftfy``, ``regex`` and ``torch``; it encodes ~200 strings with the
produced JSON, with ``transformers.CLIPTokenizer`` built from the same
vocab/merges, and with open_clip's ``SimpleTokenizer``, and reports every
divergence.  It exits non-zero if the JSON disagrees with transformers (ids
or decoded text), or with open_clip on a string where neither open_clip's extra
cleaning nor its different special-token names (``<start_of_text>``) explain
the difference.  Last run: 334 strings, all identical to transformers 5.23;
23 differ from open_clip, all explained (curly quotes, full-width forms,
ligatures, HTML entities, control characters, mojibake repair, literal
``<|endoftext|>`` in the text).

``--write-cases`` (needs ``transformers``) writes
``tests/fixtures/ref/tokenizer_cases.json``: a list of
``{"text": ..., "ids": [...]}`` (ids include bos/eos, no padding, no
truncation) computed by ``transformers.CLIPTokenizer``, for the Rust tests.

Output is deterministic: the same vocabulary file gives byte-identical files.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.metadata
import importlib.util
import json
import sys
import tempfile
import unicodedata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "assets" / "clip" / "tokenizer.json"
DEFAULT_LICENSE_OUT = REPO_ROOT / "assets" / "clip" / "LICENSE-open_clip.txt"
DEFAULT_CASES_OUT = REPO_ROOT / "tests" / "fixtures" / "ref" / "tokenizer_cases.json"

VOCAB_FILE_NAME = "bpe_simple_vocab_16e6.txt.gz"
DIST_NAME = "open_clip_torch"
PINNED_VERSION = "3.3.0"

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
EOW = "</w>"
NUM_MERGES = 49152 - 256 - 2  # as in OpenAI CLIP / open_clip SimpleTokenizer
VOCAB_SIZE = 49408

# The CLIP word-split pattern (OpenAI CLIP, with HF's special-token prefix).
SPLIT_PATTERN = (
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d"
    r"|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"
)


# --------------------------------------------------------------------------
# Locating the inputs
# --------------------------------------------------------------------------


def find_open_clip_dir() -> Path:
    """Directory of the installed ``open_clip`` package, without importing it."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        sys.exit(
            "error: the open_clip package is not installed; "
            f"`pip install --no-deps open-clip-torch=={PINNED_VERSION}` or pass --vocab PATH"
        )
    return Path(list(spec.submodule_search_locations)[0])


def find_vocab() -> Path:
    path = find_open_clip_dir() / VOCAB_FILE_NAME
    if not path.is_file():
        sys.exit(f"error: {path} not found in the open_clip package; pass --vocab PATH")
    return path


def open_clip_distribution():
    try:
        return importlib.metadata.distribution(DIST_NAME)
    except importlib.metadata.PackageNotFoundError:
        return None


# --------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------


def byte_symbol_table() -> dict[int, str]:
    """GPT-2/CLIP reversible byte -> printable unicode character table.

    Printable Latin-1 bytes map to themselves; the remaining 68 bytes (control
    characters, space, DEL, NBSP, soft hyphen, ...) map, in byte order, to
    U+0100 upwards.  Insertion order (printable bytes first) is the id order.
    """
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\u00a1"), ord("\u00ac") + 1))
        + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    )
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def read_merges(vocab_gz: Path) -> list[tuple[str, str]]:
    lines = gzip.decompress(vocab_gz.read_bytes()).decode("utf-8").split("\n")
    selected = lines[1 : NUM_MERGES + 1]
    if len(selected) != NUM_MERGES:
        sys.exit(f"error: {vocab_gz} has only {len(selected)} merges, expected {NUM_MERGES}")
    merges = []
    for lineno, line in enumerate(selected, start=2):
        parts = line.split()
        if len(parts) != 2:
            sys.exit(f"error: {vocab_gz}: line {lineno} is not a merge pair: {line!r}")
        merges.append((parts[0], parts[1]))
    return merges


def build_vocab(merges: list[tuple[str, str]]) -> list[str]:
    symbols = list(byte_symbol_table().values())
    tokens = symbols + [s + EOW for s in symbols]
    tokens += [a + b for a, b in merges]
    tokens += [BOS, EOS]
    if len(tokens) != VOCAB_SIZE or len(set(tokens)) != VOCAB_SIZE:
        sys.exit(f"error: built {len(tokens)} tokens ({len(set(tokens))} distinct), expected {VOCAB_SIZE}")
    if tokens.index(BOS) != 49406 or tokens.index(EOS) != 49407:
        sys.exit("error: special token ids are not 49406/49407")
    return tokens


# --------------------------------------------------------------------------
# tokenizer.json
# --------------------------------------------------------------------------


def tokenizer_config(vocab: list[str], merges: list[tuple[str, str]]) -> dict:
    bos_id, eos_id = vocab.index(BOS), vocab.index(EOS)

    def added(token_id: int, content: str) -> dict:
        return {
            "id": token_id,
            "content": content,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }

    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [added(bos_id, BOS), added(eos_id, EOS)],
        "normalizer": {
            "type": "Sequence",
            "normalizers": [
                {"type": "NFC"},
                {"type": "Replace", "pattern": {"Regex": r"\s+"}, "content": " "},
                {"type": "Lowercase"},
            ],
        },
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {
                    "type": "Split",
                    "pattern": {"Regex": SPLIT_PATTERN},
                    "behavior": "Removed",
                    "invert": True,
                },
                {
                    "type": "ByteLevel",
                    "add_prefix_space": False,
                    "trim_offsets": True,
                    "use_regex": False,
                },
            ],
        },
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                {"SpecialToken": {"id": BOS, "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": EOS, "type_id": 0}},
            ],
            "pair": [
                {"SpecialToken": {"id": BOS, "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": EOS, "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 1}},
                {"SpecialToken": {"id": EOS, "type_id": 1}},
            ],
            "special_tokens": {
                BOS: {"id": BOS, "ids": [bos_id], "tokens": [BOS]},
                EOS: {"id": EOS, "ids": [eos_id], "tokens": [EOS]},
            },
        },
        "decoder": {
            "type": "Sequence",
            "decoders": [
                {
                    "type": "ByteLevel",
                    "add_prefix_space": False,
                    "trim_offsets": False,
                    "use_regex": False,
                },
                {"type": "Replace", "pattern": {"String": EOW}, "content": " "},
                {"type": "Replace", "pattern": {"Regex": r"\A\s+|\s+\z"}, "content": ""},
            ],
        },
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": EOS,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": EOW,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": "@@VOCAB@@",
            "merges": "@@MERGES@@",
        },
    }


def _dump(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def render_tokenizer_json(vocab: list[str], merges: list[tuple[str, str]]) -> str:
    """Pretty JSON with one vocab entry / one merge per line (diffable, compact)."""
    text = json.dumps(tokenizer_config(vocab, merges), ensure_ascii=False, indent=2)
    ind = " " * 6
    vocab_body = ",\n".join(f"{ind}{_dump(tok)}: {i}" for i, tok in enumerate(vocab))
    merges_body = ",\n".join(f"{ind}[{_dump(a)}, {_dump(b)}]" for a, b in merges)
    text = text.replace('"@@VOCAB@@"', "{\n" + vocab_body + "\n    }", 1)
    text = text.replace('"@@MERGES@@"', "[\n" + merges_body + "\n    ]", 1)
    return text + "\n"


# --------------------------------------------------------------------------
# Licence / provenance
# --------------------------------------------------------------------------


def render_license(vocab_gz: Path, from_wheel: bool) -> str:
    digest = hashlib.sha256(vocab_gz.read_bytes()).hexdigest()
    dist = open_clip_distribution()
    version = dist.version if dist is not None else None
    licence_text = None
    if dist is not None:
        for f in dist.files or []:
            name = f.name.upper()
            if ".dist-info" in str(f) and name.startswith(("LICENSE", "LICENCE", "COPYING")):
                licence_text = f.read_text(encoding="utf-8")
                break
        if licence_text is None:
            licence_text = dist.metadata.get("License")

    out = []
    out.append("CLIP BPE vocabulary used by assets/clip/tokenizer.json")
    out.append("======================================================")
    out.append("")
    out.append("tokenizer.json is generated by scripts/build_clip_tokenizer.py from the file")
    out.append(f"open_clip/{VOCAB_FILE_NAME} shipped in the PyPI wheel")
    out.append(f"open-clip-torch=={version or PINNED_VERSION} (https://github.com/mlfoundations/open_clip),")
    out.append("distributed under the MIT licence reproduced below.")
    out.append(f"sha256({VOCAB_FILE_NAME}) = {digest}")
    if not from_wheel:
        out.append("(built from an explicitly given copy of the file via --vocab)")
    out.append("")
    out.append("open_clip states that its tokenizer and this vocabulary were copied from")
    out.append("https://github.com/openai/CLIP, originally MIT License, Copyright (c) 2021 OpenAI;")
    out.append("the same MIT terms apply.")
    out.append("")
    out.append("-" * 72)
    out.append("")
    if licence_text and licence_text.strip():
        out.append(licence_text.strip("\n"))
    else:
        out.append("MIT License (licence text not found in the installed wheel's metadata).")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------
# Test strings
# --------------------------------------------------------------------------

# Written to tests/fixtures/ref/tokenizer_cases.json by --write-cases.
CASES = [
    "a photo of a cat",
    "",
    " ",
    "A Photo Of A CAT",
    "a photograph of an astronaut riding a horse",
    "a beautiful sunset over the ocean, golden hour, 4k",
    "masterpiece, best quality, 1girl, solo, long hair, looking at viewer",
    "portrait of a woman, highly detailed, 8k, trending on artstation",
    "(masterpiece:1.2), (best quality:1.3), ((detailed)), [blurry]",
    "(word:1.2)",
    "((a red ball)) on [a green table:0.5]",
    "[cat|dog] in a field",
    "a cat AND a dog",
    "<lora:add_detail:0.8> a castle",
    "<lora:my_lora-v1.5:0.65>, <hypernet:anime:1>",
    "embedding:EasyNegative, bad hands",
    "The cat's toy isn't here; they're gone, we've left, I'm sad, you'll see, he'd go",
    "DON'T STOP ME NOW",
    "rock 'n' roll",
    "1234567890",
    "3.14159 and 2,000,000 and 1e-5",
    "20 years old, 1990s, 4k uhd, f/1.8, 85mm",
    "hello, world! how are you?",
    "...!!!???",
    "#hashtag @mention $100 50% a&b *star* ~tilde~ `code` \\backslash",
    "a  b   c",
    "line one\nline two\n\nline three",
    "\ttabbed\ttext\t",
    "   leading and trailing spaces   ",
    "hyphenated-word well_known snake_case CamelCase",
    "http://example.com/path?q=1&x=2",
    "email@example.com",
    "supercalifragilisticexpialidocious",
    "antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "xqzjvkwpfh bmrtlsdngc",
    "café crème brûlée, naïve façade, jalapeño, Ångström, Zürich",
    "Cafe\u0301 (decomposed accent)",
    "ÀÉÎÕÜ àéîõü",
    "Ελληνικά κείμενο",
    "Русский текст, привет мир",
    "一只猫坐在桌子上",
    "中文 and English mixed 漂亮的风景",
    "日本語のテキスト、かわいい猫",
    "한국어 텍스트",
    "العربية",
    "🐱",
    "a cute cat 🐱🐶 with hearts ❤️💕",
    "thumbs up 👍🏽 family 👨\u200d👩\u200d👧 flag 🇯🇵",
    "★☆♪ © ® ™ ° ± × ÷",
    "a\u00a0non-breaking\u00a0space",
    "ideographic\u3000space",
    "zero\u200bwidth",
    "<|startoftext|>",
    "a cat<|endoftext|>a dog",
    "score_9, score_8_up, rating_safe, source_anime",
    "BREAK",
    "cinematic lighting, depth of field, bokeh, (sharp focus:1.4), ultra-realistic, 35mm film grain",
    "ugly, tiling, poorly drawn hands, poorly drawn feet, poorly drawn face, out of frame, extra limbs, "
    "disfigured, deformed, body out of frame, blurry, bad anatomy, blurred, watermark, grainy, signature, "
    "cut off, draft, low quality, worst quality, jpeg artifacts, duplicate, morbid, mutilated, mutation",
    "x" * 300,
]

# Extra strings only used by --verify (together with CASES and generated ones).
EXTRA_VERIFY = [
    "a", "I", "the", "The", "THE", "cat", "cats", "catalog", "dog,cat", "dog , cat",
    "hello world", "Hello World", "HeLLo WoRLd", "it's", "IT'S", "its'", "'s", "''s", "'", "''",
    "'tis the season", "o'clock", "rock'n'roll", "y'all", "she'll", "we'd", "I've", "you're",
    "(", ")", "((", "))", "(:", ":)", "(a:1)", "(a:1.5)", "(a b c:0.9)", "[[a]]", "{a|b|c}",
    "(((masterpiece)))", "\\(escaped\\)", "(word:-1)", "(word: 1.2)", "( word : 1.2 )",
    "<lora:a:1>", "<lyco:b:0.5>", "<lora:name with spaces:0.8>",
    "0", "00", "007", "10", "100%", "1.0", "-1", "+1", "1/2", "½", "²³", "Ⅻ", "٣", "１２３",
    "v1.5", "sdxl1.0", "512x512", "1024x1024", "16:9", "#ff00ff", "RGB(255,0,0)",
    "multiple     spaces     here", " \n \t ", "\n", "\r\n", "a\rb", "trailing\n", "\u2003em\u2003space",
    "tab\there", "form\ffeed", "vertical\vtab",
    "naïve", "Ñandú", "ÆØÅ æøå", "ß", "ẞ", "Ǆ", "ﬁ ligature", "ǅ", "İstanbul", "Ⅷ",
    "中", "猫", "北京欢迎你", "我爱你", "漢字", "中文，标点。", "「引用」",
    "ひらがな", "カタカナ", "ｶﾀｶﾅ", "ＦＵＬＬＷＩＤＴＨ", "한", "ไทย", "हिन्दी", "עברית",
    "😀", "🎨🖌️", "🏳️‍🌈", "👩🏻‍💻", "🤖 robot", ":-)", "<3", "^_^", "¯\\_(ツ)_/¯",
    "\u201ccurly quotes\u201d", "don\u2019t", "\u2018single\u2019", "em\u2014dash", "en\u2013dash", "ellipsis\u2026",
    "&amp;", "&lt;tag&gt;", "&#39;", "fish &amp; chips",
    "\x00null", "\x07bell", "\x1b[31mred", "\x7fdel", "\u00ad", "soft\u00adhyphen", "\ufeffbom",
    "\U0001d400\U0001d401", "𝓯𝓪𝓷𝓬𝔂", "Ωmega", "µ micro", "Å angstrom sign \u212b",
    "a" * 77, "ab" * 60, "abc " * 40, "word" * 25, "the quick brown fox jumps over the lazy dog " * 5,
    "A1111", "ComfyUI", "Stable Diffusion", "DPM++ 2M Karras", "euler_a", "CFG 7.5", "seed: 42",
    "negative_prompt", "high-res fix", "img2img", "inpaint", "self-portrait", "u.s.a.", "e.g.", "i.e.",
    "mr. smith", "Dr. Who", "St. Louis", "ok?!", "wait...", "yes!!!", "what?!?!",
]


def generated_verify_strings() -> list[str]:
    """A few systematic strings: every printable ASCII char alone and in a word."""
    out = []
    for c in range(0x20, 0x7F):
        ch = chr(c)
        out.append(f"a{ch}b")
    for ch in "àâäçéèêëîïôöùûüÿœæ":
        out.append(f"{ch}{ch.upper()} test{ch}")
    return out


def verify_strings() -> list[str]:
    seen, out = set(), []
    for s in CASES + EXTRA_VERIFY + generated_verify_strings():
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


# --------------------------------------------------------------------------
# Reference tokenizers
# --------------------------------------------------------------------------


def transformers_tokenizer(vocab: list[str], merges: list[tuple[str, str]]):
    """transformers.CLIPTokenizer built from vocab.json + merges.txt files."""
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory(prefix="easel-clip-") as tmp:
        vocab_json = Path(tmp) / "vocab.json"
        merges_txt = Path(tmp) / "merges.txt"
        vocab_json.write_text(
            json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False), encoding="utf-8"
        )
        merges_txt.write_text(
            "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8"
        )
        return CLIPTokenizer.from_pretrained(tmp)


def transformers_ids(tok, text: str) -> list[int]:
    return list(tok(text, add_special_tokens=True, truncation=False)["input_ids"])


def load_open_clip_simple_tokenizer(vocab_gz: Path):
    """open_clip's SimpleTokenizer, loaded from its module file only.

    Importing the ``open_clip`` package pulls in torchvision/timm; the
    tokenizer module itself only needs ftfy, regex, numpy and torch.
    """
    path = find_open_clip_dir() / "tokenizer.py"
    spec = importlib.util.spec_from_file_location("_easel_open_clip_tokenizer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, module.SimpleTokenizer(bpe_path=str(vocab_gz))


def open_clip_ids(tok, text: str) -> list[int]:
    return [tok.sot_token_id] + tok.encode(text) + [tok.eot_token_id]


def open_clip_cleaning_is_noop(module, text: str) -> bool:
    """True when ftfy/html cleaning cannot explain a divergence for ``text``."""
    if BOS in text or EOS in text:
        # open_clip 3.x names its specials <start_of_text>/<end_of_text>, so it
        # BPE-encodes "<|endoftext|>" as plain text; HF (and we) match it.
        return False
    nfc = unicodedata.normalize("NFC", text)
    return module.basic_clean(text) == nfc.strip() and nfc.lower() == _per_char_lower(nfc)


def _per_char_lower(text: str) -> str:
    # tokenizers lowercases char by char (no Greek final-sigma rule).
    return "".join(c.lower() for c in text)


def verify(tokenizer_json: Path, vocab: list[str], merges: list[tuple[str, str]], vocab_gz: Path) -> bool:
    from tokenizers import Tokenizer

    ours = Tokenizer.from_file(str(tokenizer_json))
    hf = transformers_tokenizer(vocab, merges)
    try:
        oc_module, oc = load_open_clip_simple_tokenizer(vocab_gz)
    except ImportError as exc:  # ftfy / regex / torch missing
        print(f"warning: open_clip SimpleTokenizer unavailable ({exc}); skipping that comparison")
        oc_module, oc = None, None

    ok = True
    strings = verify_strings()
    n_oc_diff = 0
    for text in strings:
        got = ours.encode(text).ids
        ref = transformers_ids(hf, text)
        if got != ref:
            ok = False
            print(f"MISMATCH vs transformers: {text!r}\n  ours:         {got}\n  transformers: {ref}")
        decoded = ours.decode(got, skip_special_tokens=True)
        ref_decoded = hf.decode(ref, skip_special_tokens=True)
        if decoded != ref_decoded:
            ok = False
            print(f"DECODE MISMATCH vs transformers: {text!r}: {decoded!r} != {ref_decoded!r}")
        if oc is not None:
            oc_ref = open_clip_ids(oc, text)
            if got != oc_ref:
                n_oc_diff += 1
                explained = not open_clip_cleaning_is_noop(oc_module, text)
                tag = "known (ftfy/html/special-token names)" if explained else "UNEXPECTED"
                if not explained:
                    ok = False
                print(f"diff vs open_clip [{tag}]: {text!r}\n  ours:      {got}\n  open_clip: {oc_ref}")

    cat = ours.encode("a photo of a cat").ids
    expected = [49406, 320, 1125, 539, 320, 2368, 49407]
    if cat != expected:
        ok = False
        print(f"MISMATCH: 'a photo of a cat' -> {cat}, expected {expected}")
    print(
        f"verified {len(strings)} strings: "
        f"{'all match transformers' if ok else 'FAILURES above'}; "
        f"{n_oc_diff} differ from open_clip"
    )
    return ok


def write_cases(path: Path, vocab: list[str], merges: list[tuple[str, str]]) -> None:
    hf = transformers_tokenizer(vocab, merges)
    cases = [{"text": text, "ids": transformers_ids(hf, text)} for text in CASES]
    body = ",\n".join(
        "  {" + f'"text": {_dump(c["text"])}, "ids": {json.dumps(c["ids"])}' + "}" for c in cases
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[\n" + body + "\n]\n", encoding="utf-8")
    print(f"wrote {path} ({len(cases)} cases)")


# --------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab", type=Path, help=f"path to {VOCAB_FILE_NAME} (default: from open_clip)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="tokenizer.json to write")
    parser.add_argument("--license-out", type=Path, default=DEFAULT_LICENSE_OUT)
    parser.add_argument("--verify", action="store_true", help="compare ids with transformers and open_clip")
    parser.add_argument("--write-cases", action="store_true", help="write the Rust test fixture")
    parser.add_argument("--cases-out", type=Path, default=DEFAULT_CASES_OUT)
    args = parser.parse_args()

    vocab_gz = args.vocab if args.vocab is not None else find_vocab()
    merges = read_merges(vocab_gz)
    vocab = build_vocab(merges)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render_tokenizer_json(vocab, merges), encoding="utf-8")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {len(vocab)} tokens, {len(merges)} merges)")
    args.license_out.write_text(render_license(vocab_gz, from_wheel=args.vocab is None), encoding="utf-8")
    print(f"wrote {args.license_out}")

    if args.write_cases:
        write_cases(args.cases_out, vocab, merges)
    if args.verify:
        return 0 if verify(args.out, vocab, merges, vocab_gz) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
