"""The display driver interface, and what every backend shares: panel geometry, rotation, video via VLC
and panel power.

A backend only puts finished frames on a device. The Screen worker (screen.py) renders; the core never
waits on either.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from .power import Power
from .video import Video

log = logging.getLogger("drivers.display")

TRANSPOSE = {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_90}


class Display(ABC):
    name = "base"
    max_fps = 25.0  # how often a ticker may redraw on this device
    draws_video = False  # whether VLC's own window is the picture (else the frame shows a poster)

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.rotation: int = cfg.get("rotation", 0)
        self.panel: tuple[int, int] = (cfg.get("width", 1920), cfg.get("height", 1080))
        self.power_ctl = Power(cfg.get("power_method", "auto"))
        self.video = Video(cfg.get("vlc_args", []))

    @property
    def canvas(self) -> tuple[int, int]:
        """The logical size scenes are drawn at (the panel turned by its rotation)."""
        w, h = self.panel
        return (h, w) if self.rotation in (90, 270) else (w, h)

    def orient(self, frame: Image.Image) -> Image.Image:
        t = TRANSPOSE.get(self.rotation)
        return frame.transpose(t) if t is not None else frame

    def start(self) -> None:
        """Open the device (on the Screen's thread)."""

    @abstractmethod
    def show(self, frame: Image.Image, rows: tuple[int, int] | None = None) -> None:
        """Put a canvas-sized frame on the panel; `rows` (canvas y0, y1) when only that band changed."""

    def power(self, on: bool) -> str:
        """Panel on or off; the method that did it (or 'none')."""
        return self.power_ctl.set(on)

    def play_video(self, path: Path, on_end: Callable[[str | None], None]) -> None:
        self.video.play(path, on_end, fullscreen=self.draws_video)

    def stop_video(self) -> None:
        self.video.stop()

    def close(self) -> None:
        self.video.close()
