"""The Screen worker: one thread that renders what the board asks for and drives the backend, so a
1080p render, a PNG encode or a slow panel never holds up the core (and so never an alert's siren).

The board sends a `Compose` (latest wins); the worker renders it, keeps the header's clock right to the
minute and animates the ticker at the backend's frame rate, and reports back through `report`:
`FrameShown` and `VideoEnded` (drivers/reports.py).
"""

from __future__ import annotations

import io
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from PIL import Image

from ..priority import background
from ..reports import DisplayDevice, FrameShown, Report, VideoEnded
from . import render
from .base import Display

log = logging.getLogger("drivers.display.screen")


@dataclass
class Compose:
    token: int
    scene: dict  # a scene of PROTOCOL.md, or {"kind": "idle"} or {"kind": "alert", ...}
    media: Path | None = None
    ticker: str | None = None


def _trim() -> None:
    """Hand freed frame buffers back to the OS: glibc keeps large freed blocks in its heap otherwise, and a
    board that renders a few 8 MB frames a minute would hold tens of MB it no longer uses."""
    global _malloc_trim
    if _malloc_trim is None:
        import ctypes

        try:
            _malloc_trim = ctypes.CDLL(None).malloc_trim  # libc is mapped already; no ctypes.util (it spawns)
        except (OSError, AttributeError):  # not glibc (musl): nothing to do
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim: Any = None


