"""Time on the wire (RFC 3339 UTC with milliseconds) and local times of day ("HH:MM" in a time zone): quiet
hours, the daily self-test, the panel's power schedule."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time


def rfc3339(t: float | None = None) -> str:
    dt = datetime.fromtimestamp(time.time() if t is None else t, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _t(hhmm: str) -> clock_time:
    h, m = hhmm.split(":")
    return clock_time(int(h), int(m))


def active_window(windows: list[dict], now: float, tz: str) -> dict | None:
    """The {from, to} window containing `now` (Unix seconds), if any; windows may wrap past midnight."""
    if not windows:
        return None
    from zoneinfo import ZoneInfo

    local = datetime.fromtimestamp(now, ZoneInfo(tz)).time()
    for w in windows:
        start, end = _t(w["from"]), _t(w["to"])
        inside = start <= local < end if start <= end else (local >= start or local < end)
        if inside:
            return w
    return None


def next_daily(hhmm: str, now: float, tz: str) -> float:
    """The next time (Unix seconds) the local clock in `tz` reads `hhmm`, strictly after `now`."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    local = datetime.fromtimestamp(now, zone)
    h, m = (int(x) for x in hhmm.split(":"))
    day = local.date()
    while True:
        at = datetime(day.year, day.month, day.day, h, m, tzinfo=zone).timestamp()
        if at > now:
            return at
        day += timedelta(days=1)
