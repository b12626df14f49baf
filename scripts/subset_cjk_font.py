#!/usr/bin/env python3
"""Builds assets/fonts/easel-cjk-subset.ttf: Droid Sans Fallback cut down to the GB2312 character
set (6763 hanzi, CJK punctuation, fullwidth forms, kana, Greek/Cyrillic of GB2312) plus every
character of the Simplified Chinese table (src/ui/i18n/zh_cn.rs), so the UI and most prompts typed
in Chinese render without a system CJK font.

Needs fonttools (in a virtual environment outside the repository):
    python3 -m venv /tmp/ft && /tmp/ft/bin/pip install fonttools
    /tmp/ft/bin/python scripts/subset_cjk_font.py [path/to/DroidSansFallbackFull.ttf]

Run it again after adding Chinese strings that use characters outside GB2312; the UI test
`i18n::tests::every_table_character_is_in_the_shipped_font` says when that is needed.
"""

import sys
from pathlib import Path

from fontTools import subset

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"
TABLE = ROOT / "src/ui/i18n/zh_cn.rs"
OUTPUT = ROOT / "assets/fonts/easel-cjk-subset.ttf"


def gb2312_characters():
    """Every character GB2312 encodes: rows 0xA1-0xF7, cells 0xA1-0xFE."""
    chars = set()
    for row in range(0xA1, 0xF8):
        for cell in range(0xA1, 0xFF):
            try:
                chars.add(bytes([row, cell]).decode("gb2312"))
            except UnicodeDecodeError:
                pass
    return chars


def table_characters():
    """The non-ASCII characters of the Chinese table (the default fonts already cover ASCII)."""
    return {c for c in TABLE.read_text(encoding="utf-8") if ord(c) > 0x7F}


def main():
    source = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_SOURCE
    chars = gb2312_characters() | table_characters()
    # The ideographic space and the fullwidth block (U+FF01-U+FF5E) are in GB2312 already; the
    # CJK symbols block is added whole because Chinese text uses more of it than GB2312 lists.
    chars |= {chr(c) for c in range(0x3000, 0x3040)}
    options = subset.Options()
    options.hinting = False
    options.desubroutinize = True
    options.name_IDs = ["*"]
    options.name_languages = ["*"]
    options.notdef_outline = True
    font = subset.load_font(source, options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[ord(c) for c in sorted(chars)])
    subsetter.subset(font)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    subset.save_font(font, str(OUTPUT), options)
    hanzi = sum(1 for c in chars if "\u4e00" <= c <= "\u9fff")
    print(f"{OUTPUT}: {len(chars)} characters ({hanzi} hanzi), {OUTPUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
