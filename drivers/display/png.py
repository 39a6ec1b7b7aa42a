"""`png` backend: the current frame written to `display.png_dir/frame.png` (atomically: a reader never
sees half a file). For tests, labs and remote checks; panel power is recorded in `power.jsonl`."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from .base import Display
from .power import Power


class Backend(Display):
    name = "png"
    max_fps = 2.0  # PNG encoding of a full frame is costly; a ticker is written at this rate

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        if not cfg.get("png_dir"):
            raise ValueError("display.png_dir is required by the png backend")
        self.dir = Path(cfg["png_dir"])
        self.power_ctl = Power("sim", record=self.dir / "power.jsonl")

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)

    def show(self, frame: Image.Image, rows: tuple[int, int] | None = None) -> None:
        tmp = self.dir / ".frame.png.tmp"
        self.orient(frame).save(tmp, format="PNG", compress_level=1)
        os.replace(tmp, self.dir / "frame.png")
