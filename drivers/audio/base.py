"""The audio driver interface: media, tracks, the output sink, and the Audio backend base.

A *track* yields S16LE stereo 48 kHz PCM in chunks; the *sink* thread writes the
current track's chunks to the *output* with the current gain, one 10 ms chunk
at a time, so a newer track takes over within one chunk. The driver reports
upward only by posting reports (drivers/reports.py: TrackStarted, TrackEnded, TrackStalled, AudioDevice),
never by calling into the core.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass

from ..reports import AudioDevice, Report, TrackEnded, TrackStalled, TrackStarted

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop  # C speed for the gain; deprecated in 3.11, `audioop-lts` provides it from 3.13
    except ImportError:  # pragma: no cover
        import audioop_lts as audioop  # type: ignore[no-redef]

log = logging.getLogger("drivers.audio")

RATE = 48000
CHANNELS = 2
WIDTH = 2
BPS = RATE * CHANNELS * WIDTH  # bytes per second
CHUNK = BPS // 100  # 10 ms: the preemption granularity


# --- what to play ---------------------------------------------------------------------
@dataclass(frozen=True)
class Pcm:
    """Samples in memory (tones, sirens, TTS): the urgent path, no disk, no process."""

    data: bytes
    loop_s: float | None = None  # repeat the data until this many seconds (a siren of any length)
    origin: str | None = None  # the cached file the samples were loaded from (speech), which the agent levels

    @property
    def duration_s(self) -> float:
        return self.loop_s if self.loop_s is not None else len(self.data) / BPS


@dataclass(frozen=True)
class File:
    path: str


@dataclass(frozen=True)
class Stream:
    url: str


Media = Pcm | File | Stream


# --- tracks ----------------------------------------------------------------------------
class Track(ABC):
    """A source of PCM chunks. `read` returns bytes, b"" when nothing came yet, None at the end."""

    def __init__(self, start_s: float = 0.0):
        self.start_s = start_s
        self.consumed = 0
        self.error: str | None = None

    @property
    def position_s(self) -> float:
        return self.start_s + self.consumed / BPS

    @abstractmethod
    def read(self, n: int, timeout: float) -> bytes | None: ...

    def close(self) -> None:
        """Release decoders; called from the sink thread when the track is left."""


class BufferedTrack(Track):
    """A track fed in pieces of any size (a pipe, VLC's callbacks), handed out in whole frames."""

    def __init__(self, start_s: float = 0.0):
        super().__init__(start_s)
        self._buf = b""

    def _take(self, n: int) -> bytes:
        n = min(n, len(self._buf)) // 4 * 4
        chunk, self._buf = self._buf[:n], self._buf[n:]
        return chunk


class PcmTrack(Track):
    def __init__(self, pcm: Pcm, start_s: float = 0.0):
        super().__init__(start_s)
        self.data = memoryview(pcm.data)
        self.total = int((pcm.loop_s if pcm.loop_s is not None else len(pcm.data) / BPS) * BPS) // 4 * 4
        self.offset = min(int(start_s * BPS) // 4 * 4, self.total)

    def read(self, n: int, timeout: float) -> bytes | None:
        left = self.total - self.offset
        if left <= 0:
            return None
        n = min(n, left)
        start = self.offset % len(self.data)
        out = bytes(self.data[start:start + n])
        while len(out) < n:  # wrap around a looped siren
            out += bytes(self.data[: n - len(out)])
        self.offset += n
        return out


# --- outputs -------------------------------------------------------------------------
class Output(ABC):
    """Where PCM goes: a real device (PortAudio) or nowhere at real-time pace (null)."""

    @abstractmethod
    def open(self) -> None:
        """Open the device ahead of need; raise OSError when there is none."""

    @abstractmethod
    def write(self, chunk: bytes) -> None:
        """Blocking, paced write; raise OSError when the device fails."""

    def idle(self) -> None:
        """Nothing to play for a while: let the device rest (stay open)."""

    def close(self) -> None:
        pass


class NullOutput(Output):
    """Plays nothing but takes real time, so the rest of the agent behaves as with a sound card."""

    def __init__(self) -> None:
        self._t = 0.0

    def open(self) -> None:
        pass

    def write(self, chunk: bytes) -> None:
        now = time.monotonic()
        self._t = max(self._t, now) + len(chunk) / BPS
        time.sleep(max(0.0, self._t - now - 0.02))  # keep ~20 ms "in the buffer", like a device

    def idle(self) -> None:
        self._t = 0.0


# --- the sink ----------------------------------------------------------------------------
class Sink:
    """One thread, one output, one current track."""

    def __init__(self, output: Output, report: Report, *, stall_s: float, retry_s: float = 2.0):
        self.output = output
        self.report = report
        self.stall_s = stall_s
        self.retry_s = retry_s
        self._cond = threading.Condition()
        self._track: Track | None = None
        self._token = 0
        self._gain = 1.0
        self._stop = False
        self.device_ok: bool | None = None
        self._thread = threading.Thread(target=self._run, name="audio-sink", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def play(self, token: int, track: Track, gain: float) -> None:
        with self._cond:
            old = self._track
            self._track, self._token, self._gain = track, token, gain
            self._cond.notify_all()
        if old is not None:
            old.close()

    def stop(self, token: int) -> float | None:
        """Stop `token` if it is current; its position (for a resume), else None."""
        with self._cond:
            if self._token != token or self._track is None:
                return None
            track, self._track = self._track, None
            self._cond.notify_all()
        track.close()
        return track.position_s

    def set_gain(self, token: int, gain: float) -> None:
        with self._cond:
            if self._token == token:
                self._gain = gain

    def close(self) -> None:
        with self._cond:
            self._stop = True
            track, self._track = self._track, None
            self._cond.notify_all()
        if track:
            track.close()
        self._thread.join(2)
        self.output.close()

    def _device(self, ok: bool, message: str) -> None:
        if ok != self.device_ok:
            self.device_ok = ok
            self.report(AudioDevice(ok, message))

    def _run(self) -> None:
        silence = bytes(CHUNK)
        while not self._stop:
            try:
                self.output.open()
                self._device(True, "audio output open")
            except OSError as e:
                self._device(False, f"audio output cannot be opened: {e}")
                self._fail_current(f"device_fault: {e}")
                with self._cond:
                    self._cond.wait(self.retry_s)
                continue
            try:
                self._play_loop(silence)
            except OSError as e:
                log.error("audio output failed: %s", e)
                self._device(False, f"audio output failed: {e}")
                self._fail_current(f"device_fault: {e}")
                self.output.close()
                with self._cond:
                    self._cond.wait(self.retry_s)

    def _fail_current(self, error: str) -> None:
        with self._cond:
            track, token, self._track = self._track, self._token, None
        if track is not None:
            track.close()
            self.report(TrackEnded(token, track.position_s, error))

    def _play_loop(self, silence: bytes) -> None:
        started_token = seen_token = -1
        last_data = time.monotonic()
        stalled = False
        while not self._stop:
            with self._cond:
                if self._track is None:
                    self.output.idle()
                    self._cond.wait(1.0)
                    continue
                track, token, gain = self._track, self._token, self._gain
            if token != seen_token:
                seen_token, last_data, stalled = token, time.monotonic(), False
            chunk = track.read(CHUNK, 0.05)
            if chunk is None:
                with self._cond:
                    if self._token == token:
                        self._track = None
                track.close()
                self.report(TrackEnded(token, track.position_s, track.error))
                continue
            if not chunk:
                if not stalled and time.monotonic() - last_data > self.stall_s:
                    stalled = True
                    self.report(TrackStalled(token, track.position_s))
                self.output.write(silence)  # keep the device fed while a stream catches up
                continue
            last_data, stalled = time.monotonic(), False
            track.consumed += len(chunk)
            self.output.write(chunk if gain == 1.0 else audioop.mul(chunk, WIDTH, gain))
            if token != started_token:
                started_token = token
                self.report(TrackStarted(token, time.monotonic()))


# --- the backend ---------------------------------------------------------------------------
class Audio(ABC):
    """A backend: an output plus decoders for files and streams. Tones and TTS are Pcm everywhere."""

    name = "base"

    def __init__(self, cfg: dict, report: Report):
        self.cfg = cfg
        self.report = report
        self.sink = Sink(self.make_output(), report, stall_s=cfg["stall_s"], retry_s=cfg["retry_s"])

    @abstractmethod
    def make_output(self) -> Output: ...

    @abstractmethod
    def decode(self, media: File | Stream, start_s: float) -> Track:
        """A track for a file or a stream (may start a decoder; never blocks for long)."""

    def start(self) -> None:
        """Open the output ahead of need (in the sink thread) so the first urgent sample never waits."""
        self.sink.start()

    def play(self, token: int, media: Media, *, start_s: float = 0.0, gain: float = 1.0) -> None:
        track = PcmTrack(media, start_s) if isinstance(media, Pcm) else self.decode(media, start_s)
        self.sink.play(token, track, gain)

    def stop(self, token: int) -> float | None:
        return self.sink.stop(token)

    def set_gain(self, token: int, gain: float) -> None:
        self.sink.set_gain(token, gain)

    def close(self) -> None:
        self.sink.close()
