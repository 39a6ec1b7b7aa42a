"""Video scenes through libVLC (python-vlc): muted (sound belongs to the audio arbiter), full screen where
the backend draws with VLC; `display.vlc_args` chooses the output (e.g. `--vout=dummy` in tests,
`--vout=drm_vout` on a Pi console)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("drivers.display.video")


class Video:
    def __init__(self, args: list[str]):
        self.args = list(args)
        self._instance: Any = None
        self._player: Any = None
        self._lock = threading.Lock()

    def _vlc(self) -> Any:
        import vlc  # libVLC loads on the first video, not at start

        if self._instance is None:
            self._instance = vlc.Instance("--no-audio", "--quiet", "--ignore-config", "--no-video-title-show",
                                          *self.args)
            if self._instance is None:
                raise RuntimeError(f"libVLC refused its arguments: {' '.join(self.args)}")
        return vlc

    def play(self, path: Path | str, on_end: Callable[[str | None], None], *, fullscreen: bool = True,
             options: tuple[str, ...] = ()) -> None:
        """Start playing; `on_end(error)` is called once from VLC's thread when it ends or fails."""
        self.stop()
        vlc = self._vlc()
        fired = threading.Event()

        def end(error: str | None) -> None:
            if not fired.is_set():
                fired.set()
                on_end(error)

        with self._lock:
            player = self._instance.media_player_new()
            media = self._instance.media_new(str(path))
            for opt in options:
                media.add_option(opt)
            player.set_media(media)
            player.set_fullscreen(fullscreen)
            events = player.event_manager()
            events.event_attach(vlc.EventType.MediaPlayerEndReached, lambda e: end(None))
            events.event_attach(vlc.EventType.MediaPlayerEncounteredError, lambda e: end("VLC could not play it"))
            self._player = player
            if player.play() != 0:
                end("VLC refused to start")

    def state(self) -> dict | None:
        with self._lock:
            p = self._player
            if p is None:
                return None
            return {"state": str(p.get_state()).split(".")[-1], "time_ms": p.get_time(), "length_ms": p.get_length()}

    def stop(self) -> None:
        with self._lock:
            player, self._player = self._player, None
        if player is not None:
            # stop() joins VLC's threads; never from one of VLC's own callbacks (they only post).
            player.stop()
            player.release()

    def close(self) -> None:
        self.stop()
        if self._instance is not None:
            self._instance.release()
            self._instance = None
