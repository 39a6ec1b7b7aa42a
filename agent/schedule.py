"""Schedule documents (PROTOCOL.md): validation, and their occurrences via dateutil's RFC 5545 rules.

Pure: no timers, no I/O. A document is checked as a whole (the first bad
field is named) and compiled; `Schedule` merges the documents of the device's
own topic and its area topics and answers "what happens between a and b".
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .audio.arbiter import LEVELS
from .audio.sources import Source
from .display.scenes import Scene
from .errors import SchemaError
from .recurrence import Rule, RuleError
from .schema import Int, List, Num, Obj, Str

log = logging.getLogger("agent.schedule")

MAX_ITEMS = 2000
MIN_INTERVAL_S = 60.0  # config schedule.min_interval_s
MAX_TIMES = 20000  # times of day (BYHOUR × BYMINUTE × BYSECOND) of every rule of a document together
MAX_COUNTS = 20000  # COUNT of every rule of a document together: each is expanded once when applied
MAX_PER_ITEM = 3000  # occurrences listed per item and window (48 h at one a minute)
MAX_LISTED = 5000  # occurrences listed per window, all items together (the earliest)
NEXT_WITHIN_S = 86400.0  # how far ahead the next occurrence is looked for; the scheduler plans again by then


def _item_rules(item: dict, path: str) -> None:
    if ("source" in item) == ("scene" in item):
        raise SchemaError(path, "needs exactly one of source (audio) or scene (display)")
    if item.get("source", {}).get("kind") == "stream" and "duration_s" not in item:
        raise SchemaError(f"{path}.duration_s", "is required for a stream")


ITEM = Obj({
    "id": Str(min_len=1, max_len=128),
    "title": Str(max_len=200, optional=True),
    "source": Source(optional=True),
    "scene": Scene(optional=True),
    "level": Str(choices=LEVELS, default="normal"),
    "start": Str(min_len=10, max_len=40),
    "rrule": Str(min_len=1, max_len=500, optional=True),
    "until": Str(min_len=10, max_len=40, optional=True),
    "exdates": List(Str(min_len=10, max_len=40), max_len=1000, optional=True),
    "duration_s": Num(min=0.1, max=86400, optional=True),
    "volume": Int(min=0, max=100, optional=True),
    "zones": List(Str(min_len=1, max_len=32), max_len=16, optional=True),
}, validate=_item_rules)

DOC = Obj({
    "version": Int(min=0, max=2**53),
    "tz": Str(min_len=1, max_len=64, default="Asia/Ho_Chi_Minh"),
    "items": List(ITEM, max_len=MAX_ITEMS),
}, extra=True)


@dataclass(frozen=True)
class Occurrence:
    at: float  # Unix seconds
    topic: str
    item: dict
    local: str  # local ISO time, part of the id

    @property
    def id(self) -> str:
        return f"{self.item['id']}@{self.local}"


class CompiledItem:
    def __init__(self, topic: str, item: dict, tz: Any, path: str, *, min_interval_s: float = MIN_INTERVAL_S,
                 now: datetime | None = None):
        self.topic, self.item = topic, item
        start = _local(item["start"], tz, f"{path}.start")
        until = _local(item["until"], tz, f"{path}.until") if "until" in item else None
        self.rule: Rule | None = None
        if "rrule" in item:
            try:
                self.rule = Rule(item["rrule"], start, until, min_interval_s=min_interval_s, now=now)
            except RuleError as e:
                raise SchemaError(f"{path}.rrule", str(e)) from None
        self.start = start
        self.exdates = {_local(ex, tz, f"{path}.exdates[{i}]").timestamp()
                        for i, ex in enumerate(item.get("exdates") or [])}
        self.tz = tz
        # a display item without a rule stays on the board from `start` until `until`
        self.until = until.timestamp() if until is not None else None

    def times(self, a: datetime, b: datetime) -> Iterator[datetime]:
        """Its occurrences in [a, b], in order, exdates left out (a generator: take what you need)."""
        if self.rule is None:
            if a <= self.start <= b and self.start.timestamp() not in self.exdates:
                yield self.start
            return
        for dt in self.rule.occurrences(a, b):
            if dt.timestamp() not in self.exdates:
                yield dt

    def first(self, a: datetime, b: datetime) -> datetime | None:
        """The first occurrence in [a, b] (remembered by the rule: asking again is free)."""
        if self.rule is None or self.exdates:
            return next(self.times(a, b), None)
        return self.rule.first(a, b)

    def last(self, a: datetime, b: datetime) -> datetime | None:
        last = None
        for last in itertools.islice(self.times(a, b), MAX_PER_ITEM):  # noqa: B007 (the last one is wanted)
            pass
        return last

    def occurrence(self, dt: datetime) -> Occurrence:
        return Occurrence(dt.timestamp(), self.topic, self.item, dt.replace(tzinfo=None).isoformat())

    def between(self, a: datetime, b: datetime, limit: int = MAX_PER_ITEM) -> list[Occurrence]:
        return [self.occurrence(dt) for dt in itertools.islice(self.times(a, b), limit)]


def _local(text: str, tz: Any, path: str) -> datetime:
    try:
        dt = datetime.fromisoformat(text)
        return dt.replace(tzinfo=tz) if dt.tzinfo is None else dt.astimezone(tz)
    except ValueError:
        raise SchemaError(path, f"not an ISO date-time: {text!r}") from None
    except OverflowError:  # 9999-12-31T23:59:58+00:00 is past the last representable local time
        raise SchemaError(path, f"out of the representable range of dates in this time zone: {text!r}") from None


def compile_doc(topic: str, claims: dict, *, min_interval_s: float = MIN_INTERVAL_S) -> list[CompiledItem]:
    """Check a schedule document; its compiled items, or SchemaError naming the first bad field."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    doc = DOC.check(claims, "")
    try:
        tz = ZoneInfo(doc["tz"])
    except (ValueError, ZoneInfoNotFoundError):
        raise SchemaError("tz", f"unknown time zone {doc['tz']!r}") from None
    ids = [it["id"] for it in doc["items"]]
    if len(set(ids)) != len(ids):
        raise SchemaError("items", "item ids must be unique within a document")
    now = datetime.now(UTC)
    counts = sum(_count(it) for it in doc["items"])
    if counts > MAX_COUNTS:
        raise SchemaError("items", f"the rules' COUNTs add up to {counts}, more than {MAX_COUNTS}: use until")
    out, times = [], 0
    for i, it in enumerate(doc["items"]):
        out.append(CompiledItem(topic, it, tz, f"items[{i}]", min_interval_s=min_interval_s, now=now))
        times += out[-1].rule.stored_times() if out[-1].rule else 0
        if times > MAX_TIMES:  # dateutil keeps each rule's times of day (BYHOUR × BYMINUTE × BYSECOND) in memory
            raise SchemaError(f"items[{i}].rrule", f"the rules' times of day add up to more than {MAX_TIMES}")
    return out


