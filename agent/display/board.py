"""The board: the core's owner of the e-board. Decides what is on screen (alert layout over commanded
scenes over the schedule's playlist), keeps the playlist's turns and the panel's power, and writes
proof of display (`display.shown`). Runs on the core thread; the Screen worker does the pixels.
"""

from __future__ import annotations

import base64
import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import drivers
from drivers.display import render
from drivers.display.screen import Compose, Screen
from drivers.reports import FrameShown, Report, VideoEnded

from ..audio.arbiter import RANK
from ..i18n import Msg
from ..media import Downloader, MediaError
from ..messages import Call
from ..runtime import Result, Runtime
from ..timeutil import active_window, next_daily
from . import playlist

if TYPE_CHECKING:
    from ..envelope import Message
    from ..media import MediaCache
    from ..schedule import Schedule

log = logging.getLogger("agent.board")

VIDEO_CAP_S = 4 * 3600.0  # a video slide without duration_s ends at its end, or at this at the latest


@dataclass(eq=False)
class Showing:
    id: str
    origin: str  # schedule | command | alert | idle
    scene: dict
    level: str = "normal"
    title: str | None = None
    duration_s: float | None = None  # time on screen; None: until replaced, cleared, or the video ends
    media: Path | None = None
    context: Any = None  # the display.show command
    deadline: float | None = None  # wall clock when a commanded scene expires
    token: int = 0
    started: float | None = None  # wall clock when this turn's frame went up
    shown_s: float = 0.0  # seconds on screen in earlier turns (a preempted slide resumes)

    def summary(self) -> dict:
        return {"id": self.id, "origin": self.origin, "kind": self.scene.get("kind"), "level": self.level,
                "title": self.title or self.scene.get("title") or self.scene.get("headline")}


def make_screen(cfg: dict, clock: Callable[[], float], report: Report) -> Screen:
    """The display driver (`display.backend`) and the Screen worker that feeds it."""
    dcfg = cfg["display"]
    style = render.Style(fonts=dcfg["fonts"], header=dcfg["header"], name=cfg["device"].get("name") or
                         cfg["device"]["id"], max_image_px=dcfg["max_image_mp"] * 1e6)
    return Screen(drivers.load("display", dcfg["backend"])(dcfg), style, clock=clock,
                  tz=ZoneInfo(cfg["device"]["tz"]), report=report, fps=dcfg["fps"], ticker_px_s=dcfg["ticker_px_s"])


