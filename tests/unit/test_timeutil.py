"""Time on the wire and local times of day (quiet hours, the daily self-test, the panel's power schedule)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from agent.timeutil import active_window, next_daily, rfc3339

VN = "Asia/Ho_Chi_Minh"


def at(s: str, tz: str = VN) -> float:
    return datetime.fromisoformat(s).replace(tzinfo=ZoneInfo(tz)).timestamp()


def test_rfc3339_is_utc_with_milliseconds():
    assert rfc3339(at("2026-12-01T07:00:00.1234")) == "2026-12-01T00:00:00.123Z"


@pytest.mark.parametrize("local, inside", [("21:59", False), ("22:00", True), ("03:15", True), ("05:30", False)])
def test_quiet_hours_wrap_past_midnight(local, inside):
    quiet = [{"from": "22:00", "to": "05:30"}]
    assert (active_window(quiet, at(f"2026-12-01T{local}"), VN) is not None) == inside


def test_windows_within_a_day_and_none():
    windows = [{"from": "06:00", "to": "06:30"}, {"from": "17:30", "to": "18:00"}]
    assert active_window(windows, at("2026-12-01T17:45"), VN) == windows[1]
    assert active_window(windows, at("2026-12-01T12:00"), VN) is None
    assert active_window([], at("2026-12-01T12:00"), VN) is None


def test_next_daily_is_strictly_after_now():
    assert next_daily("06:00", at("2026-12-01T05:59"), VN) == at("2026-12-01T06:00")
    assert next_daily("06:00", at("2026-12-01T06:00"), VN) == at("2026-12-02T06:00")


def test_next_daily_keeps_the_local_time_across_a_clock_change():
    # Europe/Berlin leaves summer time on 2026-10-25: the next 06:00 is 25 hours after the last.
    berlin = "Europe/Berlin"
    first = next_daily("06:00", at("2026-10-24T07:00", berlin), berlin)
    assert first == at("2026-10-25T06:00", berlin)
    assert next_daily("06:00", first, berlin) - first == 24 * 3600
    assert first - at("2026-10-24T06:00", berlin) == 25 * 3600
