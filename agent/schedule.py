"""Schedule documents (PROTOCOL.md): validation, and their occurrences via dateutil's RFC 5545 rules.

Pure: no timers, no I/O. A document is checked as a whole (the first bad
field is named) and compiled; `Schedule` merges the documents of the device's
own topic and its area topics and answers "what happens between a and b".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .audio.arbiter import LEVELS
from .audio.sources import Source
from .display.scenes import Scene
from .errors import SchemaError
from .schema import Int, List, Num, Obj, Str

MAX_ITEMS = 2000


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
    def __init__(self, topic: str, item: dict, tz: Any, path: str):
        from dateutil.rrule import rruleset, rrulestr

        self.topic, self.item = topic, item
        start = _local(item["start"], tz, f"{path}.start")
        self.rules = rruleset()
        if "rrule" in item:
            try:
                rule = rrulestr(f"RRULE:{item['rrule']}", dtstart=start, forceset=False)
            except (ValueError, TypeError) as e:
                raise SchemaError(f"{path}.rrule", f"not an RFC 5545 RRULE: {e}") from None
            if "until" in item:
                rule = rule.replace(until=_local(item["until"], tz, f"{path}.until"), count=None)
            self.rules.rrule(rule)
        else:
            self.rules.rdate(start)
        for i, ex in enumerate(item.get("exdates") or []):
            self.rules.exdate(_local(ex, tz, f"{path}.exdates[{i}]"))
        self.tz = tz
        # a display item without a rule stays on the board from `start` until `until`
        self.until = _local(item["until"], tz, f"{path}.until").timestamp() if "until" in item else None

    def between(self, a: datetime, b: datetime) -> list[Occurrence]:
        return [Occurrence(dt.timestamp(), self.topic, self.item, dt.replace(tzinfo=None).isoformat())
                for dt in self.rules.between(a, b, inc=True)]


def _local(text: str, tz: Any, path: str) -> datetime:
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise SchemaError(path, f"not an ISO date-time: {text!r}") from None
    return dt.replace(tzinfo=tz) if dt.tzinfo is None else dt.astimezone(tz)


def compile_doc(topic: str, claims: dict) -> list[CompiledItem]:
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
    return [CompiledItem(topic, it, tz, f"items[{i}]") for i, it in enumerate(doc["items"])]


class Schedule:
    """The merged schedule of several documents (topic -> claims)."""

    def __init__(self, docs: dict[str, dict]):
        self.items: list[CompiledItem] = []
        for topic, claims in docs.items():
            self.items += compile_doc(topic, claims)

    def between(self, a: float, b: float) -> list[Occurrence]:
        from datetime import UTC

        lo, hi = datetime.fromtimestamp(a, UTC), datetime.fromtimestamp(b, UTC)
        out = [o for it in self.items for o in it.between(lo, hi)]
        return sorted(out, key=lambda o: (o.at, o.id))

    def next_after(self, t: float) -> Occurrence | None:
        """The first occurrence strictly after t (each rule asked for its next one: cheap for 1,000 items)."""
        from datetime import UTC

        after = datetime.fromtimestamp(t, UTC)
        best: Occurrence | None = None
        for it in self.items:
            dt = it.rules.after(after, inc=False)
            if dt is not None and (best is None or (dt.timestamp(), it.item["id"]) < (best.at, best.item["id"])):
                best = Occurrence(dt.timestamp(), it.topic, it.item, dt.replace(tzinfo=None).isoformat())
        return best
