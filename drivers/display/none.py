"""`none` backend: no panel. The board still keeps its playlist, events and screenshots."""

from __future__ import annotations

from PIL import Image

from .base import Display
from .power import Power


class Backend(Display):
    name = "none"
    max_fps = 1.0

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.power_ctl = Power("none")

    def show(self, frame: Image.Image, rows: tuple[int, int] | None = None) -> None:
        pass