class Board:
    def __init__(self, rt: Runtime, screen: Screen, cache: MediaCache, schedule: Schedule):
        self.rt = rt
        self.cfg = rt.cfg["display"]
        self.screen = screen
        self.backend = screen.backend
        self.cache = cache
        self.tzname = rt.cfg["device"]["tz"]
        self.tokens = itertools.count(1)
        self.items = playlist.display_items(schedule)
        self.current: Showing | None = None
        self.shows: list[Showing] = []  # commanded scenes in force, oldest first
        self.ticker_show: Showing | None = None
        self.alerts: dict[str, Showing] = {}  # alert identifier -> its layout, newest last
        self.slide: Showing | None = None  # the playlist's slide, kept while preempted so it resumes
        self.idle = Showing(id="idle", origin="idle", scene={"kind": "idle"})
        self.on = True
        self.power_override: bool | None = None  # display.power, until the next scheduled switch
        self.skipped: dict[str, str] = {}  # playlist item id -> reason already reported
        self.bad: set[str] = set()  # media digests that would not render
        self._turn_timer: Any = None
        self._change_timer: Any = None
        self._power_timer: Any = None

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self.screen.start()
        self._power_plan()
        self._apply_power(force=True)  # the panel may have been left off by an earlier run
        self._on_change()

    def close(self) -> None:
        self._leave("stopped")
        self.screen.close()

    def reload(self, schedule: Schedule) -> None:
        """The schedule changed: new playlist, reported skips forgotten."""
        self.items = playlist.display_items(schedule)
        self.skipped.clear()
        self._on_change()

    def _on_change(self) -> None:
        """A display item became valid or invalid: re-decide, and arm the next such moment."""
        self.rt.cancel(self._change_timer)
        now = self.rt.clock()
        valid = {it.item["id"] for it in playlist.slides(self.items, now)}
        if self.slide is not None and self.slide.id not in valid:
            if self.current is self.slide:
                self._leave("expired")
            self.slide = None
        self.refresh(recompose=True)
        nxt = playlist.next_change(self.items, now)
        if nxt is not None:
            self._change_timer = self.rt.call_later(max(0.0, nxt - now) + 0.001, self._on_change)

    # --- what is on screen ----------------------------------------------------------------------
    def refresh(self, *, recompose: bool = False) -> None:
        if not self.on:
            self._leave("power_off")
            return
        target = self._target()
        if target is self.current:
            if recompose and target is not None:
                self._compose(target)  # e.g. the ticker changed under the same scene
            return
        self._leave("preempted")
        self.current = target
        target.token = next(self.tokens)
        self._compose(target)

    def _target(self) -> Showing:
        if self.alerts:
            return list(self.alerts.values())[-1]
        now = self.rt.clock()
        self.shows = [s for s in self.shows if s.deadline is None or s.deadline > now]
        if self.shows:
            return max(reversed(self.shows), key=lambda s: RANK[s.level])  # the newest of the highest level
        if self.slide is None:
            self.slide = self._next_slide(None)
        return self.slide or self.idle

    def _compose(self, s: Showing) -> None:
        ticker = None
        if self.ticker_show is not None:
            ticker = self.ticker_show.scene["text"]
        elif s.origin != "alert":
            ticker = playlist.ticker_text(self.items, self.rt.clock())
        self.screen.compose(Compose(s.token, s.scene, s.media, ticker))

    def _leave(self, reason: str) -> None:
        """The current scene leaves the screen: its proof of display, its timer."""
        s, self.current = self.current, None
        self.rt.cancel(self._turn_timer)
        self._turn_timer = None
        if s is None or s.started is None:
            return
        started, now, s.started = s.started, self.rt.clock(), None
        s.shown_s += now - started
        if s.origin != "idle":
            self.rt.emit_event("display.shown", {**s.summary(), "started": round(started, 3), "ended": round(now, 3),
                                                   "seconds": round(now - started, 3),
                                                   "completed": reason == "finished", "reason": reason})

    def _next_slide(self, after: str | None) -> Showing | None:
        """The next valid slide after item `after` in document order (wrapping), skipping missing media."""
        now = self.rt.clock()
        cands = playlist.slides(self.items, now)
        order = {it.item["id"]: i for i, it in enumerate(self.items)}
        pos = order.get(after, -1)  # type: ignore[arg-type]
        cands.sort(key=lambda it: (order[it.item["id"]] <= pos, order[it.item["id"]]))
        for it in cands:
            item, scene = it.item, it.item["scene"]
            media = None
            if "sha256" in scene:
                media = self.cache.path(scene["sha256"])
                reason = "bad_media" if scene["sha256"] in self.bad else None if media.exists() else "media_unavailable"
                if reason:
                    self._skip(item, reason)
                    continue
            default = None if scene["kind"] == "video" else self.cfg["slide_s"]
            return Showing(id=item["id"], origin="schedule", scene=scene, level=item["level"],
                           title=item.get("title"), duration_s=item.get("duration_s", default), media=media)
        return None

    def _skip(self, item: dict, reason: str) -> None:
        if self.skipped.get(item["id"]) == reason:
            return  # reported once, not on every turn of the loop
        self.skipped[item["id"]] = reason
        log.warning("display item %s skipped: %s", item["id"], reason)
        self.rt.emit_event("display.skipped", {"id": item["id"], "kind": item["scene"]["kind"], "reason": reason,
                                                 "sha256": item["scene"].get("sha256")})

    # --- reports from the Screen worker -------------------------------------------------------
    def rendered(self, report: FrameShown) -> None:
        s, error, at = self.current, report.error, report.at
        if s is None or s.token != report.token:
            return
        if error:  # a broken image or video file: never retried until the schedule changes
            self.current = None
            if s.media is not None:
                self.bad.add(s.scene["sha256"])
            if s is self.slide:
                self._skip({"id": s.id, "scene": s.scene}, "bad_media")
                self.slide = self._next_slide(s.id)
            elif s in self.shows:
                self.shows.remove(s)
                self._ack(s, Result("failed", "media_unavailable", f"cannot show it: {error}"))
            self.refresh()
            return
        if s.started is not None:
            return  # a recomposition of what is already up (the ticker changed)
        s.started = at
        self._ack(s, Result(message="on screen", result={"id": s.id, "on_screen": True, "level": s.level}))
        left = None if s.duration_s is None else s.duration_s - s.shown_s
        if s.deadline is not None:
            left = s.deadline - at
        if left is None and s.scene.get("kind") == "video":
            left = VIDEO_CAP_S
        if s is self.slide:
            self.skipped.pop(s.id, None)  # it shows again: a later skip is news
        if left is not None:
            self._turn_timer = self.rt.call_later(max(0.0, left), lambda: self._turn_over(s))

    def video_ended(self, report: VideoEnded) -> None:
        s, error = self.current, report.error
        if s is not None and s.token == report.token and s.scene.get("kind") == "video":
            if error:
                log.warning("video %s: %s", s.id, error)
            self._turn_over(s, "finished" if not error else "failed")

    def _turn_over(self, s: Showing, reason: str = "finished") -> None:
        if s is not self.current:
            return
        self._leave(reason)
        if s is self.slide:
            s.shown_s = 0.0
            self.slide = self._next_slide(s.id)
        elif s in self.shows:
            self.shows.remove(s)
        self.refresh()

    # --- alerts ------------------------------------------------------------------------------------
    def alert_started(self, identifier: str, play_id: str, alert: Any) -> None:
        self.alerts.pop(identifier, None)
        self.alerts[identifier] = Showing(id=play_id, origin="alert", level=alert.level, scene={
            "kind": "alert", "headline": alert.headline, "instruction": alert.instruction or alert.description,
            "issued": self.rt.clock(), "drill": alert.drill})
        self._apply_power()
        self.refresh()

    def alert_ended(self, identifier: str) -> None:
        if self.alerts.pop(identifier, None) is not None:
            if self.current is not None and self.current.origin == "alert":
                self._leave("finished")
            self._apply_power()
            self.refresh()

    # --- commands -----------------------------------------------------------------------------------
    def show(self, msg: Message, params: dict) -> Result | None:
        scene, now = params["scene"], self.rt.clock()
        s = Showing(id=msg.jti, origin="command", scene=scene, level=params["level"], title=scene.get("title"),
                    duration_s=params.get("duration_s"), context=msg,
                    deadline=now + params["duration_s"] if "duration_s" in params else None)
        if scene["kind"] == "ticker":
            self.ticker_show = s
            if s.deadline is not None:
                self.rt.call_later(params["duration_s"], lambda: self._ticker_over(s))
            self.refresh(recompose=True)
            return Result(message="ticker shown", result={"id": msg.jti, "ticker": scene["text"]})
        if "sha256" not in scene:
            return self._put_up(s)
        path = self.cache.path(scene["sha256"])
        if path.exists():
            s.media = path
            return self._put_up(s)

        def fetch() -> None:  # on a worker: the core never waits on the network
            try:
                got: Path | None = Downloader(self.cache).fetch(scene["url"], scene["sha256"],
                                                                            scene.get("size"))
                error = None
            except (MediaError, OSError) as e:
                got, error = None, str(e)
            self.rt.post(Call(lambda: self._fetched(s, got, error)))

        threading.Thread(target=fetch, name="display-fetch", daemon=True).start()
        return None

    def _fetched(self, s: Showing, path: Path | None, error: str | None) -> None:
        if path is None:
            self.rt.complete(s.context, Result("failed", "media_unavailable", f"cannot fetch the scene's media: "
                                                                                 f"{error}"))
            return
        s.media = path
        msg = s.context
        result = self._put_up(s)
        if result is not None:
            self.rt.complete(msg, result)

    def _put_up(self, s: Showing) -> Result | None:
        """On screen now (answered once its frame is up), or queued behind an alert or a higher level."""
        self.shows.append(s)
        self.refresh()
        if self.current is s:
            return None
        s.context = None
        return Result(message="queued behind an alert or a higher level", result={"id": s.id, "on_screen": False,
                                                                                  "level": s.level})

    def _ticker_over(self, s: Showing) -> None:
        if self.ticker_show is s:
            self.ticker_show = None
            self.refresh(recompose=True)

    def _ack(self, s: Showing, result: Result) -> None:
        """The final ack of a display.show, once: when its frame is up, or when it cannot be drawn."""
        msg, s.context = s.context, None
        if msg is not None:
            self.rt.complete(msg, result)

    def clear(self) -> int:
        n = len(self.shows) + (self.ticker_show is not None)
        self.shows.clear()
        self.ticker_show = None
        self.refresh(recompose=True)
        return n

    def screenshot(self, msg: Message) -> None:
        limit = self.cfg["screenshot_max_kb"] * 1024 * 3 // 4  # base64 grows it by a third

        def done(png: bytes | None, size: tuple[int, int] | None) -> None:  # on the Screen worker
            if png is None:
                r = Result("failed", "device_fault", "nothing has been drawn yet")
            else:
                r = Result(result={"png_b64": base64.b64encode(png).decode(), "width": size[0],  # type: ignore
                                   "height": size[1], "bytes": len(png),  # type: ignore[index]
                                   "showing": self.current.summary() if self.current else None})
            self.rt.post(Call(lambda: self.rt.complete(msg, r)))

        self.screen.screenshot(limit, done)

    # --- power --------------------------------------------------------------------------------------
    def set_power(self, on: bool, msg: Message | None = None) -> None:
        self.power_override = on
        self._apply_power(msg)

    def power_schedule_changed(self) -> None:
        self.power_override = None
        self._power_plan()
        self._apply_power()

    def scheduled_on(self) -> bool:
        ps = self.cfg.get("power_schedule")
        if not ps:
            return True
        return active_window([{"from": ps["on"], "to": ps["off"]}], self.rt.clock(), self.tzname) is not None

    def _power_plan(self) -> None:
        """Arm a timer for the next switch of `display.power_schedule` (in the device's time zone)."""
        self.rt.cancel(self._power_timer)
        self._power_timer = None
        ps = self.cfg.get("power_schedule")
        if not ps:
            return
        at = min(next_daily(ps[k], self.rt.clock(), self.tzname) for k in ("on", "off"))

        def switch() -> None:
            self.power_override = None  # a manual switch lasts until the schedule's next one
            self._apply_power()
            self._power_plan()

        self._power_timer = self.rt.call_later(max(0.0, at - self.rt.clock()) + 0.001, switch)

    def _apply_power(self, msg: Message | None = None, *, force: bool = False) -> None:
        want = True if self.alerts else self.power_override if self.power_override is not None else self.scheduled_on()

        def done(method: str | None, error: str | None) -> None:  # on the Screen worker
            def report() -> None:
                if error:
                    self.rt.faults.raise_("display_power", Msg("cannot switch the panel on: %(error)s", error=error)
                                          if want else Msg("cannot switch the panel off: %(error)s", error=error))
                else:
                    self.rt.faults.clear("display_power")
                    log.info("panel %s (%s)", "on" if want else "off", method)
                if msg is not None:
                    self.rt.complete(msg, Result("failed", "device_fault", error) if error else
                                       Result(result={"on": want, "method": method}))
            self.rt.post(Call(report))

        changed = want != self.on
        self.on = want
        if changed or force or msg is not None:
            self.screen.power(want, done)
        if changed:
            self.refresh()

    # --- status ----------------------------------------------------------------------------------
    def state(self) -> dict:
        return {"on": self.on, "backend": self.backend.name,
                "showing": self.current.summary() if self.current is not None else None,
                "ticker": self.ticker_show.scene["text"] if self.ticker_show else
                playlist.ticker_text(self.items, self.rt.clock()),
                "playlist": len(playlist.slides(self.items, self.rt.clock()))}
