"""Which display items are on the board when (docs/protocol.md, "Display items"): pure functions of the schedule."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from agent.display import playlist
from agent.schedule import compile_doc

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
TOPIC = "ttcs/v1/dev/GL-0001/schedule"


def at(s: str) -> float:
    return datetime.fromisoformat(s).replace(tzinfo=TZ).timestamp()


def items(*specs: dict) -> list:
    return compile_doc(TOPIC, {"version": 1, "tz": "Asia/Ho_Chi_Minh", "items": list(specs)})


NOTICE = {"id": "notice", "start": "2026-12-01T08:00:00", "until": "2026-12-03T00:00:00",
          "scene": {"kind": "text", "title": "Họp dân", "body": "19 giờ tối nay"}}
MONDAYS = {"id": "mondays", "start": "2026-11-30T07:00:00", "rrule": "FREQ=WEEKLY;BYDAY=MO",
           "scene": {"kind": "text", "title": "Thứ Hai", "body": "Lịch tiếp dân"}}
TICKER_A = {"id": "ta", "start": "2026-12-01T00:00:00", "scene": {"kind": "ticker", "text": "Phòng chống bão"}}
TICKER_B = {"id": "tb", "start": "2026-12-01T00:00:00", "scene": {"kind": "ticker", "text": "Tiêm chủng"}}


def test_an_item_without_a_rule_shows_from_start_until_until():
    [it] = items(NOTICE)
    assert playlist.window(it, at("2026-12-01T07:59")) is None
    assert playlist.window(it, at("2026-12-02T12:00")) == (at("2026-12-01T08:00"), at("2026-12-03T00:00"))
    assert playlist.window(it, at("2026-12-03T00:00")) is None


def test_a_recurring_item_shows_until_the_end_of_its_local_day():
    [it] = items(MONDAYS)
    assert playlist.window(it, at("2026-12-07T06:59")) is None
    assert playlist.window(it, at("2026-12-07T23:59")) == (at("2026-12-07T07:00"), at("2026-12-08T00:00"))
    assert playlist.window(it, at("2026-12-08T09:00")) is None


def test_slides_and_one_ticker_line_in_document_order():
    its = items(NOTICE, TICKER_A, MONDAYS, TICKER_B)
    now = at("2026-12-07T09:00")  # Monday, after the notice ended
    assert [it.item["id"] for it in playlist.slides(its, now)] == ["mondays"]
    assert playlist.ticker_text(its, now) == "Phòng chống bão   •   Tiêm chủng"
    assert playlist.ticker_text(items(NOTICE), now) is None


def test_next_change_is_the_next_start_or_window_end():
    its = items(NOTICE, MONDAYS)
    assert playlist.next_change(its, at("2026-12-01T07:00")) == at("2026-12-01T08:00")
    assert playlist.next_change(its, at("2026-12-02T07:00")) == at("2026-12-03T00:00")
    assert playlist.next_change(its, at("2026-12-03T07:00")) == at("2026-12-07T07:00")
