"""The alert flow (docs/architecture.md, flow 3): a verified alert (or CAP 1.2) preempts at its level, the
siren starts at once from memory while the spoken message renders on a worker, the pair repeats
`repeat` times until done, cancelled or expired; then whatever was playing resumes.

An alert whose command is still in the inbox when the agent restarts (power cut) is executed again by
the core's recovery, so it resumes unless it has expired; finished identifiers are remembered so a
repeated or replayed CAP identifier never plays twice.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .alerts import Alert, check_digest, from_cap, from_params, resource_bytes
from .audio import tones
from .audio.arbiter import Play
from .messages import Call
from .runtime import Result, Runtime

if TYPE_CHECKING:
    from .audio.player import Player
    from .audio.tts import Speaker
    from .display.board import Board
    from .envelope import Message
    from .media import MediaCache
    from .store import Store

log = logging.getLogger("agent.alerts")

SIREN_S = 6.0
MAX_REMEMBERED = 1000
MAX_RESOURCE_BYTES = 8 << 20  # a CAP resource's audio (its PCM is held in memory while the alert repeats)


class Alerts:
    def __init__(self, rt: Runtime, store: Store, *, player: Player, speaker: Speaker, cache: MediaCache,
                 board: Board | None):
        self.rt, self.store, self.player, self.speaker, self.cache, self.board = rt, store, player, speaker, cache, \
            board
        self.active: dict[str, Play] = {}
        self.done_ids: list[str] = store.get_json("alert_ids", [])

    def handle(self, msg: Message, params: dict) -> Result | None:
        dev = self.rt.cfg["device"]
        if "cap" in params:
            alert = from_cap(params["cap"], areas=dev["areas"], location=dev.get("location"),
                             repeat=params.get("repeat", 3), siren=params.get("siren", True))
            alert.announcements = params.get("announcements") or alert.announcements
        else:
            alert = from_params(params, msg.jti)
        if alert.msg_type in ("cancel", "update"):
            n = self.cancel(alert.references, "stopped")
            if alert.msg_type == "cancel":
                return Result(message=f"cancelled {n} alert(s)", result={"cancelled": n})
        if not alert.plays:
            return Result(message=f"CAP status {alert.status} is not played", result={"played": False})
        if alert.identifier in self.done_ids or alert.identifier in self.active:
            return Result(message=f"alert {alert.identifier} was already delivered", result={"played": False})
        if alert.expires is not None and alert.expires <= self.rt.clock():
            return Result("rejected", "expired", f"the alert expired at {alert.expires:.0f}")
        self.start(alert, msg)
        return None

    def start(self, alert: Alert, msg: Message) -> None:
        first = tones.tone("chime") if alert.drill else tones.tone("siren", SIREN_S)
        play = Play(id=msg.jti, source={"kind": "alert", "identifier": alert.identifier, "status": alert.status,
                                        "drill": alert.drill},
                    level=alert.level, repeat=alert.repeat, title=alert.headline, origin="alert", context=msg,
                    deadline=alert.expires, on_end=lambda play, reason, completed: self.ended(play, alert, reason,
                                                                                               completed))
        play.program = [first if alert.siren or alert.drill else None, None]
        if play.program[0] is None:
            play.program = [None]
        self.active[alert.identifier] = play
        self.player.submit(play)  # the siren first: speech is needed only when it ends
        self.rt.emit_event("alert.start", {"id": msg.jti, **alert.summary()})
        if self.board is not None:
            self.board.alert_started(alert.identifier, msg.jti, alert)
        self.player.render_later(play, len(play.program) - 1, lambda: self._message(alert))
        log.warning("ALERT %s (%s, %s): %s", alert.identifier, alert.status, alert.level, alert.headline)

    def _message(self, alert: Alert) -> Any:
        """The spoken part (worker thread): the named recordings or the attached audio if they check out, else
        the text by TTS (the text is never lost because a file is)."""
        for what, load in (("announcements", lambda: self._announcements(alert.announcements)),
                           ("audio", lambda: self._resource(alert.audio))):
            if not getattr(alert, what):
                continue
            try:
                return load()
            except Exception as e:
                error = str(e)
                log.error("alert %s: %s not played: %s; speaking the text", alert.identifier, what, error)
                self.rt.post(Call(lambda error=error: self.rt.emit_event("alert.resource_rejected", {
                    "identifier": alert.identifier, "error": error})))
        return self.speaker.speak(alert.speech() or alert.identifier, alert.lang)

    def _announcements(self, names: list[str]) -> Any:
        """The recordings, from the cache only: an alert never waits on a download (the prefetcher keeps them)."""
        from drivers.audio import Pcm

        catalogue = self.rt.cfg["announcements"]
        parts = []
        for name in names:
            entry = catalogue.get(name)
            if entry is None:
                raise ValueError(f"no announcement named {name!r} in the config's announcements")
            parts.append(_decode(self.cache.verified(entry["sha256"], entry.get("size")).read_bytes()).data)
        return Pcm(b"".join(parts))

    def _resource(self, audio: dict) -> Any:
        if audio.get("kind"):  # a protocol source (params.audio): only cached or fetchable files
            from .media import Downloader

            path = Downloader(self.cache).fetch(audio["url"], audio["sha256"], audio.get("size"))
            data = path.read_bytes()
        elif audio.get("deref"):
            data = resource_bytes(audio)
        else:  # a CAP <resource><uri>: through the one downloader, capped, to a file of its own
            import tempfile

            from .media import Downloader

            self.cache.dir.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.cache.dir, prefix=".cap-") as tmp:
                data = Downloader(self.cache).stream(audio["uri"], Path(tmp.name),
                                                     max_bytes=MAX_RESOURCE_BYTES).read_bytes()
            check_digest(data, audio.get("digest"))
        return _decode(data)

    def cancel(self, identifiers: list[str], reason: str) -> int:
        plays = [self.active[i] for i in identifiers if i in self.active]
        for play in plays:
            self.player.stop(id=play.id)
        return len(plays)

    def ended(self, play: Play, alert: Alert, reason: str, completed: bool) -> None:
        self.active.pop(alert.identifier, None)
        if self.board is not None:
            self.board.alert_ended(alert.identifier)
        self.done_ids = (self.done_ids + [alert.identifier])[-MAX_REMEMBERED:]
        self.store.put_json("alert_ids", self.done_ids)
        self.rt.emit_event("alert.end", {"id": play.id, "identifier": alert.identifier, "plays": play.plays_done,
                                           "cut_short": not completed, "reason": reason, "drill": alert.drill})


def _decode(data: bytes) -> Any:
    """Any file ffmpeg reads, as the PCM the outputs take."""
    import io

    from pydub import AudioSegment

    from drivers.audio import Pcm
    from drivers.audio.base import CHANNELS, RATE

    seg = AudioSegment.from_file(io.BytesIO(data)).set_frame_rate(RATE).set_channels(CHANNELS).set_sample_width(2)
    return Pcm(seg.raw_data)
