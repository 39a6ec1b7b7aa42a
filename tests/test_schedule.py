"""Schedules: documents over MQTT (retained, signed, versioned), occurrences by dateutil, catching up."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.schedules import TZ, local, publish_schedule, tone_item

from agent.errors import SchemaError
from agent.schedule import Schedule, compile_doc

TOPIC = "ttcs/v1/dev/GL-0001/schedule"


def test_item_due_soon_plays_with_proof_of_play(start_audio_agent, province, tap):
    start_audio_agent("null")
    at = time.time() + 4
    jti = publish_schedule(province, 1, [tone_item("sang", at)])
    ack = province.done(jti)
    assert ack["result"] == {"version": 1, "items": 1} and ack["type"] == "schedule"
    applied = province.event("schedule.applied")
    assert applied["data"]["version"] == 1
    st_ = province.done(province.send("status.get"))["result"]
    assert st_["schedule_versions"] == {"device": 1} and st_["next_item"]["id"].startswith("sang@")
    start = province.event("play.start", pred=lambda e: e["data"]["origin"] == "schedule", timeout=20)
    assert start["data"]["id"] == f"sang@{local(at)}" and abs(start["data"]["started"] - at) < 1.5
    end = province.event("play.end", pred=lambda e: e["data"]["id"] == start["data"]["id"], timeout=20)
    assert end["data"]["completed"] is True


def test_versions_stale_equal_and_bad_documents(start_audio_agent, province):
    start_audio_agent("null")
    later = time.time() + 3600
    province.done(publish_schedule(province, 5, [tone_item("a", later)]))
    same = province.done(publish_schedule(province, 5, [tone_item("b", later)]))
    assert "already applied" in same["message"]
    stale = province.ack(publish_schedule(province, 4, [tone_item("c", later)]))
    assert (stale["status"], stale["code"]) == ("rejected", "stale")
    bad = province.ack(publish_schedule(province, 6, [tone_item("d", later, rrule="FREQ=SOMETIMES")]))
    assert (bad["status"], bad["code"]) == ("rejected", "bad_schema") and bad["message"].startswith("items[0].rrule")
    missing = province.ack(publish_schedule(province, 7, [{"id": "e", "start": local(later)}]))
    assert missing["code"] == "bad_schema" and "source" in missing["message"]
    st_ = province.done(province.send("status.get"))["result"]
    assert st_["schedule_versions"] == {"device": 5} and st_["next_item"]["id"].startswith("a@")
    cleared = province.done(publish_schedule(province, 8, []))
    assert cleared["result"] == {"version": 8, "items": 0}
    assert province.done(province.send("status.get"))["result"]["next_item"] is None


def test_device_and_area_documents_merge(start_audio_agent, province):
    start_audio_agent("null")
    t = time.time() + 7200
    province.done(publish_schedule(province, 3, [tone_item("own", t)]))
    province.done(publish_schedule(province, 9, [tone_item("commune", t - 600)], to="area:64.23581"))
    province.done(publish_schedule(province, 2, [tone_item("province", t + 600)], to="area:64"))
    st_ = province.done(province.send("status.get"))["result"]
    assert st_["schedule_versions"] == {"device": 3, "64.23581": 9, "64": 2}
    assert st_["next_item"]["id"].startswith("commune@")


def test_schedule_survives_a_restart_and_catches_up(start_audio_agent, province, tap):
    agent = start_audio_agent("null", schedule={"late_grace_s": 3})
    t0 = time.time()
    items = [tone_item("short", t0 + 5), tone_item("window", t0 + 5, duration_s=60, tone_s=60),
             tone_item("old", t0 + 5 - 3600, rrule="FREQ=HOURLY;COUNT=1"), tone_item("next", t0 + 11)]
    province.done(publish_schedule(province, 1, items))
    agent.stop()
    time.sleep(max(0.0, t0 + 7 - time.time()))  # the slot passes while the box is off (wall-clock behaviour)
    mark = province.mark()
    agent.start()
    province.status("online", after=mark)
    # 'window' (60 s) joins in progress; 'short' is 2 s late (grace 3 s) and plays after it in the queue.
    started = province.event("play.start", after=mark, pred=lambda e: e["data"]["id"].startswith("window@"))
    assert started["data"]["origin"] == "schedule"
    ids = [e.payload["data"]["id"].split("@")[0] for e in province.received[mark:]
           if e.kind == "event" and e.payload["kind"] == "play.start"]
    assert "old" not in ids
    nxt = province.done(province.send("status.get"))["result"]["next_item"]
    assert nxt["id"].startswith("next@")


def test_short_item_too_late_is_skipped_and_reported(start_audio_agent, province):
    agent = start_audio_agent("null", schedule={"late_grace_s": 1})
    t0 = time.time()
    province.done(publish_schedule(province, 1, [tone_item("x", t0 + 2)]))
    agent.stop()
    time.sleep(max(0.0, t0 + 4.5 - time.time()))
    mark = province.mark()
    agent.start()
    skipped = province.event("schedule.skipped", after=mark)
    assert skipped["data"]["id"].startswith("x@") and skipped["data"]["reason"] == "late"


# --- recurrence: our occurrences are dateutil's --------------------------------------------

RULES = st.sampled_from(["FREQ=DAILY", "FREQ=WEEKLY;BYDAY=MO,WE,FR", "FREQ=HOURLY;INTERVAL=6",
                         "FREQ=DAILY;BYHOUR=6,17;BYMINUTE=0,30", "FREQ=MONTHLY;BYMONTHDAY=1,15",
                         "FREQ=DAILY;COUNT=5", "FREQ=WEEKLY;INTERVAL=2;BYDAY=SA"])


@settings(max_examples=60, deadline=None)
@given(rule=RULES, start_offset_h=st.integers(-500, 500), window_start_h=st.integers(-300, 300),
       window_h=st.integers(1, 24 * 10), n_ex=st.integers(0, 3), until_h=st.one_of(st.none(), st.integers(1, 900)))
def test_occurrences_equal_dateutil(rule, start_offset_h, window_start_h, window_h, n_ex, until_h):
    from dateutil.rrule import rruleset, rrulestr

    base = datetime(2026, 11, 22, 6, 0)
    start = base + timedelta(hours=start_offset_h)
    item = {"id": "i", "source": {"kind": "tone", "name": "chime"}, "start": start.isoformat(), "rrule": rule}
    expected = rruleset()
    r = rrulestr(f"RRULE:{rule}", dtstart=start.replace(tzinfo=TZ))
    if until_h is not None:
        until = start + timedelta(hours=until_h)
        item["until"] = until.isoformat()
        r = r.replace(until=until.replace(tzinfo=TZ), count=None)
    expected.rrule(r)
    exdates = [start + timedelta(days=k) for k in range(n_ex)]
    item["exdates"] = [d.isoformat() for d in exdates]
    for d in exdates:
        expected.exdate(d.replace(tzinfo=TZ))
    a = (base + timedelta(hours=window_start_h)).replace(tzinfo=TZ)
    b = a + timedelta(hours=window_h)
    got = [o.at for o in Schedule({TOPIC: {"version": 1, "items": [item]}}).between(a.timestamp(), b.timestamp())]
    assert got == [d.timestamp() for d in expected.between(a, b, inc=True)]


def test_document_errors_name_the_field():
    with pytest.raises(SchemaError, match=r"items\[0\]\.duration_s: is required for a stream"):
        compile_doc(TOPIC, {"version": 1, "items": [{"id": "s", "start": "2026-11-23T06:00:00",
                                                      "source": {"kind": "stream", "urls": ["http://x/y"]}}]})
    with pytest.raises(SchemaError, match=r"items\[0\]\.start: not an ISO date-time"):
        compile_doc(TOPIC, {"version": 1, "items": [{"id": "s", "start": "tomorrow at six",
                                                      "source": {"kind": "tone", "name": "chime"}}]})
    with pytest.raises(SchemaError, match="tz: unknown time zone"):
        compile_doc(TOPIC, {"version": 1, "tz": "Mars/Olympus", "items": []})


def test_many_items_merge_in_time_order_and_listing_is_capped():
    from agent.schedule import MAX_LISTED

    items = [{"id": f"i{k}", "source": {"kind": "tone", "name": "chime"}, "start": "2020-01-01T00:00:00",
              "rrule": f"FREQ=HOURLY;BYMINUTE={k}"} for k in range(3)]
    sched = Schedule({TOPIC: {"version": 1, "items": items}})
    a = datetime(2026, 11, 22, 6, 0, tzinfo=TZ).timestamp()
    got = [o.id for o in sched.between(a, a + 2 * 3600)]
    assert got == [f"i{k}@2026-11-22T{h:02d}:{k:02d}:00" for h in (6, 7) for k in range(3)] + ["i0@2026-11-22T08:00:00"]
    many = Schedule({TOPIC: {"version": 1, "items": [{**it, "id": f"m{n}", "rrule": "FREQ=MINUTELY"}
                                                     for n, it in enumerate(items * 10)]}})
    assert len(many.between(a, a + 86400)) == MAX_LISTED
