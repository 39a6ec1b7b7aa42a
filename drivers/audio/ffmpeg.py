"""A track decoded by an ffmpeg subprocess (files and HTTP/HLS/RTSP streams) into raw PCM on a pipe."""

from __future__ import annotations

import os
import select
import threading

from ..priority import background
from .base import CHANNELS, RATE, BufferedTrack


def stream_leveller(target_lufs: float, peak_db: float) -> str:
    """A slow automatic gain for live streams, which cannot be measured ahead (docs/sound.md): a gentle RMS
    compressor (4:1 from 20 dB under the target, 2 s attack, 9 s release) whose make-up gain keeps a stream at
    the target where it is, and lifts a quiet one, then a sample-peak limiter. Causal: it adds no start
    delay (a look-ahead normaliser such as dynaudnorm holds the first sample back by seconds)."""
    threshold, ratio = target_lufs - 20.0, 4.0
    makeup_db = (target_lufs - threshold) * (1 - 1 / ratio)  # a stream at the target comes out at the target
    return (f"acompressor=threshold={10 ** (threshold / 20):.5f}:ratio={ratio:g}:attack=2000:release=9000:"
            f"knee=2.8:detection=rms:makeup={10 ** (makeup_db / 20):.3f},"
            f"alimiter=limit={10 ** (peak_db / 20):.3f}:level=false")


class FfmpegTrack(BufferedTrack):
    def __init__(self, source: str, start_s: float = 0.0, *, stream: bool = False, timeout_s: float = 10.0,
                 filters: str | None = None):
        import subprocess  # loaded with the first file or stream, not at start (RSS)

        super().__init__(start_s)
        self.closed = False
        self._wake = os.pipe()  # close() wakes a read() that waits on ffmpeg, so the sink moves on at once
        args = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error"]
        if stream:
            # Give up on a dead socket after timeout_s; the core then moves to the next URL.
            args += ["-rw_timeout", str(int(timeout_s * 1e6))]
        if start_s > 0 and not stream:
            args += ["-ss", f"{start_s:.3f}"]
        args += ["-i", source, "-vn", *(["-af", filters] if filters else []), "-f", "s16le", "-acodec", "pcm_s16le",
                 "-ac", str(CHANNELS), "-ar", str(RATE), "pipe:1"]
        try:
            self.proc: subprocess.Popen | None = subprocess.Popen(args, stdout=subprocess.PIPE,
                                                                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        except OSError as e:
            self.proc = None
            self.error = f"cannot start ffmpeg: {e}"
            return
        # Decoding is background work: the sink reads ahead of the device, and a siren must not wait behind it.
        # Set before ffmpeg opens its input, so the threads it starts for decoding inherit it.
        background(self.proc.pid)

    def read(self, n: int, timeout: float) -> bytes | None:
        if self.proc is None or self.closed:
            return None
        out = self.proc.stdout
        assert out is not None
        while len(self._buf) < n:
            ready, _, _ = select.select([out, self._wake[0]], [], [], timeout if not self._buf else 0)
            if self.closed:
                return None  # left for another track (a siren): not waiting for this decoder to die
            if not ready:
                break
            data = os.read(out.fileno(), max(n, 65536))
            if not data:
                if self._buf:
                    break
                self._finish()
                return None
            self._buf += data
        return self._take(n)

    def _finish(self) -> None:
        assert self.proc is not None
        rc = self.proc.wait()
        if rc != 0 and self.error is None:
            err = (self.proc.stderr.read() if self.proc.stderr else b"").decode(errors="replace").strip()
            self.error = err.splitlines()[-1] if err else f"ffmpeg exited with {rc}"

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        os.write(self._wake[1], b"\0")
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            # Reaped on a thread: the caller may be the core handing the sink a siren, which must not wait for a
            # decoder (at nice 10, maybe under a spent CPU quota) to finish dying.
            threading.Thread(target=self.proc.wait, name="ffmpeg-reap", daemon=True).start()

    def __del__(self) -> None:
        # Only once no thread can be in read(): closing the wake pipe earlier could fail the sink's select.
        for fd in getattr(self, "_wake", ()):
            try:
                os.close(fd)
            except OSError:
                pass