def _count(item: dict) -> int:
    import re

    m = re.search(r"COUNT=(\d{1,9})", item.get("rrule", "").upper())
    return int(m.group(1)) if m else 0


class Schedule:
    """The merged schedule of several documents (topic -> claims)."""

    def __init__(self, docs: dict[str, dict], *, min_interval_s: float = MIN_INTERVAL_S):
        self.items: list[CompiledItem] = []
        for topic, claims in docs.items():
            self.items += compile_doc(topic, claims, min_interval_s=min_interval_s)

    def between(self, a: float, b: float, *, limit: int = MAX_LISTED) -> list[Occurrence]:
        """Occurrences in [a, b] in time order: at most MAX_PER_ITEM per item and `limit` in all (the earliest),
        merged lazily: 2,000 items once a minute hold 5.8 million in 48 h, and only `limit` are made."""
        lo, hi = _utc(a), _utc(b)
        each = [_timed(it, lo, hi) for it in self.items]
        out = [it.occurrence(dt) for _, it, dt in itertools.islice(
            heapq.merge(*each, key=lambda e: (e[0], e[1].item["id"])), limit)]
        if len(out) == limit:
            log.warning("schedule: more than %d occurrences between %.0f and %.0f; listing the first", limit, a, b)
        return sorted(out, key=lambda o: (o.at, o.id))

    def firsts(self, a: float, b: float) -> list[Occurrence]:
        """Each item's first occurrence in [a, b] (what the prefetcher needs: one per item, not every one)."""
        lo, hi = _utc(a), _utc(b)
        out = [it.occurrence(dt) for it in self.items if (dt := it.first(lo, hi)) is not None]
        return sorted(out, key=lambda o: (o.at, o.id))

    def next_after(self, t: float, within: float = NEXT_WITHIN_S) -> Occurrence | None:
        """The first occurrence strictly after t and at most `within` seconds later (each rule asked for its next
        one, remembered: cheap for 2,000 items); None: plan again by then."""
        lo, hi = _utc(t), _utc(t + within)
        best: Occurrence | None = None
        for it in self.items:
            dt = it.first(lo, hi)
            if dt is not None and dt.timestamp() == t:  # strictly after: the one at t was handled
                dt = it.first(_utc(t + 1e-3), hi)
            if dt is not None and (best is None or (dt.timestamp(), it.item["id"]) < (best.at, best.item["id"])):
                best = it.occurrence(dt)
        return best


def _timed(it: CompiledItem, a: datetime, b: datetime) -> Iterator[tuple[float, CompiledItem, datetime]]:
    for dt in itertools.islice(it.times(a, b), MAX_PER_ITEM):
        yield dt.timestamp(), it, dt


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)
