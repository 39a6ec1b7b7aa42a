"""`vlc` backend: full screen through libVLC on HDMI: videos as they are, still frames as an image VLC
holds on screen (`image-duration=-1`). Panel power by the Pi firmware or DPMS."""

from __future__ import annotations

import tempfile
from pathlib import Path

from PIL import Image

from .base import Display


class Backend(Display):
    name = "vlc"
    max_fps = 1.0  # each still is a new VLC media: fine for slides and the clock, coarse for a ticker
    draws_video = True

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.dir = Path(tempfile.mkdtemp(prefix="loa-display-"))
        self._flip = False

    def show(self, frame: Image.Image, rows: tuple[int, int] | None = None) -> None:
        # Two files in turn: VLC may still be reading the previous one when the next is written.
        self._flip = not self._flip
        path = self.dir / f"frame-{int(self._flip)}.png"
        self.orient(frame).save(path, format="PNG", compress_level=1)
        self.video.play(path, lambda error: None, fullscreen=True, options=(":image-duration=-1",))
