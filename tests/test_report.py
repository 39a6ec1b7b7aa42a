"""As-run reports: what the box aired per local day, from the same records as proof of play, over real plays
heard at the ALSA tap, across midnight, a restart and a clock jump, and the daily report sent once."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from support.agentproc import audio_config
from support.incore import InCore
from support.media_files import cache_file, sine_file
from support.tap import runs, total

from agent.asrun import AsRun, ledger_rows
from agent.store import Store

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
DOC = Path(__file__).resolve().parent.parent / "docs/protocol.md"


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=TZ).timestamp()


def play_end(level: str, runs: list[tuple[str, str]], *, origin: str = "schedule", completed: bool = True,
             reason: str = "finished") -> dict:
    spans = [[at(s), at(e)] for s, e in runs]
    return {"id": "p", "origin": origin, "level": level, "started": spans[0][0] if spans else None, "runs": spans,
            "completed": completed, "reason": reason, "seconds": sum(e - s for s, e in spans)}


def test_events_map_to_ledger_rows():
    now = at("2026-12-01T08:00:00")
    cut = play_end("normal", [("2026-12-01T06:00:00", "2026-12-01T06:00:10"), ("2026-12-01T06:01:00",
                                                                                 "2026-12-01T06:01:05")],
                   completed=False, reason="stopped")
    rows = ledger_rows("play.end", cut, now)
    assert [r[:2] for r in rows] == [("sound", "normal"), ("sound", "normal"), ("played", ""), ("outcome", "cut_short")]
    alert_play = play_end("emergency", [("2026-12-01T07:00:00", "2026-12-01T07:00:30")], origin="alert")
    assert [r[:2] for r in ledger_rows("play.end", alert_play, now)] == [("sound", "emergency")]  # an alert, not
    assert ledger_rows("play.end", play_end("priority", [("2026-12-01T07:00:00", "2026-12-01T07:00:02")],
                                            origin="selftest"), now) == []  # a test tone is no broadcast
    assert ledger_rows("schedule.skipped", {"id": "x", "at": now - 60}, now) == [("outcome", "skipped", now - 60,
                                                                                  now - 60)]
    assert ledger_rows("fault.raised", {"code": "disk_low"}, now) == [("fault", "disk_low", now, now)]
    assert ledger_rows("heartbeat", {}, now) == []


class Rt:
    """The few things AsRun asks of the core, over a real store (the component's own arithmetic, no daemon)."""

    def __init__(self, now: float):
        self.now = now
        self.cfg = {"device": {"tz": "Asia/Ho_Chi_Minh"}, "report": {"daily_jitter_s": 0.0, "keep_days": 100}}
        self.device_id = "GL-0001"

    def clock(self) -> float:
        return self.now


def test_a_day_counts_what_sounded_inside_it(tmp_path):
    store = Store(tmp_path)
    events = [  # across midnight, preempted by an alert, a failure and a skipped occurrence
        ("play.end", play_end("normal", [("2026-11-30T23:59:00", "2026-11-30T23:59:30"),
                                         ("2026-12-01T00:00:10", "2026-12-01T00:01:00")])),
        ("play.end", play_end("emergency", [("2026-11-30T23:59:30", "2026-12-01T00:00:10")], origin="alert")),
        ("alert.start", {"level": "emergency"}),
        ("play.end", play_end("priority", [("2026-12-01T09:00:00", "2026-12-01T09:00:04")], origin="cli",
                              completed=False, reason="failed")),
        ("schedule.skipped", {"id": "s", "at": at("2026-12-01T06:00:00")}),
        ("display.shown", {"started": at("2026-12-01T10:00:00"), "ended": at("2026-12-01T10:00:15")}),
    ]
    now = at("2026-12-01T00:00:05")
    for kind, data in events:
        store.enqueue("t", {"kind": kind}, ledger=ledger_rows(kind, data, now))
    asrun = AsRun(Rt(at("2026-12-01T12:00:00")), store)
    asrun.spans.clear()  # only the events here
    first, second = asrun.reports("2026-12-01", 2)
    assert first["date"] == "2026-11-30" and first["on_air_s"] == {"normal": 30.0, "priority": 0.0,
                                                                  "emergency": 30.0}
    assert first["programmes"] == {"played": 1, "completed": 1, "cut_short": 0, "failed": 0, "skipped": 0}
    assert second["on_air_s"] == {"normal": 50.0, "priority": 4.0, "emergency": 10.0}
    assert second["programmes"] == {"played": 1, "completed": 0, "cut_short": 0, "failed": 1, "skipped": 1}
    assert (first["alerts"], second["alerts"]) == (0, 1) and second["display_s"] == 15.0
    example = json.loads(re.search(r"<!-- example: report -->\s*```json\n(.*?)```", DOC.read_text(), re.S)[1])
    assert example.keys() == second.keys() and example["programmes"].keys() == second["programmes"].keys()


def test_the_daily_report_goes_out_once_per_day_also_after_a_power_cut_and_a_restart(tmp_path, keys):
    settings = {"report": {"daily_jitter_s": 0}}
    with InCore(tmp_path, keys, settings, start=at("2026-12-01T10:00:00")) as box:
        box.call(box.core.parts.asrun.daily)  # a new box: nothing before today is to be reported
        assert box.events("report.daily") == []
        box.clock.jump(at("2026-12-03T00:00:30"))  # off over two midnights (a power cut), back after the second
        box.call(box.core.parts.asrun.tick)
        box.call(box.core.parts.asrun.tick)
        days = [e["date"] for e in box.events("report.daily")]
        assert days == ["2026-12-01", "2026-12-02"]
        assert box.events("report.daily")[0]["uptime_s"] > 0  # the morning of the 1st ran
    with InCore(tmp_path, keys, settings, start=at("2026-12-03T00:10:00")) as box:
        box.call(box.core.parts.asrun.tick)
        assert [e["date"] for e in box.events("report.daily")] == days, "not again after a restart"


def test_a_clock_jump_moves_what_follows_not_what_was(tmp_path, keys):
    with InCore(tmp_path, keys, {}, start=at("2026-12-01T08:00:00")) as box:
        asrun = box.core.parts.asrun
        box.call(asrun.tick)
        box.clock.jump(at("2026-12-01T20:00:00"))  # NTP puts the clock right, 12 h ahead
        box.call(asrun.tick)
        report = box.call(lambda: asrun.report("2026-12-01"))
        assert report["uptime_s"] < 60, "the jump is not counted as hours of uptime"


@pytest.mark.slow
def test_the_report_holds_real_plays_a_preemption_a_stop_and_a_restart(start_audio_agent, province, tap, tmp_path):
    agent = start_audio_agent("pyaudio", config=audio_config("pyaudio", device={"heartbeat_s": 60}))
    short = cache_file(agent, sine_file(tmp_path / "short.mp3", (400, 2)))
    long = cache_file(agent, sine_file(tmp_path / "long.mp3", (500, 5)))
    province.done(province.send("play", {"source": short}), timeout=30)  # completed
    normal = province.send("play", {"source": long})
    tap.wait_for(lambda rs: total(rs, 500) >= 1.0)
    province.done(province.send("play", {"source": {"kind": "tone", "name": "test", "duration_s": 1},
                                         "level": "priority"}), timeout=30)  # preempts, then the normal resumes
    province.done(normal, timeout=30)
    stopped = province.send("play", {"source": long})
    tap.wait_for(lambda rs: total(rs, 500) >= 6.5)
    province.done(province.send("stop", {}))
    province.done(stopped, timeout=30)

    def report() -> dict:
        return province.done(province.send("report.get", {}))["result"]

    ends = [r.payload["data"] for r in province.received
            if r.kind == "event" and isinstance(r.payload, dict) and r.payload.get("kind") == "play.end"]
    first = report()
    for level in ("normal", "priority"):  # the report and proof of play are the same records
        assert first["on_air_s"][level] == pytest.approx(sum(e["seconds"] for e in ends if e["level"] == level),
                                                         abs=0.2)
    heard = runs(tap.left())
    assert first["on_air_s"]["normal"] == pytest.approx(total(heard, 400) + total(heard, 500), abs=0.6)
    assert first["on_air_s"]["priority"] == pytest.approx(1.0, abs=0.3)
    assert first["programmes"] == {"played": 4, "completed": 3, "cut_short": 1, "failed": 0, "skipped": 0}
    assert first["online_s"] > 0 and first["uptime_s"] >= first["online_s"] - 1

    agent.stop()  # a restart mid-day: what was counted stays, uptime goes on adding up
    mark = province.mark()
    agent.start(**tap.env)
    province.status("online", after=mark)
    again = report()
    assert again["on_air_s"] == first["on_air_s"] and again["programmes"] == first["programmes"]
    assert again["uptime_s"] >= first["uptime_s"]
    out = agent.cli("report", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["reports"][0]["on_air_s"] == again["on_air_s"]
    csv = agent.cli("report", "--csv", "--days", "2").stdout.splitlines()
    assert csv[0].startswith("date,tz,device_id,on_air_s.normal") and len(csv) == 3
    assert csv[2].split(",")[6:11] == ["4", "3", "1", "0", "0"]  # played, completed, cut short, failed, skipped
    vi = agent.cli("report", LOA_LANG="vi").stdout
    assert "4 đã phát: 3 trọn vẹn, 1 bị ngắt" in vi, vi


def test_report_get_rejects_a_bad_date(agent, province):
    ack = province.ack(province.send("report.get", {"date": "2026-13-45"}))
    assert ack["status"] == "rejected" and ack["code"] == "bad_schema" and "date" in ack["message"]



def test_a_living_span_grows_its_row_in_place_and_keeps_the_same_intervals(tmp_path):
    """Uptime is written every tick by growing one row (an UPDATE), a new row only past MAX_ROW_S or after a clock
    jump; what the ledger holds after each tick (a power cut's view) is all the time up to that tick."""
    from types import SimpleNamespace

    from agent.asrun import MAX_ROW_S, TICK_S

    wall, mono = [at("2026-12-01T08:00:00")], [100.0]
    rt = SimpleNamespace(clock=lambda: wall[0], cfg={"device": {"tz": "Asia/Ho_Chi_Minh"}})
    store = Store(tmp_path)
    asrun = AsRun(rt, store, monotonic=lambda: mono[0])  # type: ignore[arg-type]

    def tick(seconds: float, jump: float = 0.0) -> None:
        mono[0] += seconds
        wall[0] += seconds + jump
        asrun._write(list(asrun.spans.values()), rt.clock())

    def rows() -> list[tuple[float, float]]:
        got = Store(tmp_path, readonly=True)  # a second reader: what a restart after a power cut finds
        try:
            return got.db.execute("SELECT start, end FROM ledger WHERE kind = 'up' ORDER BY start").fetchall()
        finally:
            got.close()

    start = wall[0]
    for n in range(1, int(MAX_ROW_S / TICK_S) + 1):
        tick(TICK_S)
        assert rows() == [(start, start + n * TICK_S)], "one row, grown to the last tick"
    tick(TICK_S)  # past MAX_ROW_S: a new row
    assert rows() == [(start, start + MAX_ROW_S), (start + MAX_ROW_S, start + MAX_ROW_S + TICK_S)]
    tick(TICK_S, jump=12 * 3600)  # NTP moved the clock 12 h: this tick's time still grows the row, what follows moves
    tick(TICK_S)
    after = rows()
    assert after[:2] == [(start, start + MAX_ROW_S), (start + MAX_ROW_S, start + MAX_ROW_S + 2 * TICK_S)]
    assert after[2] == (wall[0] - TICK_S, wall[0]), "a new row where the clock now is"
    assert sum(e - s for s, e in after) == MAX_ROW_S + 3 * TICK_S, "no hour of the jump counted"
    store.close()
