"""Panel power: HDMI through the Pi firmware (`vcgencmd display_power`), DPMS under X (`xset`), a
framebuffer's sysfs `blank` node, or a record of what would have happened (sim, for the png backend)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

log = logging.getLogger("drivers.display.power")

METHODS = ("auto", "vcgencmd", "dpms", "blank", "sim", "none")
FB_BLANK_POWERDOWN, FB_BLANK_UNBLANK = 4, 0


class Power:
    def __init__(self, method: str = "auto", *, blank: Path | None = None, record: Path | None = None):
        self.blank, self.record = blank, record
        if method == "auto":
            method = ("vcgencmd" if shutil.which("vcgencmd") else "dpms" if os.environ.get("DISPLAY")
                      and shutil.which("xset") else "blank" if blank is not None and blank.exists()
                      else "sim" if record is not None else "none")
        self.method = method
        self.history: list[tuple[float, bool]] = []

    def set(self, on: bool) -> str:
        if self.method == "vcgencmd":
            _run(["vcgencmd", "display_power", "1" if on else "0"])
        elif self.method == "dpms":
            _run(["xset", "dpms", "force", "on" if on else "off"])
        elif self.method == "blank" and self.blank is not None:
            self.blank.write_text(str(FB_BLANK_UNBLANK if on else FB_BLANK_POWERDOWN))
        self.history.append((time.time(), on))
        if self.record is not None:
            with open(self.record, "a") as f:
                f.write(json.dumps({"at": time.time(), "on": on, "method": self.method}) + "\n")
        return self.method


def _run(argv: list[str]) -> None:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        raise OSError(f"{' '.join(argv)} failed: {(r.stderr or r.stdout).strip()}")