class Screen:
    def __init__(self, backend: Display, style: render.Style, *, clock: Callable[[], float], tz: tzinfo,
                 report: Report, fps: float = 25.0, ticker_px_s: float = 120.0):
        self.backend, self.style, self.clock, self.tz, self.report = backend, style, clock, tz, report
        self.fps = min(fps, backend.max_fps)
        self.ticker_px_s = ticker_px_s
        self.q: queue.SimpleQueue[tuple] = queue.SimpleQueue()
        self.frame: Image.Image | None = None  # the canvas as last shown (upright), for screenshots
        self.spec: Compose | None = None
        self.on = True
        self.frames = 0  # frames handed to the backend (ticker frames included)
        self._ticker: render.Ticker | None = None
        self._ticker_text: str | None = None
        self._ticker_t0 = 0.0
        self._last_ticker = 0.0
        self._minute: int | None = None
        self._thread: threading.Thread | None = None
        self._alert_waiting = False
        style.superseded = lambda: self._alert_waiting and self._rendering is not None \
            and self._rendering.scene.get("kind") != "alert"
        self._rendering: Compose | None = None

    # --- called from the core --------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="screen", daemon=True)
        self._thread.start()

    def compose(self, spec: Compose) -> None:
        if spec.scene.get("kind") == "alert":
            self._alert_waiting = True  # a layout in progress on the worker gives way (render.Superseded)
        self.q.put(("compose", spec))

    def power(self, on: bool, done: Callable[[str | None, str | None], None]) -> None:
        """Panel on/off; `done(method, error)` from the worker."""
        self.q.put(("power", on, done))

    def screenshot(self, max_bytes: int, done: Callable[[bytes | None, tuple[int, int] | None], None]) -> None:
        self.q.put(("shot", max_bytes, done))

    def close(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self.q.put(("stop",))
            self._thread.join(timeout)

    # --- the worker --------------------------------------------------------------------------
    def _run(self) -> None:
        background()  # a frame may wait for a CPU; an alert's siren never waits behind a frame
        try:
            self.backend.start()
        except OSError as e:
            log.error("display %s cannot start: %s", self.backend.name, e)
            self.report(DisplayDevice(False, str(e)))
        while True:
            try:
                item = self.q.get(timeout=self._wait())
            except queue.Empty:
                item = None
            try:
                if item is not None:
                    if item[0] == "stop":
                        break
                    # Coalesce: of several compositions queued, only the newest is drawn.
                    while item[0] == "compose":
                        try:
                            nxt = self.q.get_nowait()
                        except queue.Empty:
                            break
                        if nxt[0] != "compose":
                            self._handle(item)
                        item = nxt
                    if item[0] == "stop":
                        break
                    self._handle(item)
                self._tick()
            except Exception:  # a bad frame must not kill the board
                log.exception("display worker")
        self.backend.stop_video()
        self.backend.close()

    def _handle(self, item: tuple) -> None:
        kind = item[0]
        if kind == "compose":
            self._compose(item[1])
        elif kind == "power":
            _, on, done = item
            try:
                method = self.backend.power(on)
                self.on = on
                done(method, None)
            except OSError as e:
                done(None, str(e))
        elif kind == "shot":
            _, max_bytes, done = item
            done(*self._png(max_bytes))

    def _wait(self) -> float:
        now = time.monotonic()
        waits = [60.0 - (self.clock() % 60.0) + 0.01]  # the header's minute
        if self._ticker is not None and self.on:
            waits.append(1.0 / self.fps - (now - self._last_ticker))
        return max(0.0, min(waits))

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), self.tz)

    def _compose(self, spec: Compose) -> None:
        prev, self.spec = self.spec, spec
        if prev is not None and prev.scene.get("kind") == "video" and prev.token != spec.token:
            self.backend.stop_video()
        w, h = self.backend.canvas
        band = render.ticker_height(h) if spec.ticker and spec.scene.get("kind") != "alert" else 0
        self._alert_waiting = False  # what was queued before this one was coalesced into it
        self._rendering = spec
        try:
            if spec.scene.get("kind") == "alert":
                base = render.alert(spec.scene, self.style, (w, h), self._now())
            else:
                base = render.scene(spec.scene, self.style, (w, h), self._now(), spec.media, reserve=band)
        except render.Superseded:  # the alert queued behind it is drawn next
            log.info("display: %s scene dropped unfinished for an alert", spec.scene.get("kind"))
            self.spec = prev
            return
        except Exception as e:  # a broken image file, say: the board skips it and reports it
            log.warning("cannot render %s scene: %s", spec.scene.get("kind"), e)
            self.report(FrameShown(spec.token, f"{type(e).__name__}: {e}", self.clock()))
            self.spec = prev
            return
        finally:
            self._rendering = None
        if band:
            if self._ticker is None or self._ticker_text != spec.ticker:
                self._ticker = render.Ticker(spec.ticker or "", self.style, w, band, self.ticker_px_s)
                self._ticker_text, self._ticker_t0 = spec.ticker, time.monotonic()
            base.paste(self._ticker.frame(time.monotonic() - self._ticker_t0), (0, h - band))
        else:
            self._ticker = None
        self._minute = int(self.clock() // 60)
        self._push(base)
        if spec.scene.get("kind") == "video" and spec.media is not None and (prev is None or prev.token != spec.token):
            token = spec.token
            self.backend.play_video(spec.media, lambda err: self.report(VideoEnded(token, err)))
        self.report(FrameShown(spec.token, None, self.clock()))
        _trim()

    def _push(self, frame: Image.Image, rows: tuple[int, int] | None = None) -> None:
        self.frame = frame
        if self.spec is not None and self.spec.scene.get("kind") == "video" and self.backend.draws_video:
            return  # VLC's picture is on the panel; the frame is kept for screenshots
        self.backend.show(frame, rows)
        self.frames += 1

    def _tick(self) -> None:
        """The periodic parts: the ticker's next position, the header's new minute."""
        if self.frame is None or self.spec is None or not self.on:
            return
        w, h = self.backend.canvas
        minute = int(self.clock() // 60)
        if minute != self._minute and self.style.header and self.spec.scene.get("kind") != "alert":
            self._minute = minute
            top = render.header_height(h)
            self.frame.paste(render.header(self.style, w, top, self._now()), (0, 0))
            self._push(self.frame, (0, top))
        if self._ticker is not None:
            now = time.monotonic()
            if now - self._last_ticker >= 1.0 / self.fps - 0.002:
                self._last_ticker = now
                band = self._ticker.height
                self.frame.paste(self._ticker.frame(now - self._ticker_t0), (0, h - band))
                self._push(self.frame, (h - band, h))

    def _png(self, max_bytes: int) -> tuple[bytes | None, tuple[int, int] | None]:
        """The current frame as PNG, scaled down until it fits `max_bytes`."""
        if self.frame is None:
            return None, None
        im = self.frame
        while True:
            buf = io.BytesIO()
            im.save(buf, format="PNG", optimize=False, compress_level=6)
            data = buf.getvalue()
            if len(data) <= max_bytes or im.width < 64:
                return data, im.size
            scale = max(0.3, min(0.9, (max_bytes / len(data)) ** 0.5))
            im = im.resize((max(1, int(im.width * scale)), max(1, int(im.height * scale))),
                           Image.Resampling.LANCZOS)

    def state(self) -> dict[str, Any]:
        return {"frames": self.frames, "panel_on": self.on, "animating": self._ticker is not None}
