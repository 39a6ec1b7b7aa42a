"""One loudness for files and speech (docs/sound.md).

Each cached file and each rendered speech is measured once with ffmpeg's `ebur128` filter (EBU R128
integrated loudness and true peak; C code, about 0.6 % of the audio's duration on the dev box: see
scripts/bench_loudness), the result kept in a sidecar next to the cached item (`<file>.loudness`, JSON: it
survives restarts and goes when the item goes; a missing or unreadable one only means "measure again").
The player turns a measurement into the gain that brings the item to `audio.loudness_target_lufs` without
pushing its true peak over `audio.true_peak_db`; volume, zone volume and quiet hours multiply on top.

Threads: `prepare` and the measuring run on worker threads and post what they learn to the core thread,
which alone holds `known` (ARCHITECTURE.md: one owner of state). A play never waits for a measurement it
was told not to wait for: an item not measured yet plays at UNMEASURED_GAIN_DB and is measured meanwhile.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.audio import File, Pcm
from drivers.audio.base import CHANNELS, RATE

from ..messages import Call

log = logging.getLogger("agent.loudness")

SIDECAR = ".loudness"
VERSION = 1  # bump when how items are measured changes: older sidecars are measured again
# Unity: a gain of 1 cannot clip what the file does not already clip, and never plays an item louder than it
# was made; bulletins mastered for broadcast (-23 to -14 LUFS) land within 7 dB of the -16 target meanwhile.
UNMEASURED_GAIN_DB = 0.0
MAX_BOOST_DB = 30.0  # a near-silent item is not blown up into its own hiss
SILENT_LUFS = -70.0  # what ebur128 reports when no block passes its gate: nothing to level
MEASURE_TIMEOUT_S = 600.0
_SUMMARY = re.compile(r"Summary:.*?I:\s*(-?[\d.]+|-inf) LUFS.*?Peak:\s*(-?[\d.]+|-inf) dBFS", re.S)


class LoudnessError(RuntimeError):
    pass


@dataclass(frozen=True)
class Measure:
    lufs: float  # integrated loudness (LUFS); SILENT_LUFS for silence
    true_peak_db: float  # dBTP (4x oversampled), as ebur128 measures it

    def gain_db(self, target_lufs: float, peak_limit_db: float) -> float:
        """The gain that brings this item to the target, lowered so its true peak stays under the limit."""
        if self.lufs <= SILENT_LUFS:
            return min(0.0, peak_limit_db - self.true_peak_db)
        return min(target_lufs - self.lufs, peak_limit_db - self.true_peak_db, MAX_BOOST_DB)


def measure(src: Path | bytes) -> Measure:
    """Measure a file (as the ffmpeg decoder plays it: downmixed/upmixed to stereo) or S16LE stereo 48 kHz
    PCM. Slow (a subprocess over the whole item): worker threads only. Runs at a lower CPU priority, so the
    sink thread that feeds the sound card is never starved by it."""
    import subprocess  # a worker's import: not loaded by the idle agent

    args = ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-threads", "1"]
    if isinstance(src, bytes | bytearray | memoryview):
        args += ["-f", "s16le", "-ar", str(RATE), "-ac", str(CHANNELS), "-i", "pipe:0"]
        data: bytes | None = bytes(src)
    else:
        args += ["-i", str(src)]
        data = None
    args += ["-vn", "-af", "aformat=channel_layouts=stereo,ebur128=peak=true", "-f", "null", "-"]
    nice = shutil.which("nice")
    if nice:
        args = [nice, "-n", "10", *args]
    try:
        proc = subprocess.run(args, input=data, stdin=None if data is not None else subprocess.DEVNULL,
                              capture_output=True, timeout=MEASURE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LoudnessError(f"ffmpeg cannot measure: {e}") from e
    err = proc.stderr.decode(errors="replace")
    m = _SUMMARY.search(err)
    if proc.returncode != 0 or not m:
        last = err.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        raise LoudnessError(f"ffmpeg could not measure: {last[0][:200]}")
    lufs, peak = (max(float(x), -150.0) for x in m.groups())  # "-inf" for digital silence
    return Measure(lufs, peak)


def sidecar(path: str | Path) -> Path:
    return Path(f"{path}{SIDECAR}")


def read_sidecar(path: str | Path) -> Measure | None:
    """The stored measurement of a cached item; None when there is none or it cannot be trusted."""
    try:
        d = json.loads(sidecar(path).read_text())
        if d.get("v") != VERSION:
            return None
        m = Measure(float(d["lufs"]), float(d["true_peak_db"]))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return m if math.isfinite(m.lufs) and math.isfinite(m.true_peak_db) else None


def write_sidecar(path: str | Path, m: Measure) -> None:
    side = sidecar(path)
    tmp = side.with_name(side.name + ".tmp")
    tmp.write_text(json.dumps({"v": VERSION, "lufs": m.lufs, "true_peak_db": m.true_peak_db}))
    os.replace(tmp, side)  # a power cut leaves the old sidecar or the new one; a torn one reads as "measure again"


def key(media: Any) -> str | None:
    """The cached item a media plays from; None for what is not levelled (tones, the siren, streams, PCM
    assembled in memory)."""
    if isinstance(media, File):
        return media.path
    if isinstance(media, Pcm):
        return media.origin
    return None


def measure_item(item: str, media: Any) -> Measure:
    """Measure and store (worker thread). Speech is measured as the PCM that plays (its WAV may be mono)."""
    m = measure(media.data if isinstance(media, Pcm) else Path(item))
    try:
        write_sidecar(item, m)
    except OSError as e:  # a read-only or full disk: still used now, measured again after a restart
        log.warning("cannot store the loudness of %s: %s", item, e)
    return m


def measure_cached(path: Path) -> None:
    """Measure a file just cached, unless it already was (worker thread; a failure is only logged: the
    player measures again when it plays)."""
    if read_sidecar(path) is None:
        try:
            measure_item(str(path), File(str(path)))
        except LoudnessError as e:
            log.warning("cannot measure the loudness of %s: %s", path.name[:16], e)


class Levels:
    """The measurements the player knows (core thread) and the measuring (worker threads)."""

    def __init__(self, cfg: dict, post: Callable[[Any], None]):
        self.target = float(cfg["loudness_target_lufs"])
        self.peak_limit = float(cfg["true_peak_db"])
        self.post = post
        self.known: dict[str, Measure] = {}  # core thread only
        self._lock = threading.Lock()
        self._measuring: set[str] = set()  # items a worker is measuring now (any thread: under the lock)

    def gain_db(self, media: Any) -> float:
        """Core thread: the levelling gain for this media now. An item not known yet plays at
        UNMEASURED_GAIN_DB while a worker reads its sidecar or measures it for the next play."""
        item = key(media)
        if item is None:
            return 0.0
        m = self.known.get(item)
        if m is not None:
            return m.gain_db(self.target, self.peak_limit)
        self.later(media)
        return UNMEASURED_GAIN_DB

    def prepare(self, media: Any, *, wait: bool) -> None:
        """Worker thread, before the media is handed to the core: its stored measurement, or a measurement
        now (`wait`: a normal programme, whose start may wait ~1 % of its length) or on another worker."""
        item = key(media)
        if item is None:
            return
        m = read_sidecar(item)
        if m is None and wait and self._claim(item):
            m = self._measure(item, media)
        if m is not None:
            self.post(Call(lambda: self.known.__setitem__(item, m)))
        else:
            self.later(media)

    def later(self, media: Any) -> None:
        """Measure on a worker of its own, unless one is already at it (any thread)."""
        item = key(media)
        if item is None or not self._claim(item):
            return

        def run() -> None:
            m = read_sidecar(item) or self._measure(item, media)
            if m is not None:
                self.post(Call(lambda: self.known.__setitem__(item, m)))

        threading.Thread(target=run, name="loudness", daemon=True).start()

    def _claim(self, item: str) -> bool:
        with self._lock:
            if item in self._measuring:
                return False
            self._measuring.add(item)
            return True

    def _measure(self, item: str, media: Any) -> Measure | None:
        try:
            m = measure_item(item, media)
            log.info("loudness of %s: %.1f LUFS, true peak %.1f dBTP", Path(item).name[:16], m.lufs,
                     m.true_peak_db)
            return m
        except LoudnessError as e:
            log.warning("cannot measure the loudness of %s: %s", item, e)
            return None
        finally:
            with self._lock:
                self._measuring.discard(item)
