"""`framebuffer` backend: frames written straight into `/dev/fbN` in the panel's own pixel format.

Geometry and format come from sysfs (`/sys/class/graphics/fbN`: `virtual_size`, `bits_per_pixel`,
`stride`), as fbset would report them: 16 bpp is RGB565, 24 is BGR888 and 32 is XRGB8888, all
little-endian as Linux framebuffers on ARM and x86 are. A ticker only rewrites its own rows.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, ImageMath

from drivers.errors import DriverError

from .base import Display
from .power import Power


def rgb565(im: Image.Image) -> bytes:
    r, g, b = im.convert("RGB").split()
    packed = ImageMath.lambda_eval(lambda a: ((a["r"] >> 3) << 11) | ((a["g"] >> 2) << 5) | (a["b"] >> 3),
                                   r=r, g=g, b=b)
    return packed.convert("I;16").tobytes()  # I;16 is little-endian


PACK = {
    16: rgb565,
    24: lambda im: im.convert("RGB").tobytes("raw", "BGR"),
    32: lambda im: im.convert("RGB").tobytes("raw", "BGRX"),  # bytes B,G,R,X = 0xXXRRGGBB little-endian
}


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


class Backend(Display):
    name = "framebuffer"
    max_fps = 25.0

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.device = Path(cfg.get("fb_device") or "/dev/fb0")
        self.sysfs = Path(cfg.get("fb_sysfs") or f"/sys/class/graphics/{self.device.name}")
        bpp, size = _read(self.sysfs / "bits_per_pixel"), _read(self.sysfs / "virtual_size")
        if bpp is None or size is None:
            raise DriverError(f"display.backend: framebuffer: no geometry in {self.sysfs} (is {self.device} a "
                              f"framebuffer? set display.fb_device)")
        self.bpp = int(bpp)
        if self.bpp not in PACK:
            raise DriverError(f"display.backend: framebuffer: {self.bpp} bits per pixel is not supported "
                              f"(16, 24 or 32)")
        w, h = (int(v) for v in size.split(","))
        self.panel = (w, h)
        self.stride = int(_read(self.sysfs / "stride") or w * self.bpp // 8)
        self.power_ctl = Power(cfg.get("power_method", "auto"), blank=self.sysfs / "blank")
        self.fd: int | None = None

    def start(self) -> None:
        self.fd = os.open(self.device, os.O_RDWR)

    def show(self, frame: Image.Image, rows: tuple[int, int] | None = None) -> None:
        phys = self.orient(frame)
        w, h = self.panel
        y0, y1 = 0, h
        if rows is not None and self.rotation in (0, 180):
            y0, y1 = rows if self.rotation == 0 else (h - rows[1], h - rows[0])
            phys = phys.crop((0, y0, w, y1))
        data = PACK[self.bpp](phys)
        line = w * self.bpp // 8
        assert self.fd is not None
        if line == self.stride:
            os.pwrite(self.fd, data, y0 * self.stride)
        else:  # padded lines: one write per line
            for i in range(y1 - y0):
                os.pwrite(self.fd, data[i * line:(i + 1) * line], (y0 + i) * self.stride)

    def close(self) -> None:
        super().close()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
