"""Reading back what the png display backend wrote: the frame's dominant colour, and whether it is the alert's red."""

from __future__ import annotations

from pathlib import Path

from PIL import Image


def dominant(path: Path) -> tuple[int, int, int]:
    with Image.open(path) as im:
        small = im.convert("RGB").resize((64, 36))
    return max(small.getcolors(64 * 36), key=lambda c: c[0])[1]


def is_red(rgb: tuple[int, int, int]) -> bool:
    return rgb[0] > 150 and rgb[1] < 60 and rgb[2] < 80
