"""Who may play now: the three levels of Thông tư 39/2020 as a small pure state machine.

- emergency preempts everything at once; a newer emergency replaces an older one;
- priority preempts normal, which resumes afterwards (from its position) unless its window ended;
- equal or lower levels wait in first-in order.
No I/O here: the player turns the returned actions into sound, relays, acks and events.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

LEVELS = ("normal", "priority", "emergency")
RANK = {name: i for i, name in enumerate(LEVELS)}


@dataclass(eq=False)
class Play:
    id: str
    source: dict
    level: str = "normal"
    volume: int | None = None
    zones: list[str] = field(default_factory=list)
    repeat: int = 1
    duration_s: float | None = None
    title: str | None = None
    origin: str = "command"
    context: Any = None  # what to answer when it ends: the command message, or a callable(Result) (self-test)
    on_end: Callable[[Play, str, bool], None] | None = None  # told (play, reason, completed) when it ends for good
    # state while it lives
    media: Any = None
    position_s: float = 0.0
    plays_done: int = 0
    started_at: float | None = None  # wall clock of the first sample
    deadline: float | None = None  # wall clock after which it must not (re)start
    token: int = 0
    stream: dict | None = None  # failover state of a stream: URL index, rounds, whether audio came
    run_start_s: float = 0.0  # media position where the current run began
    played_s: float = 0.0  # audio actually handed to the device, over all runs (proof of play)
    runs: list[tuple[float, float]] = field(default_factory=list)  # wall-time spans that sounded (as-run)
    program: list | None = None  # segments played in turn (an alert: siren, then speech); None = not ready yet
    segment: int = 0
    engaged: bool = False  # holds its zones' relays (from its first start until it ends for good)
    level_db: float = 0.0  # the levelling gain of what plays now (audio/loudness.py); volume comes on top

    @property
    def rank(self) -> int:
        return RANK[self.level]

    def summary(self) -> dict:
        return {"id": self.id, "level": self.level, "title": self.title, "kind": self.source.get("kind"),
                "origin": self.origin}


@dataclass
class Action:
    kind: str  # "start" | "suspend" | "end"
    play: Play
    reason: str = ""


class Arbiter:
    def __init__(self) -> None:
        self.current: Play | None = None
        self.suspended: list[Play] = []  # a stack: the most recently preempted on top
        self.waiting: dict[str, deque[Play]] = {level: deque() for level in LEVELS}

    def submit(self, play: Play) -> list[Action]:
        cur = self.current
        if cur is None:
            return self._start(play)
        if play.level == "emergency" and cur.level == "emergency":
            self.current = None
            return [Action("end", cur, "stopped"), *self._start(play)]
        if play.rank > cur.rank:
            self.current = None
            self.suspended.append(cur)
            return [Action("suspend", cur), *self._start(play)]
        self.waiting[play.level].append(play)
        return []

    def ended(self, play: Play) -> list[Action]:
        """The current play finished (or was ended): pick what comes next."""
        if self.current is play:
            self.current = None
        return self._next()

    def stop(self, pred: Any, reason: str = "stopped") -> list[Action]:
        """End every play matching `pred` (current, suspended or waiting); then pick what comes next."""
        actions: list[Action] = []
        for queue in [*self.waiting.values()]:
            for p in [p for p in queue if pred(p)]:
                queue.remove(p)
                actions.append(Action("end", p, reason))
        for p in [p for p in self.suspended if pred(p)]:
            self.suspended.remove(p)
            actions.append(Action("end", p, reason))
        if self.current is not None and pred(self.current):
            cur, self.current = self.current, None
            actions.append(Action("end", cur, reason))
            actions += self._next()
        return actions

    def expire(self, now: float) -> list[Action]:
        """Drop suspended or waiting plays whose window has passed."""
        return [a for a in self.stop(lambda p: p is not self.current and p.deadline is not None
                                     and now >= p.deadline, "expired")]

    def _start(self, play: Play) -> list[Action]:
        self.current = play
        return [Action("start", play)]

    def _next(self) -> list[Action]:
        if self.current is not None:
            return []
        best: Play | None = self.suspended[-1] if self.suspended else None
        for level in reversed(LEVELS):
            queue = self.waiting[level]
            if queue and (best is None or RANK[level] > best.rank):
                best = queue[0]
                break
        if best is None:
            return []
        if self.suspended and best is self.suspended[-1]:
            self.suspended.pop()
        else:
            self.waiting[best.level].popleft()
        return self._start(best)

    def all(self) -> list[Play]:
        return [p for p in [self.current, *reversed(self.suspended)] if p] + \
            [p for level in reversed(LEVELS) for p in self.waiting[level]]
