"""The scheduler (core side): applies schedule documents, sleeps until the next occurrence (a timer, no
polling), hands each occurrence to the player at its level, and catches up after a restart.

Late policy when the agent starts (or the clock jumps) after an occurrence's time:
- a programme with a window (`duration_s`: streams, long programmes) still open joins in progress;
- otherwise it plays if it is at most `schedule.late_grace_s` late;
- otherwise it is skipped and reported (`schedule.skipped`).
The schedule runs only on a trusted clock: not behind the trusted time floor.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .audio.arbiter import Play
from .audio.player import PlayError
from .errors import SchemaError
from .i18n import Msg
from .runtime import Result, Runtime
from .schedule import NEXT_WITHIN_S, Occurrence, Schedule, compile_doc

if TYPE_CHECKING:
    from .audio.player import Player
    from .envelope import Message
    from .media import MediaCache
    from .store import Store
    from .topics import Topics

log = logging.getLogger("agent.scheduler")

CATCH_UP_S = 86400.0  # how far back a restart looks for missed occurrences
REMEMBER_S = 2 * 86400.0  # occurrences handed over are remembered this long (by their time), so none plays twice


class Scheduler:
    def __init__(self, rt: Runtime, store: Store, *, player: Player, cache: MediaCache, topics: Topics):
        self.rt, self.store, self.player, self.cache, self.topics = rt, store, player, cache, topics
        self.docs: dict[str, dict] = store.get_json("schedule_docs", {})
        self.fired_until: float | None = store.get_json("schedule_fired_until")
        # ITEM@LOCALTIME -> its time: what was handed over already, whatever the clock does afterwards
        self.fired: dict[str, float] = store.get_json("schedule_fired", {})
        self.timer: Any = None
        self.next: Occurrence | None = None
        self._wall_mono = (rt.clock(), time.monotonic())
        self._listeners: list[Callable[[Schedule], None]] = []
        self.schedule = self._build()

    def on_change(self, listener: Callable[[Schedule], None]) -> None:
        """`listener(schedule)` after each change of the merged schedule (the board's playlist, the prefetch)."""
        self._listeners.append(listener)

    # --- documents -----------------------------------------------------------------------
    def mine(self) -> set[str]:
        return self.topics.schedules(self.rt.cfg["device"]["areas"])

    def _build(self) -> Schedule:
        mine = self.mine()
        try:
            return Schedule({t: doc for t, doc in self.docs.items() if t in mine}, min_interval_s=self._min_interval())
        except SchemaError as e:  # stored documents were valid when applied; a zone database change could bite
            log.error("stored schedule no longer compiles: %s", e)
            return Schedule({})

    def _min_interval(self) -> float:
        return self.rt.cfg["schedule"]["min_interval_s"]

    def versions(self) -> dict[str, int]:
        mine = self.mine()
        return {self.topics.parse(t).schedule_key: d["version"]  # type: ignore[union-attr]
                for t, d in sorted(self.docs.items()) if t in mine}

    def apply(self, msg: Message) -> Result:
        topic, claims = msg.topic, msg.claims
        try:
            items = compile_doc(topic, claims, min_interval_s=self._min_interval())
        except SchemaError as e:
            return Result("rejected", "bad_schema", str(e))
        stored = self.docs.get(topic)
        version = claims["version"]
        if stored is None or version >= stored["version"]:
            self.store.raise_floor(msg.iat)  # a signed, valid, current document vouches for its time
        result = {"version": version, "items": len(items)}
        if stored is not None and version < stored["version"]:
            return Result("rejected", "stale", f"version {version} is older than the applied {stored['version']}",
                          {"version": stored["version"]})
        if stored is not None and version == stored["version"]:
            return Result(message="this version is already applied", result=result)
        self.docs[topic] = claims
        self.store.put_json("schedule_docs", self.docs)
        self.rt.emit_event("schedule.applied", {"topic": topic, **result})
        self._rebuild()
        log.info("schedule version %d applied from %s: %d item(s)", version, topic, len(items))
        self.plan()
        return Result(message=f"version {version} applied", result=result)

    def areas_changed(self) -> None:
        self._rebuild()
        self.plan()

    def _rebuild(self) -> None:
        self.schedule = self._build()
        for listener in self._listeners:
            listener(self.schedule)

    # --- time -------------------------------------------------------------------------------
    def start(self) -> None:
        self.rt.every(lambda: self.rt.cfg["schedule"]["clock_check_s"], self._check_clock)
        self.catch_up()
        self.plan()

    def trusted(self) -> bool:
        floor = self.store.time_floor()
        return self.rt.clock() >= floor - self.rt.cfg["security"]["max_clock_skew_s"]

    def plan(self) -> None:
        """Arm one timer for the next occurrence."""
        self.rt.cancel(self.timer)
        self.timer, self.next = None, None
        if not self.trusted():
            self.rt.faults.raise_("clock_unsynced", Msg("the clock is behind the last trusted message time; "
                                                          "the schedule waits for a trusted clock"))
            return
        self.rt.faults.clear("clock_unsynced")
        now = self.rt.clock()
        if self.fired_until is None:
            self._mark(now)  # everything before now is settled; a restart catches up from here
        self.next = self.schedule.next_after(max(now, self.fired_until or now), NEXT_WITHIN_S)
        if self.next is not None:
            occ = self.next
            self.timer = self.rt.call_later(max(0.0, occ.at - now), lambda: self._fire(occ))
        else:  # nothing within the search's reach: look again before it runs out
            self.timer = self.rt.call_later(NEXT_WITHIN_S / 2, self.plan)

    def _fire(self, occ: Occurrence) -> None:
        self.timer = None
        for same_time in self.schedule.between(occ.at, occ.at):  # every item due at this instant
            self._play(same_time, late_s=max(0.0, self.rt.clock() - occ.at))
        self._mark(occ.at)
        self.plan()

    def _mark(self, at: float) -> None:
        self.fired_until = max(at, self.fired_until or at)
        self.store.put_json("schedule_fired_until", self.fired_until)
        horizon = self.fired_until - REMEMBER_S
        self.fired = {k: t for k, t in self.fired.items() if t >= horizon}
        self.store.put_json("schedule_fired", self.fired)

    def catch_up(self) -> None:
        """After a restart or a clock jump: occurrences already due that were not handled."""
        if not self.trusted():
            return
        now = self.rt.clock()
        since = self.fired_until if self.fired_until is not None else now - 1
        grace = self.rt.cfg["schedule"]["late_grace_s"]
        due = [o for o in self.schedule.between(max(since, now - CATCH_UP_S), now)
               if self.fired_until is None or o.at > self.fired_until]
        for occ in due:
            late = now - occ.at
            duration = occ.item.get("duration_s")
            if duration is not None and late < duration:
                self._play(occ, late_s=late, join=True)
            elif late <= grace:
                self._play(occ, late_s=late)
            else:
                log.warning("skipped %s: %.0f s late", occ.id, late)
                self.rt.emit_event("schedule.skipped", {"id": occ.id, "at": occ.at, "reason": "late",
                                                          "late_s": round(late, 1)})
        if due:
            self._mark(due[-1].at)

    def _check_clock(self) -> None:
        wall, mono = self.rt.clock(), time.monotonic()
        drift = (wall - self._wall_mono[0]) - (mono - self._wall_mono[1])
        self._wall_mono = (wall, mono)
        if abs(drift) > 5:
            log.warning("the clock jumped by %.0f s: replanning the schedule", drift)
            if drift < 0 and self.fired_until is not None and self.fired_until > self.rt.clock():
                self.fired_until = self.rt.clock()  # a jump back must not silence the next days
            self.catch_up()
            self.plan()
        elif self.timer is None:
            self.plan()  # e.g. the clock became trusted

    # --- handing over ---------------------------------------------------------------------
    def _play(self, occ: Occurrence, *, late_s: float, join: bool = False) -> None:
        item = occ.item
        if "source" not in item:
            return  # display items are the board's playlist (display/board.py), not occurrences to play
        if occ.id in self.fired:  # the clock went back over it: once is what the province asked for
            log.info("schedule: %s already played; not again after the clock went back", occ.id)
            return
        self.fired[occ.id] = occ.at
        duration = item.get("duration_s")
        play = Play(id=occ.id, source=item["source"], level=item["level"], volume=item.get("volume"),
                    zones=item.get("zones") or [], title=item.get("title"), origin="schedule",
                    duration_s=duration, deadline=occ.at + duration if duration is not None else None)
        if join and item["source"]["kind"] == "file":
            play.position_s = late_s  # join the programme where it would be now
        try:
            self.player.submit(play)
            log.info("schedule: %s (%s)%s", occ.id, item["level"], f", {late_s:.1f} s late" if late_s > 1 else "")
        except PlayError as e:
            self.rt.emit_event("schedule.skipped", {"id": occ.id, "at": occ.at, "reason": e.code,
                                                      "message": str(e)})

    def upcoming(self, hours: float) -> list[dict]:
        now = self.rt.clock()
        out = []
        for occ in self.schedule.between(now, now + hours * 3600):
            src = occ.item.get("source") or {}
            cached = None
            if src.get("kind") == "file":
                cached = self.cache.path(src["sha256"]).exists()
            out.append({"id": occ.id, "at": occ.at, "local": occ.local, "title": occ.item.get("title"),
                        "level": occ.item["level"], "kind": src.get("kind") or occ.item.get("scene", {}).get("kind"),
                        "cached": cached})
        return out

    def state(self) -> dict:
        n = self.next
        return {"schedule_versions": self.versions(),
                "next_item": None if n is None else {"id": n.id, "at": n.at, "title": n.item.get("title"),
                                                     "level": n.item["level"]}}
