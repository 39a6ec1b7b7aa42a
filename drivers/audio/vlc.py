"""`vlc` backend: libVLC demuxes and decodes files and streams (HTTP, Icecast, HLS, RTSP).

VLC hands decoded PCM to our callbacks (amem), and the sink plays it through
the same pre-opened PortAudio output as tones: one owner of the sound device,
one volume, one place where preemption happens.
"""

from __future__ import annotations

import ctypes
import queue
import threading

from ..errors import DriverError
from .base import CHANNELS, RATE, Audio, BufferedTrack, File, Output, Stream, Track
from .portaudio import PortAudioOutput

_END = None


def _vlc():  # python-vlc loads libVLC: only on the first file or stream, not at start
    import vlc

    return vlc


def libvlc_version() -> str:
    """libVLC's version, loading it as the backends will (`loa doctor`); DriverError when it cannot load."""
    try:
        return _vlc().libvlc_get_version().decode()
    except Exception as e:  # a missing libvlc surfaces as OSError, NameError or NotImplementedError
        raise DriverError(f"libVLC cannot be loaded: {type(e).__name__}: {e}") from e


class VlcTrack(BufferedTrack):
    def __init__(self, instance: object, mrl: str, start_s: float, *, network_timeout_s: float):
        super().__init__(start_s)
        vlc = _vlc()
        self.q: queue.Queue[bytes | None] = queue.Queue(maxsize=64)  # ~1 s ahead; VLC waits when it is full
        self._closed = threading.Event()
        self.player = instance.media_player_new()  # type: ignore[attr-defined]
        # ctypes callbacks must stay referenced as long as VLC may call them.
        self._play_cb = vlc.CallbackDecorators.AudioPlayCb(self._on_samples)
        self.player.audio_set_callbacks(self._play_cb, None, None, None, None, None)
        self.player.audio_set_format("S16N", RATE, CHANNELS)
        media = instance.media_new(mrl)  # type: ignore[attr-defined]
        if start_s > 0:
            media.add_option(f":start-time={start_s:.3f}")
        media.add_option(f":network-caching={int(min(network_timeout_s, 3) * 1000)}")
        self.player.set_media(media)
        events = self.player.event_manager()
        events.event_attach(vlc.EventType.MediaPlayerEndReached, lambda e: self._end(None))
        events.event_attach(vlc.EventType.MediaPlayerEncounteredError, lambda e: self._end("VLC could not play it"))
        if self.player.play() != 0:
            self.error = "VLC refused to start"
            self._end(self.error)

    def _on_samples(self, opaque: object, samples: int, count: int, pts: int) -> None:
        # VLC's decoder thread: copy and queue; blocking here paces VLC like a real sound card would.
        try:
            data = ctypes.string_at(samples, count * CHANNELS * 2)
            while not self._closed.is_set():
                try:
                    self.q.put(data, timeout=0.2)
                    return
                except queue.Full:
                    continue
        except Exception:  # never let an exception into VLC's thread
            pass

    def _end(self, error: str | None) -> None:
        if error and not self.error:
            self.error = error
        try:
            self.q.put_nowait(_END)
        except queue.Full:
            threading.Thread(target=self.q.put, args=(_END,), daemon=True).start()

    def read(self, n: int, timeout: float) -> bytes | None:
        while len(self._buf) < n:
            try:
                data = self.q.get(timeout=timeout if not self._buf else 0)
            except queue.Empty:
                break
            if data is _END:
                if self._buf:
                    self.q.put(_END)  # deliver the tail first
                    break
                return None
            self._buf += data
        return self._take(n)

    def close(self) -> None:
        self._closed.set()
        # stop() waits for VLC's threads, which may be blocked on our queue: drain it meanwhile.
        stopper = threading.Thread(target=self.player.stop, daemon=True)
        stopper.start()
        while stopper.is_alive():
            try:
                self.q.get(timeout=0.05)
            except queue.Empty:
                pass
        self.player.release()


class Backend(Audio):
    name = "vlc"

    def __init__(self, cfg: dict, report: object):
        super().__init__(cfg, report)  # type: ignore[arg-type]
        self._instance: object = None

    def make_output(self) -> Output:
        return PortAudioOutput(self.cfg["device"])

    def decode(self, media: File | Stream, start_s: float) -> Track:
        if self._instance is None:
            self._instance = _vlc().Instance("--no-video", "--quiet", "--no-xlib", "--ignore-config",
                                          "--http-reconnect")
        mrl = media.url if isinstance(media, Stream) else media.path
        return VlcTrack(self._instance, mrl, 0.0 if isinstance(media, Stream) else start_s,
                        network_timeout_s=self.cfg["stall_s"])
