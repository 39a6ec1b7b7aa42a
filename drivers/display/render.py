"""Scenes to pixels with Pillow: text fitted to its box, images letterboxed, the header strip, the ticker
strip, and the alert layout that overrides everything. Pure: an Image in, an Image out, no I/O but the
image file a scene names.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from . import fonts

NAVY = (11, 45, 94)
TEXT_BG = (0, 40, 85)
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
YELLOW = (255, 214, 0)
ALERT_RED = (200, 16, 46)
ALERT_DARK = (140, 0, 20)
DRILL_AMBER = (214, 110, 0)
WEEKDAYS = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ Nhật")


def nfc(text: str) -> str:
    # Precomposed letters use the fonts' own Vietnamese glyphs: stacked marks (ệ, ở) sit right.
    return unicodedata.normalize("NFC", text or "")


@dataclass
class Style:
    fonts: list[str] = field(default_factory=list)  # extra font paths tried before Noto and DejaVu
    header: bool = True
    name: str = ""  # the commune or board name in the header
    # set (from another thread) when an alert waits to be drawn: a text layout in progress gives way to it
    superseded: Callable[[], bool] = lambda: False
    max_image_px: float = 40e6  # config display.max_image_mp: larger images are refused from their header

    def __post_init__(self) -> None:
        self.regular = fonts.find(self.fonts)
        self.bold = fonts.find(self.fonts, bold=True)


@dataclass
class Line:
    text: str
    bold: bool
    size: int


def wrap(text: str, measure: Callable[[str], float], width: float) -> list[str]:
    """Greedy word wrap by measured width; a word wider than the line is broken by letters.

    Linear in the text: a line is measured only while it fits (so it stays short), and a long word is cut
    where the sum of its letters' widths reaches the line, then stepped back while the piece overflows
    (kerning), never by re-measuring every prefix of a 5,000-letter word.
    """
    lines: list[str] = []
    for para in text.split("\n"):
        line = ""
        for word in para.split():
            trial = f"{line} {word}" if line else word
            if len(word) <= MAX_FIT_CHARS and measure(trial) <= width:
                line = trial
                continue
            if line:
                lines.append(line)
            while len(word) > 1 and (len(word) > MAX_FIT_CHARS or measure(word) > width):
                cut = _cut(word, measure, width)
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        lines.append(line)
    return lines


MAX_FIT_CHARS = 400  # a word longer than this never fits a line at any size the layout tries


def _cut(word: str, measure: Callable[[str], float], width: float) -> int:
    """How many letters of `word` fit the width (at least one)."""
    total, cut = 0.0, 0
    for ch in word[:MAX_FIT_CHARS]:
        total += measure(ch)
        if total > width:
            break
        cut += 1
    cut = max(1, cut)
    while cut > 1 and measure(word[:cut]) > width:
        cut -= 1
    return cut


def _memo(width_of: Callable[[str], float]) -> Callable[[str], float]:
    """width_of, remembered per text (a layout measures the same letters and lines again and again)."""
    widths: dict[str, float] = {}

    def measure(text: str) -> float:
        w = widths.get(text)
        if w is None:
            w = widths[text] = width_of(text)
        return w
    return measure


class Superseded(Exception):
    """An alert is waiting: this frame is dropped unfinished."""


REF_SIZE = 100  # widths are measured once at this size and scaled: one font per face, not one per size tried


def fit(blocks: list[tuple[str, bool, float]], style: Style, width: int, height: int,
        max_size: int = 400, min_size: int = 10) -> list[Line]:
    """The largest font size at which every block (text, bold, scale) wraps into width × height.

    A binary search on sizes with widths scaled from REF_SIZE (text width is near-linear in the size),
    then a check with the real font at the size found, stepping down while hinting makes a line overflow.
    """
    ref = {b: _memo(fonts.load(style.bold if b else style.regular, REF_SIZE).getlength) for b in (False, True)}
    exact: dict[tuple[bool, int], Callable[[str], float]] = {}

    def scaled(bold: bool, size: int) -> Callable[[str], float]:
        return lambda text: ref[bold](text) * size / REF_SIZE

    def real(bold: bool, size: int) -> Callable[[str], float]:
        if (bold, size) not in exact:
            exact[(bold, size)] = _memo(fonts.load(style.bold if bold else style.regular, size).getlength)
        return exact[(bold, size)]

    def layout(size: int, measure: Callable[[bool, int], Callable[[str], float]]) -> tuple[list[Line], float]:
        if style.superseded():
            raise Superseded
        out: list[Line] = []
        total = 0.0
        for text, bold, scale in blocks:
            if not text:
                continue
            s = max(min_size, int(size * scale))
            for ln in wrap(text, measure(bold, s), width):
                out.append(Line(ln, bold, s))
                total += s * 1.3
            total += s * 0.4  # a gap between blocks
        return out, total

    lo, hi, best = min_size, max(min_size, min(max_size, height)), min_size
    while lo <= hi:  # the line count only grows with the size
        mid = (lo + hi) // 2
        if layout(mid, scaled)[1] <= height:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    while True:
        lines, total = layout(best, real)
        if best <= min_size or (total <= height and all(real(ln.bold, ln.size)(ln.text) <= width for ln in lines)):
            return lines
        best = max(min_size, int(best * 0.97))


def draw_lines(draw: ImageDraw.ImageDraw, lines: list[Line], style: Style, box: tuple[int, int, int, int],
               fill: tuple[int, int, int], *, center: bool = False) -> None:
    x0, y0, x1, y1 = box
    height = sum(ln.size * 1.3 for ln in lines) + 0.4 * sum({ln.size for ln in lines})
    y = y0 + max(0.0, (y1 - y0 - height) / 2)
    prev_bold = None
    for ln in lines:
        if style.superseded():
            raise Superseded
        if prev_bold is not None and ln.bold != prev_bold:
            y += ln.size * 0.4
        prev_bold = ln.bold
        font = fonts.load(style.bold if ln.bold else style.regular, ln.size)
        x = x0 + ((x1 - x0) - font.getlength(ln.text)) / 2 if center else x0
        draw.text((x, y), ln.text, font=font, fill=fill)
        y += ln.size * 1.3


def header(style: Style, width: int, height: int, now: datetime) -> Image.Image:
    """The top strip: board name on the left, weekday, date and time on the right."""
    strip = Image.new("RGB", (width, height), NAVY)
    draw = ImageDraw.Draw(strip)
    size = int(height * 0.5)
    pad = int(height * 0.3)
    when = f"{WEEKDAYS[now.weekday()]}, {now:%d/%m/%Y  %H:%M}"
    right = fonts.load(style.regular, size)
    draw.text((width - pad - right.getlength(when), (height - size * 1.2) / 2), when, font=right, fill=WHITE)
    room = width - 3 * pad - right.getlength(when)
    name = nfc(style.name)
    bold = fonts.load(style.bold, size)
    while name and bold.getlength(name) > room:
        name = name[:-2] + "…"
    draw.text((pad, (height - size * 1.2) / 2), name, font=bold, fill=YELLOW)
    return strip


def header_height(height: int) -> int:
    return max(24, round(height * 0.08))


def scene(scn: dict, style: Style, size: tuple[int, int], now: datetime, media: Path | None = None,
          reserve: int = 0) -> Image.Image:
    """One scene on the full canvas (header included when enabled), leaving `reserve` rows at the bottom
    for a ticker: one frame-sized buffer, not two."""
    w, h = size
    top = header_height(h) if style.header else 0
    kind = scn.get("kind")
    bg = TEXT_BG if kind == "text" else BLACK
    frame = Image.new("RGB", size, bg)
    box = (0, top, w, h - reserve)
    if kind == "text":
        _text(frame, scn, style, box)
    elif kind == "image":
        _image(frame, media, box, style.max_image_px)
    elif kind == "video":  # what the frame shows where VLC draws the video itself (or behind it)
        _text(frame, {"title": "▶ " + (scn.get("title") or "Video")}, style, box, center=True)
    elif kind == "idle":
        _text(frame, {"title": style.name, "body": f"{WEEKDAYS[now.weekday()]}\n{now:%d/%m/%Y}"}, style, box,
              center=True)
    if top:
        frame.paste(header(style, w, top, now), (0, 0))
    return frame


def _text(frame: Image.Image, scn: dict, style: Style, box: tuple[int, int, int, int], *,
          center: bool = False) -> None:
    x0, y0, x1, y1 = box
    pad = int(min(x1 - x0, y1 - y0) * 0.05)
    inner = (x0 + pad, y0 + pad, x1 - pad, y1 - pad)
    lines = fit([(nfc(scn.get("title", "")), True, 1.3), (nfc(scn.get("body", "")), False, 1.0)], style,
                inner[2] - inner[0], inner[3] - inner[1], max_size=int((y1 - y0) / 4))
    draw_lines(ImageDraw.Draw(frame), lines, style, inner, WHITE, center=center)


def _image(frame: Image.Image, media: Path | None, box: tuple[int, int, int, int], max_px: float) -> None:
    """Scaled to fit the box with its aspect kept (letterboxed in black), upright by its EXIF orientation.

    The size is checked from the header before a pixel is decoded (a 32 KB PNG can hold 144 megapixels), a
    decompression-bomb warning is an error, and the picture is decoded once, shrunk in place (no full-size
    copies for the rotation or the colour conversion)."""
    import warnings

    if media is None:
        raise ValueError("image scene without its media file")
    x0, y0, x1, y1 = box
    bound = max(x1 - x0, y1 - y0)  # square: a rotated picture still has enough pixels either way
    with warnings.catch_warnings(record=True) as bomb:
        warnings.simplefilter("always", Image.DecompressionBombWarning)
        try:
            src = Image.open(media)  # the header only
        except Image.DecompressionBombError as e:
            raise ValueError(f"refused: {e} (display.max_image_mp is {max_px / 1e6:g})") from None
    with src:
        if src.width * src.height > max_px or bomb:
            raise ValueError(f"the image is {src.width} × {src.height} pixels, more than "
                             f"{max_px / 1e6:g} megapixels (display.max_image_mp)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            src.draft("RGB", (bound, bound))  # JPEG: decode at reduced scale when the panel is smaller
            src.thumbnail((bound, bound), Image.Resampling.LANCZOS)
            pic = ImageOps.exif_transpose(src).convert("RGB")
    pic = ImageOps.contain(pic, (x1 - x0, y1 - y0), Image.Resampling.LANCZOS)
    frame.paste(pic, (x0 + (x1 - x0 - pic.width) // 2, y0 + (y1 - y0 - pic.height) // 2))


def alert(info: dict, style: Style, size: tuple[int, int], now: datetime) -> Image.Image:
    """The alert layout: red (amber for a drill), a banner, the headline, the instruction, the issued time."""
    w, h = size
    drill = bool(info.get("drill"))
    frame = Image.new("RGB", size, DRILL_AMBER if drill else ALERT_RED)
    draw = ImageDraw.Draw(frame)
    band = round(h * 0.14)
    draw.rectangle((0, 0, w, band), fill=BLACK if drill else ALERT_DARK)
    banner = "DIỄN TẬP · TIN THỬ NGHIỆM" if drill else "CẢNH BÁO KHẨN CẤP"
    pad = int(min(w, h) * 0.04)
    draw_lines(draw, fit([(banner, True, 1.0)], style, w - 2 * pad, band - pad, max_size=int(band * 0.6)), style,
               (pad, pad // 2, w - pad, band - pad // 2), YELLOW, center=True)
    foot = round(h * 0.08)
    issued = info.get("issued")
    when = datetime.fromtimestamp(issued, now.tzinfo) if issued else now
    footer = f"Phát lúc {when:%H:%M %d/%m/%Y}" + (f" · {nfc(style.name)}" if style.name else "")
    fsize = int(foot * 0.45)
    ffont = fonts.load(style.regular, fsize)
    draw.text((pad, h - foot + (foot - fsize * 1.2) / 2), footer, font=ffont, fill=WHITE)
    lines = fit([(nfc(info.get("headline", "")), True, 1.4), (nfc(info.get("instruction", "")), False, 1.0)],
                style, w - 2 * pad, h - band - foot - 2 * pad, max_size=int(h / 6))
    draw_lines(draw, lines, style, (pad, band + pad, w - pad, h - foot - pad), WHITE, center=True)
    return frame


class Ticker:
    """A scrolling line: the text drawn once onto a long strip; each frame is a cheap crop of it."""

    def __init__(self, text: str, style: Style, width: int, height: int, speed_px_s: float):
        self.width, self.height, self.speed = width, height, speed_px_s
        size = int(height * 0.6)
        font = fonts.load(style.bold, size)
        text = nfc(text)
        gap = width // 3
        self.period = int(font.getlength(text)) + gap
        strip = Image.new("RGB", (self.period + width, height), (20, 20, 20))
        draw = ImageDraw.Draw(strip)
        y = (height - size * 1.25) / 2
        for x in range(0, self.period + width, self.period):  # repeated so any window of `width` is filled
            draw.text((x, y), text, font=font, fill=YELLOW)
        self.strip = strip

    def frame(self, t: float) -> Image.Image:
        x = int(t * self.speed) % self.period
        return self.strip.crop((x, 0, x + self.width, self.height))


def ticker_height(height: int) -> int:
    return max(20, round(height * 0.08))
