"""The player: the core's owner of sound. Turns arbiter decisions into driver calls, relay sequencing,
proof-of-play events and the final acks of `play` commands. Runs on the core thread only; slow work
(TTS synthesis, hashing a cached file) runs on a worker thread that posts its result back.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers.audio import Audio, File, Stream
from drivers.gpio.base import Gpio
from drivers.priority import background
from drivers.reports import AudioDevice, TrackEnded, TrackStalled, TrackStarted

from ..errors import LoaError
from ..i18n import Msg
from ..media import MediaCache, MediaError
from ..messages import Call
from ..runtime import Result, Runtime
from ..selftest import CALIBRATION_FILE
from ..timeutil import active_window
from . import tones
from .amp import Amp
from .arbiter import Action, Arbiter, Play
from .loudness import Levels
from .onair import OnAir
from .tts import Speaker, TtsError

if TYPE_CHECKING:
    from ..store import Store

log = logging.getLogger("agent.player")


class PlayError(LoaError, RuntimeError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class Player:
    def __init__(self, rt: Runtime, store: Store, *, audio: Audio, gpio: Gpio, amp: Amp, cache: MediaCache,
                 speaker: Speaker):
        self.rt = rt
        self.store = store
        self.cfg = rt.cfg["audio"]
        self.audio, self.gpio, self.amp, self.cache, self.speaker = audio, gpio, amp, cache, speaker
        tones.use_cache(Path(rt.cfg["paths"]["state_dir"]) / "tones")
        self.arbiter = Arbiter()
        self.levels = Levels(self.cfg, rt.post)
        self.onair = OnAir(rt, Path(rt.cfg["paths"]["state_dir"]) / CALIBRATION_FILE)
        self.tokens = itertools.count(1)
        self.volume: int = store.get_json("audio_volume", self.cfg["default_volume"])
        self.zone_volume: dict[str, int] = {z["name"]: z.get("volume", 100) for z in rt.cfg["zones"]}
        self.zone_volume.update(store.get_json("zone_volume", {}))
        self._timers: dict[int, Any] = {}  # token -> deadline timer

    # --- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        """After READY: render tones and open the output, so the first emergency never waits."""
        tones.warm_up()
        self.audio.start()

    def close(self) -> None:
        for p in self.arbiter.all():
            self._finish(p, "stopped", completed=False, note="agent stopping")
        self.audio.close()
        self.amp.all_off()
        self.gpio.close()

    # --- submitting ---------------------------------------------------------------------
    def submit(self, play: Play) -> None:
        """Check quiet hours, resolve the media (now, or on a worker), then hand it to the arbiter."""
        window = active_window(self.rt.cfg["quiet_hours"], self.rt.clock(), self.rt.cfg["device"]["tz"])
        if window and play.level == "normal":
            raise PlayError("quiet_hours", f"quiet hours {window['from']}-{window['to']}: normal programmes "
                                           "do not play now")
        kind = play.source.get("kind")
        if play.program is not None:
            play.media = play.program[0]
        elif kind == "tone":
            play.media = tones.tone(play.source["name"], play.source.get("duration_s"))
        elif kind == "stream":
            play.media = Stream(play.source["urls"][0])
            play.stream = {"index": 0, "rounds": 0, "got_audio": False}
        if play.media is not None or play.program is not None:  # a program's later parts arrive as they render
            self._apply(self.arbiter.submit(play))
            return
        threading.Thread(target=self._resolve, args=(play,), name="media-resolve", daemon=True).start()

    def _resolve(self, play: Play) -> None:
        # A worker thread: only local reads and espeak-ng; the answer goes back through the core's queue.
        try:
            src = play.source
            if src["kind"] == "tts":
                media: Any = self.speaker.speak(src["text"], src.get("lang", "vi"))
            else:
                media = File(str(self._cached(src)))
            # Speech of a normal programme waits for its measurement (~1 % of its length, after espeak-ng took
            # longer); a file, or anything urgent, plays at once and is measured meanwhile.
            self.levels.prepare(media, wait=play.level == "normal" and src["kind"] == "tts")
            self.rt.post(Call(lambda: self._resolved(play, media, None)))
        except (MediaError, TtsError, OSError) as e:
            error = (getattr(e, "code", "media_unavailable"), str(e))
            self.rt.post(Call(lambda: self._resolved(play, None, error)))

    def _cached(self, src: dict) -> Path:
        """The verified cached file; fetched now (on this worker) when it is missing but has a URL."""
        from ..media import Downloader

        try:
            path = self.cache.verified(src["sha256"], src.get("size"))
        except MediaError as e:
            if "not in the cache" not in str(e):
                raise  # corrupt: reported, moved aside; the prefetcher fetches a fresh copy later
            path = Downloader(self.cache).fetch(src["url"], src["sha256"], src.get("size"))
        self.cache.touch(src["sha256"])
        return path

    def _resolved(self, play: Play, media: Any, error: tuple[str, str] | None) -> None:
        if error:
            log.warning("[%s] cannot play: %s", play.id, error[1])
            self.rt.emit_event("media.rejected", {"id": play.id, "source": _brief(play.source), "code": error[0],
                                                    "message": error[1], "origin": play.origin,
                                                    "level": play.level})
            self._answer(play, "failed", error[0], error[1], {"completed": False, "reason": "failed"})
            return
        play.media = media
        self._apply(self.arbiter.submit(play))

    # --- arbiter actions -------------------------------------------------------------------
    def _apply(self, actions: list[Action]) -> None:
        for a in actions:
            if a.kind == "start":
                self._start(a.play)
            elif a.kind == "suspend":
                self._suspend(a.play)
            elif a.kind == "end":
                self._finish(a.play, a.reason, completed=False)

    def _start(self, play: Play) -> None:
        now = self.rt.clock()
        if play.deadline is not None and now >= play.deadline:
            self._finish(play, "expired", completed=False, advance=True)
            return
        play.token = next(self.tokens)
        wait = self.amp.engage(play.zones, hold=not play.engaged)
        play.engaged = True
        if wait > 0 and play.level != "emergency":
            # The relay warms up first; an emergency does not wait (its siren's start covers the warm-up).
            token = play.token
            self.rt.call_later(wait, lambda: self._begin(play) if play.token == token else None)
        else:
            self._begin(play)

    def _release(self, play: Play) -> None:
        """Let go of the play's relays, once, and only if it ever took them (a play that waited never did)."""
        if play.engaged:
            play.engaged = False
            self.amp.release(play.zones)

    def _begin(self, play: Play) -> None:
        if self.arbiter.current is not play:
            return
        if play.program is not None:
            play.media = play.program[play.segment]
            if play.media is None:
                return  # this segment (e.g. the speech) is still being rendered: program_ready starts it
        media = play.media
        start = play.position_s if not isinstance(media, Stream) else 0.0
        play.run_start_s = start
        play.level_db = self.levels.gain_db(media)
        self.audio.play(play.token, media, start_s=start, gain=self._gain(play))
        if play.level == "emergency" and play.started_at is None:
            log.debug("[%s] urgent path: handed=%.6f", play.id, time.monotonic())  # stage stamp (bench_alert)

    def _silence(self, play: Play) -> None:
        """Stop the driver for this play and count what it played."""
        self.onair.silenced(play)
        pos = self.audio.stop(play.token)
        if pos is not None:
            self._count(play, pos)

    def _count(self, play: Play, position_s: float) -> None:
        ran = max(0.0, position_s - play.run_start_s)
        if ran > 0:
            now = self.rt.clock()
            play.runs.append((round(now - ran, 3), round(now, 3)))
        play.played_s += ran
        play.run_start_s = position_s
        if not isinstance(play.media, Stream):
            play.position_s = position_s

    def _suspend(self, play: Play) -> None:
        self._silence(play)
        log.info("[%s] suspended at %.1f s by a higher level", play.id, play.position_s)

    def _finish(self, play: Play, reason: str, *, completed: bool, note: str = "", advance: bool = False) -> None:
        """End a play for good: silence it, release relays, proof of play, the final ack."""
        # Silenced whether or not the arbiter still holds it (a `stop` has already taken it off): the driver
        # ignores a token that is not sounding, and counts the seconds of one that is.
        self._silence(play)
        self.rt.cancel(self._timers.pop(id(play), None))
        self._release(play)
        seconds = round(play.played_s, 2)
        self._end_proof(play, reason, completed)
        log.info("[%s] ended: %s%s", play.id, reason, f" ({note})" if note else "")
        if play.on_end is not None:
            play.on_end(play, reason, completed)
        self._answer(play, "done", "ok", note or reason, {"completed": completed, "reason": reason,
                                                          "seconds": seconds, "plays": play.plays_done})
        if advance or self.arbiter.current is play:
            self._apply(self.arbiter.ended(play))

    def _answer(self, play: Play, status: str, code: str, message: str, result: dict) -> None:
        if play.context is not None:
            if callable(play.context):  # an internal play (the self-test) is answered by a callback
                play.context(Result(status, code, message, result))
            else:
                self.rt.complete(play.context, Result(status, code, message, result))

    def _proof(self, play: Play) -> dict:
        return proof_of_play(play, self.amp.names(play.zones))

    def _end_proof(self, play: Play, reason: str, completed: bool, **extra: str) -> None:
        """`play.end` for a play that made a sound: what sounded (`seconds`, and when: `runs`, which the as-run
        ledger is built from) and how it ended."""
        if play.started_at is not None:
            self.rt.emit_event("play.end", {**self._proof(play), "ended": self.rt.clock(),
                                              "seconds": round(play.played_s, 2), "completed": completed,
                                              "reason": reason, "plays": play.plays_done, "runs": play.runs, **extra})

    # --- what the driver reports (posted to the core) ---------------------------------------
    def _current(self, token: int) -> Play | None:
        cur = self.arbiter.current
        return cur if cur is not None and cur.token == token else None

    def on_started(self, report: TrackStarted) -> None:
        play = self._current(report.token)
        if play is None:
            return
        if isinstance(play.media, Stream):
            play.stream["got_audio"] = True
            play.stream["rounds"] = 0
        if play.started_at is None:
            if play.level == "emergency":
                log.debug("[%s] urgent path: sink=%.6f", play.id, report.t_first)  # stage stamp (bench_alert)
            play.started_at = self.rt.clock()
            if play.duration_s is not None and play.deadline is None:
                play.deadline = play.started_at + play.duration_s  # a command's window opens at its first sample
            if play.deadline is not None:  # a schedule slot's window was fixed by the schedule
                self._timers[id(play)] = self.rt.call_later(max(0.0, play.deadline - play.started_at),
                                                              lambda: self._window_over(play))
            self.rt.emit_event("play.start", self._proof(play))
            self.onair.started(play, self.amp.names(play.zones), self.effective_volume(play))
            log.info("[%s] playing %s at %s", play.id, _brief(play.source), play.level)

    def _window_over(self, play: Play) -> None:
        self._timers.pop(id(play), None)
        if play in self.arbiter.all():
            if self.arbiter.current is play:
                self._finish(play, "finished", completed=True, note="duration reached")
            else:
                self._apply(self.arbiter.stop(lambda p: p is play, "expired"))

    def on_ended(self, report: TrackEnded) -> None:
        play, error = self._current(report.token), report.error
        if play is None:
            return
        self._count(play, report.position_s)
        if isinstance(play.media, Stream):
            self._next_url(play, error or "the stream ended")
            return
        if error:
            code = "device_fault" if error.startswith("device_fault") else "media_unavailable"
            log.error("[%s] playback failed: %s", play.id, error)
            self._release(play)
            self._answer(play, "failed", code, error, {"completed": False, "reason": "failed"})
            self._end_proof(play, "failed", False, error=error)
            self._apply(self.arbiter.ended(play))
            return
        last_segment = play.program is None or play.segment + 1 >= len(play.program)
        if last_segment:
            play.plays_done += 1
        if not last_segment or play.plays_done < play.repeat:
            play.segment = play.segment + 1 if not last_segment else 0
            play.position_s = play.run_start_s = 0.0
            play.token = next(self.tokens)
            self._begin(play)
            return
        self._finish(play, "finished", completed=True)

    def program_ready(self, play: Play, index: int, media: Any) -> None:
        """A segment rendered on a worker (speech, a fetched resource) is ready; start it if it is awaited."""
        if play.program is None:
            return
        play.program[index] = media
        if self.arbiter.current is play and play.segment == index and play.media is None:
            self._begin(play)  # it was waiting for exactly this segment

    def render_later(self, play: Play, index: int, work: Callable[[], Any]) -> None:
        """Run `work` (slow: espeak-ng, a download) on a worker; its media fills segment `index`."""
        def run() -> None:
            if index > 0:  # a part that plays after the first (speech after the siren): the siren comes first
                background()
            try:
                media = work()
                self.levels.prepare(media, wait=False)
            except Exception as e:  # the worker reports; the alert goes on with what it has
                log.error("[%s] cannot prepare part %d: %s", play.id, index, e)
                media = tones.tone("chime")
            self.rt.post(Call(lambda: self.program_ready(play, index, media)))

        threading.Thread(target=run, name="render", daemon=True).start()

    def on_stalled(self, report: TrackStalled) -> None:
        play = self._current(report.token)
        if play is not None and isinstance(play.media, Stream):
            self._next_url(play, f"no audio for {self.cfg['stall_s']:g} s")

    def _next_url(self, play: Play, why: str) -> None:
        st = play.stream
        urls = play.source["urls"]
        self._silence(play)
        log.warning("[%s] stream %s failed: %s", play.id, urls[st["index"]], why)
        st["index"] = (st["index"] + 1) % len(urls)
        if st["index"] == 0:
            st["rounds"] += 1
        # Give up after stream_rounds rounds in which no URL gave audio; a window (duration_s) keeps trying
        # only once the stream had played.
        if st["rounds"] >= self.cfg["stream_rounds"] and (play.duration_s is None or not st["got_audio"]):
            self.rt.faults.raise_("stream_down", Msg("no URL of stream %(id)s answers", id=play.id))
            self._answer(play, "failed", "media_unavailable", f"no stream URL worked: {why}",
                         {"completed": False, "reason": "failed"})
            self._release(play)
            self._end_proof(play, "failed", False, error=why)
            self.rt.cancel(self._timers.pop(id(play), None))
            self._apply(self.arbiter.ended(play))
            return
        play.media = Stream(urls[st["index"]])
        play.token = next(self.tokens)
        delay = 0.0 if st["index"] else min(30.0, self.cfg["retry_s"] * 2 ** (st["rounds"] - 1))
        token = play.token
        self.rt.call_later(delay, lambda: self._begin(play) if play.token == token else None)

    def on_device(self, report: AudioDevice) -> None:
        self.rt.faults.set("audio_device", None if report.ok else report.message)

    # --- commands ----------------------------------------------------------------------
    def stop(self, *, id: str | None = None, level: str | None = None) -> int:
        if id is not None:
            pred: Callable[[Play], bool] = lambda p: p.id == id  # noqa: E731
        elif level is not None:
            pred = lambda p: p.level == level  # noqa: E731
        else:
            pred = lambda p: p.level != "emergency"  # noqa: E731
        actions = self.arbiter.stop(pred)
        ended = [a for a in actions if a.kind == "end"]
        for a in ended:
            self._finish(a.play, "stopped", completed=False)
        self._apply([a for a in actions if a.kind != "end"])
        return len(ended)

    def set_volume(self, volume: int, zones: list[str] | None) -> None:
        if zones:
            for z in self.amp.names(zones):
                self.zone_volume[z] = volume
            self.store.put_json("zone_volume", self.zone_volume)
        else:
            self.volume = volume
            self.store.put_json("audio_volume", volume)
        cur = self.arbiter.current
        if cur is not None:
            self.audio.set_gain(cur.token, self._gain(cur))

    def effective_volume(self, play: Play) -> int:
        v = min(play.volume if play.volume is not None else self.volume, self.cfg["max_volume"])
        window = active_window(self.rt.cfg["quiet_hours"], self.rt.clock(), self.rt.cfg["device"]["tz"])
        if window and play.level == "priority":
            v = min(v, window["max_volume"])
        zones = self.amp.names(play.zones)
        return round(v * max(self.zone_volume.get(z, 100) for z in zones) / 100) if zones else v

    def _gain(self, play: Play) -> float:
        # Volume is roughly perceptual (50 sounds about half as loud), on top of the levelling gain.
        return (self.effective_volume(play) / 100) ** 2 * 10 ** (play.level_db / 20)

    def state(self) -> dict:
        cur = self.arbiter.current
        playing = None
        if cur is not None:
            playing = {**cur.summary(), "volume": self.effective_volume(cur), "zones": self.amp.names(cur.zones)}
        return {
            "state": "idle" if cur is None else "alert" if cur.level == "emergency" else "playing",
            "playing": playing,
            "volume": {"default": self.volume, "max": self.cfg["max_volume"], "zones": dict(self.zone_volume)},
            "amp": self.amp.state(),
            "queued": len(self.arbiter.all()) - (1 if cur else 0),
        }


def proof_of_play(play: Play, zones: list[str]) -> dict:
    """What play.start says (play.end adds ended, seconds, completed, reason, plays)."""
    return {"id": play.id, "origin": play.origin, "title": play.title, "source": _brief(play.source),
            "level": play.level, "zones": zones, "started": play.started_at}


def _brief(source: dict) -> dict:
    """The source as proof of play records it (no long texts)."""
    out = {k: v for k, v in source.items() if k in ("kind", "name", "sha256", "url", "urls", "lang", "identifier",
                                                    "status", "drill")}
    if "text" in source:
        out["text"] = source["text"][:80]
    return out
