"""Real ALSA through a file tap (ARCHITECTURE.md): the agent's default PCM writes raw samples to a file
that a reader thread follows, time-stamping when sound arrives; helpers analyse what came out.

The pipe is paced at real time by tests/support/pacer.py (as `pv -L` would, but without burst credit after
idle spells, which `pv` grants and which made a programme after a pause "play" in no time)."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .measure import first_loud, wait_quiet

RATE = 48000
BLOCK = RATE // 100  # 10 ms of frames
ACTIVE_RMS = 300.0


@dataclass
class Run:
    start_s: float  # offset in the tap (seconds of audio since the tap began)
    duration_s: float
    freq: float  # median frequency over the run's blocks (Hz)


class Tap:
    def __init__(self, home: Path, paced: bool = True):
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.raw = home / "tap.raw"
        self.raw.write_bytes(b"")
        pacer = Path(__file__).with_name("pacer.py")
        sink = f"{sys.executable} {pacer} {self.raw}" if paced else f"cat >> {self.raw}"
        (home / ".asoundrc").write_text(
            'pcm.!default { type plug; slave { pcm "tap"; format S16_LE; rate 48000; channels 2 } }\n'
            f'pcm.tap {{ type file; slave.pcm "null"; file "|{sink}"; format "raw" }}\n')
        self.data = bytearray()
        self.arrivals: list[tuple[float, int]] = []  # (monotonic time, total bytes after this read)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    @property
    def env(self) -> dict[str, str]:
        return {"HOME": str(self.home)}

    def _follow(self) -> None:
        with open(self.raw, "rb") as f:
            while not self._stop.is_set():
                chunk = f.read(1 << 16)
                if not chunk:
                    time.sleep(0.003)  # following a file another process appends to: nothing to wait on
                    continue
                with self._cond:
                    self.data += chunk
                    self.arrivals.append((time.monotonic(), len(self.data)))
                    self._cond.notify_all()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def mark(self) -> int:
        with self._cond:
            return len(self.data)

    def left(self, start: int = 0) -> np.ndarray:
        """The left channel from byte offset `start`."""
        with self._cond:
            raw = bytes(self.data[start:])
        return np.frombuffer(raw[: len(raw) // 4 * 4], dtype="<i2")[0::2]

    def wait_for(self, pred, timeout: float = 20.0, start: int = 0):
        """Wait until pred(runs) is truthy, re-checking as audio arrives; returns its value."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                self._cond.release()
                try:
                    value = pred(runs(self.left(start)))
                finally:
                    self._cond.acquire()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"tap: condition not met in {timeout} s; runs: "
                                         f"{runs(self.left(start))}")
                self._cond.wait(min(left, 0.1))

    def arrival_of(self, offset_bytes: int) -> float | None:
        """When the byte at this offset reached the tap (monotonic), from the reader's records."""
        with self._cond:
            for t, total in self.arrivals:
                if total > offset_bytes:
                    return t
        return None


def blocks(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rms, frequency) per 10 ms block; frequency from zero crossings."""
    n = len(samples) // BLOCK
    b = samples[: n * BLOCK].astype(np.float64).reshape(n, BLOCK)
    rms = np.sqrt((b * b).mean(axis=1))
    crossings = (np.signbit(b[:, 1:]) != np.signbit(b[:, :-1])).sum(axis=1)
    return rms, crossings / 2 / 0.01


def runs(samples: np.ndarray, tolerance: float = 0.06) -> list[Run]:
    """Consecutive fully active blocks of about one frequency."""
    rms, freq = blocks(samples)
    result: list[Run] = []
    cur: list[float] = []
    start = 0

    def close() -> None:
        if len(cur) >= 3:  # the run's frequency from its crossings over the whole span: precise
            span = samples[start * BLOCK:(start + len(cur)) * BLOCK]
            crossings = int((np.signbit(span[1:]) != np.signbit(span[:-1])).sum())
            result.append(Run(round(start * 0.01, 2), round(len(cur) * 0.01, 2),
                              round(crossings / 2 / (len(span) / RATE), 1)))

    for i in range(len(rms)):
        active = rms[i] > ACTIVE_RMS
        ref = np.median(cur[-20:]) if cur else 0.0
        # One zero crossing more or less in a 10 ms block is 50 Hz: never split a run on that.
        if active and cur and abs(freq[i] - ref) <= max(tolerance * ref, 60.0):
            cur.append(freq[i])
            continue
        close()
        cur, start = ([freq[i]], i) if active else ([], i)
    close()
    return result


def total(rs: list[Run], freq: float, tolerance: float = 0.05) -> float:
    return round(sum(r.duration_s for r in rs if abs(r.freq - freq) <= tolerance * freq), 2)


def active_seconds(samples: np.ndarray) -> float:
    rms, _ = blocks(samples)
    return round(float((rms > ACTIVE_RMS).sum()) * 0.01, 2)


def first_active_offset(samples: np.ndarray) -> int | None:
    """Byte offset (in the stereo stream) of the first active block."""
    rms, _ = blocks(samples)
    idx = np.flatnonzero(rms > ACTIVE_RMS)
    return int(idx[0]) * BLOCK * 4 if len(idx) else None


def last_active_offset(samples: np.ndarray) -> int | None:
    rms, _ = blocks(samples)
    idx = np.flatnonzero(rms > ACTIVE_RMS)
    return (int(idx[-1]) + 1) * BLOCK * 4 if len(idx) else None


class FineTap(Tap):
    """The tests' tap, followed every 0.5 ms instead of 3 ms, so an arrival is timed to within 0.5 ms."""

    POLL_S = 0.0005

    def _follow(self) -> None:
        with open(self.raw, "rb") as f:
            while not self._stop.is_set():
                chunk = f.read(1 << 16)
                if not chunk:
                    time.sleep(self.POLL_S)  # following a file another process appends to: nothing to wait on
                    continue
                now = time.monotonic()
                with self._cond:
                    self.data += chunk
                    self.arrivals.append((now, len(self.data)))
                    self._cond.notify_all()

    def last_arrival(self) -> float:
        with self._cond:
            return self.arrivals[-1][0] if self.arrivals else 0.0

    def wait_quiet(self, quiet_s: float = 0.3, timeout: float = 60.0) -> None:
        wait_quiet(self.last_arrival, quiet_s, timeout)

    def first_sound(self, mark: int, timeout: float = 10.0) -> tuple[float, int]:
        """(arrival time, byte offset) of the first non-zero sample written after byte `mark`."""
        with self._cond:
            if not self._cond.wait_for(lambda: first_loud(self.data, mark, self.arrivals) is not None, timeout):
                raise TimeoutError(f"no sound at the tap within {timeout} s")
            return first_loud(self.data, mark, self.arrivals)
