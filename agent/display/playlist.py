"""Which display items of the schedule are on the board now (pure: no timers, no I/O).

A display item (`scene` instead of `source`) is valid:
- without `rrule`: from `start` until `until` (or for good);
- with `rrule`: from each occurrence until the end of that local day (a weekly notice shows all Monday
  from its start time), so `exdates` take single days out.
Valid slides take turns in document order, each for its `duration_s` (default `display.slide_s`);
valid tickers are joined into one scrolling line over whatever is shown.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ..schedule import CompiledItem, Schedule

LOOK_AHEAD_S = 366 * 86400.0  # the searches have an end; the board looks again by then
MAX_TICKER = 4000  # characters of the joined tickers: the strip is drawn once, as wide as the text


def display_items(schedule: Schedule) -> list[CompiledItem]:
    return [it for it in schedule.items if "scene" in it.item]


def window(it: CompiledItem, now: float) -> tuple[float, float] | None:
    """The validity window (start, end) that contains `now`, if any."""
    at = datetime.fromtimestamp(now, UTC)
    if "rrule" in it.item:  # a window lasts to the end of its local day: only the last day (and a bit) is searched
        last = it.last(at - timedelta(hours=26), at)
    else:
        last = it.start if it.start <= at and it.start.timestamp() not in it.exdates else None
    if last is None:
        return None
    if "rrule" in it.item:
        local = last.astimezone(it.tz)
        end = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), it.tz).timestamp()
    else:
        end = it.until if it.until is not None else float("inf")
    return (last.timestamp(), end) if now < end else None


def valid(items: list[CompiledItem], now: float) -> list[CompiledItem]:
    return [it for it in items if window(it, now) is not None]


def slides(items: list[CompiledItem], now: float) -> list[CompiledItem]:
    return [it for it in valid(items, now) if it.item["scene"]["kind"] != "ticker"]


def ticker_text(items: list[CompiledItem], now: float) -> str | None:
    texts = [it.item["scene"]["text"] for it in valid(items, now) if it.item["scene"]["kind"] == "ticker"]
    text = "   •   ".join(texts)
    return (text[:MAX_TICKER - 1] + "…" if len(text) > MAX_TICKER else text) or None


def next_change(items: list[CompiledItem], now: float) -> float | None:
    """When the set of valid items changes next: an item starts, or a window closes (or, with nothing within a
    year, in a year: the search looks no further)."""
    after = datetime.fromtimestamp(now + 1e-3, UTC)
    times = [now + LOOK_AHEAD_S] if items else []
    for it in items:
        nxt = it.first(after, after + timedelta(seconds=LOOK_AHEAD_S))
        if nxt is not None:
            times.append(nxt.timestamp())
        w = window(it, now)
        if w is not None and w[1] != float("inf"):
            times.append(w[1])
    return min(times) if times else None


def media_between(items: list[CompiledItem], a: float, b: float) -> dict[str, dict]:
    """Images and videos of items valid now or starting before b: digest -> scene (for prefetch)."""
    out: dict[str, dict] = {}
    for it in items:
        scene = it.item["scene"]
        if "sha256" not in scene:
            continue
        w = window(it, a)
        nxt = it.first(datetime.fromtimestamp(a + 1e-3, UTC), datetime.fromtimestamp(b, UTC)) if w is None else None
        if w is not None or nxt is not None:
            out.setdefault(scene["sha256"], {**scene, "due": w[0] if w else nxt.timestamp()})  # type: ignore
    return out
