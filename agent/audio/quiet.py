"""Quiet hours: local-time windows in which normal programmes do not play and priority ones are capped."""

from __future__ import annotations

from datetime import datetime, time


def _t(hhmm: str) -> time:
    h, m = hhmm.split(":")
    return time(int(h), int(m))


def active_window(windows: list[dict], now: float, tz: str) -> dict | None:
    """The window containing `now` (Unix seconds), if any; windows may wrap past midnight."""
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
