"""Fonts found by path (no fontconfig at run time): Debian's Noto Sans first, DejaVu Sans as the fallback.

Both carry every precomposed Vietnamese letter (ắ, ề, ở, ự …), so text normalised to NFC renders with
its diacritics stacked right even with Pillow's basic layout.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

ROOT = Path("/usr/share/fonts/truetype")
REGULAR = (ROOT / "noto/NotoSans-Regular.ttf", ROOT / "dejavu/DejaVuSans.ttf")
BOLD = (ROOT / "noto/NotoSans-Bold.ttf", ROOT / "dejavu/DejaVuSans-Bold.ttf")
PROBE = "Tiếng Việt: ắằẳẵặ ếềểễệ ốồổỗộ ớờởỡợ ứừửữự đĐ"


class FontError(Exception):
    pass


def find(extra: list[str] | tuple[str, ...] = (), *, bold: bool = False) -> Path:
    """The first font file that exists and has every Vietnamese glyph of PROBE."""
    for path in [*map(Path, extra), *(BOLD if bold else REGULAR)]:
        if path.is_file() and covers(path):
            return path
    raise FontError("no font with Vietnamese glyphs: install fonts-noto-core or fonts-dejavu-core, "
                    "or name one in display.fonts")


def covers(path: Path, text: str = PROBE) -> bool:
    """Whether the font draws every letter of `text` as something other than its missing-glyph box."""
    font = ImageFont.truetype(str(path), 24)
    missing = _glyph(font, "\ue000")  # a private-use code point: no font maps it
    return all(_glyph(font, c) != missing for c in set(text) if not c.isspace())


def _glyph(font: ImageFont.FreeTypeFont, c: str) -> bytes:
    from PIL import Image, ImageDraw

    im = Image.new("L", (48, 48))
    ImageDraw.Draw(im).text((8, 4), c, font=font, fill=255)
    return im.tobytes()


@lru_cache(maxsize=24)  # a FreeType face each: ~200 KB; a board uses a handful of sizes
def load(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)
