"""The self-test (`selftest` command, `loa selftest`) on the real agent: tones heard at the ALSA tap, relays in
the sim GPIO, a microphone fed by ALSA's `file` capture (tests/support/mic.py), acks and events over a real
Mosquitto."""

from __future__ import annotations

import json
import re
from array import array
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from support.mic import Mic, noise, tone
from support.tap import total

from agent import config
from agent.ipc import request
from agent.selftest import CALIBRATION_FILE, daily_skip_reason, heard, measure, next_daily

ZONES = [{"name": "north", "relay_pin": 17}, {"name": "south", "relay_pin": 27}]
TZ = "Asia/Ho_Chi_Minh"


def by_check(result: dict) -> dict[tuple[str, str], dict]:
    return {(c["zone"], c["name"]): c for c in result["checks"]}


def gpio_log(tmp_path) -> list[dict]:
    path = tmp_path / "gpio.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def selftest_over_mqtt(province, **params) -> dict:
    jti = province.send("selftest", params or None)
    assert province.ack(jti, final=False)["status"] == "accepted"
    return province.done(jti, timeout=90)


def test_selftest_plays_each_zone_in_turn_through_the_tap_over_mqtt_and_loa(start_audio_agent, province, tap,
                                                                            tmp_path):
    agent = start_audio_agent("pyaudio", zones=ZONES, selftest={"tone_s": 1.0})
    mark = province.mark()
    ack = selftest_over_mqtt(province)
    res = ack["result"]
    assert res["ok"] is True and res["calibrated"] is False, res
    checks = by_check(res)
    assert set(checks) == {(z, n) for z in ("north", "south") for n in ("relay", "played")}  # no mic: no acoustic
    assert all(c["ok"] and c["figure"] for c in res["checks"]), res
    assert checks["north", "relay"]["pin"] == 17 and checks["south", "relay"]["pin"] == 27
    assert all(0.9 <= checks[z, "played"]["seconds"] <= 1.1 for z in ("north", "south")), res
    assert "passed" in ack["message"]
    event = province.event("selftest", after=mark)
    assert event["data"] == {"ok": True, "checks": res["checks"], "calibrated": False}

    # Each zone in turn: its own play (proof of play says which zone), its relay on before its first sample.
    starts = [province.event("play.start", after=mark, pred=lambda e, z=z: e["data"]["origin"] == "selftest"
                             and e["data"]["zones"] == [z])["data"] for z in ("north", "south")]
    assert starts[0]["started"] < starts[1]["started"]
    ons = {e["pin"]: e["wall"] for e in reversed(gpio_log(tmp_path)) if e["active"]}  # the first time each went on
    assert ons[17] <= starts[0]["started"] and starts[0]["started"] < ons[27] <= starts[1]["started"], (ons, starts)
    rs = tap.wait_for(lambda rs: total(rs, 1000) >= 1.9 and rs)
    assert total(rs, 1000) <= 2.2, rs  # two zones x 1 s of 1 kHz, nothing else

    mark_tap = tap.mark()
    out = agent.cli("selftest", timeout=90)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert [line.split()[:3] for line in lines[:4]] == [["PASS", "north", "relay"], ["PASS", "north", "played"],
                                                        ["PASS", "south", "relay"], ["PASS", "south", "played"]]
    assert "GPIO 17 on for" in lines[0] and re.search(r"[\d.]+ s of 1 s at volume 80", lines[1]), lines
    assert "self-test passed" in lines[-1]
    tap.wait_for(lambda rs: total(rs, 1000) >= 1.9, start=mark_tap)


def test_microphone_calibration_then_pass_then_weak_and_silent_horns_fail(start_audio_agent, province, tap):
    mic = Mic(tap)  # before the agent starts: it reads the tap's .asoundrc, now with `pcm.mic`
    mic.feed(tone(-20.0))
    agent = start_audio_agent("pyaudio", zones=ZONES, selftest={"tone_s": 1.0, "mic_device": "mic",
                                                                "tolerance_db": 6})
    calibration = agent.state_dir / CALIBRATION_FILE

    # Not calibrated yet: the tone is heard, but there is nothing to compare it with.
    out = agent.cli("selftest", "--json", timeout=90)
    assert out.returncode == 1, out.stdout + out.stderr
    res = json.loads(out.stdout)
    acoustic = by_check(res)["north", "acoustic"]
    assert acoustic["ok"] is False and "loa selftest --calibrate" in acoustic["figure"]
    assert abs(acoustic["level_dbfs"] + 20) <= 0.5 and by_check(res)["north", "played"]["ok"]

    # Calibration at install: the measured levels become the reference, per zone.
    out = agent.cli("selftest", "--calibrate", timeout=90)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("reference taken: 1 kHz at") == 2 and "calibrated north, south" in out.stdout
    saved = json.loads(calibration.read_text())
    assert saved["mic_device"] == "mic" and set(saved["zones"]) == {"north", "south"}
    for ref in saved["zones"].values():
        assert abs(ref["level_dbfs"] + 20) <= 0.5 and ref["rest_dbfs"] < -45 and ref["volume"] == 80, saved

    # The same horn again: passes, with its figures.
    res = selftest_over_mqtt(province)["result"]
    assert res["ok"] is True and res["calibrated"] is False, res
    for zone in ("north", "south"):
        a = by_check(res)[zone, "acoustic"]
        assert a["ok"] and abs(a["level_dbfs"] + 20) <= 0.5 and abs(a["delta_db"]) <= 0.5, a
        assert a["reference_dbfs"] == saved["zones"][zone]["level_dbfs"] and a["tolerance_db"] == 6
        assert "dBFS" in a["figure"] and a["snr_db"] > 40

    # A horn 12 dB weaker: out of tolerance.
    mic.feed(tone(-32.0))
    res = selftest_over_mqtt(province)["result"]
    a = by_check(res)["north", "acoustic"]
    assert res["ok"] is False and a["ok"] is False and -12.6 <= a["delta_db"] <= -11.4, a
    assert by_check(res)["north", "relay"]["ok"] and by_check(res)["north", "played"]["ok"]

    # Silence (a quiet room, no tone): fails, saying what it measured and what it expected.
    mic.feed(noise())
    out = agent.cli("selftest", timeout=90)
    assert out.returncode == 1, out.stdout + out.stderr
    fails = [line for line in out.stdout.splitlines() if line.startswith("FAIL")]
    assert [line.split()[1:3] for line in fails] == [["north", "acoustic"], ["south", "acoustic"]], out.stdout
    ref = saved["zones"]["north"]["level_dbfs"]
    assert f"reference {ref:.1f} dBFS" in fails[0] and "no tone heard" in fails[0], fails
    level = float(fails[0].split("1 kHz at ")[1].split(" dBFS")[0])
    assert level < -60, fails
    assert "self-test failed: north acoustic, south acoustic" in out.stdout

    # Calibrating on silence fails and keeps the reference taken before.
    out = agent.cli("selftest", "--calibrate", "--json", timeout=90)
    assert out.returncode == 1
    res = json.loads(out.stdout)
    assert res["calibrated"] is False and "not calibrated" in by_check(res)["north", "acoustic"]["figure"]
    assert json.loads(calibration.read_text()) == saved


def test_zone_whose_relay_feedback_never_answers_fails_its_feedback_check(start_audio_agent, province, tap):
    agent = start_audio_agent("pyaudio", selftest={"tone_s": 1.0}, zones=[
        {"name": "north", "relay_pin": 17, "feedback_pin": 22}, {"name": "south", "relay_pin": 27, "feedback_pin": 23}])
    # North's relay contact answers on GPIO 22; south's feedback input (GPIO 23) stays inactive.
    request(config.load(agent.config_path)["paths"]["socket"], "sim_drive", pin=22, active=True)
    mark = province.mark()
    ack = selftest_over_mqtt(province)
    res = ack["result"]
    checks = by_check(res)
    assert res["ok"] is False, res
    assert checks["north", "feedback"]["ok"] is True and checks["north", "feedback"]["active"] is True
    south = checks["south", "feedback"]
    assert south["ok"] is False and south["active"] is False and "feedback GPIO 23 stayed inactive" in south["figure"]
    assert all(checks[z, n]["ok"] for z in ("north", "south") for n in ("relay", "played")), res
    assert ack["message"] == "self-test failed: south feedback"
    assert province.event("selftest", after=mark)["data"]["ok"] is False
    fault = province.event("fault.raised", after=mark, pred=lambda e: e["data"]["code"] == "amp_no_feedback")
    assert fault["data"]["message"].startswith("zone south:")


def test_selftest_never_interrupts_an_alert(start_audio_agent, province, tap):
    start_audio_agent("pyaudio", selftest={"tone_s": 1.0})
    alert = province.send("play", {"source": {"kind": "tone", "name": "siren", "duration_s": 3}, "level": "emergency",
                                   "volume": 100})
    province.event("play.start", pred=lambda e: e["data"]["id"] == alert)
    jti = province.send("selftest")
    ack = province.ack(jti)
    assert (ack["status"], ack["code"]) == ("failed", "device_fault") and "an alert is playing" in ack["message"]
    assert ack["result"] == {"ok": False, "checks": [], "calibrated": False}
    end = province.event("play.end", pred=lambda e: e["data"]["id"] == alert, timeout=30)
    assert end["data"]["completed"] is True and end["data"]["reason"] == "finished"


def test_an_alert_during_the_selftest_plays_first_and_the_zone_is_tested_again(start_audio_agent, province, tap):
    start_audio_agent("pyaudio", selftest={"tone_s": 4.0})
    mark = province.mark()
    jti = province.send("selftest")
    province.event("play.start", after=mark, pred=lambda e: e["data"]["origin"] == "selftest")
    alert = province.send("play", {"source": {"kind": "tone", "name": "siren", "duration_s": 3}, "level": "emergency",
                                   "volume": 100})
    ack = province.done(jti, timeout=90)
    end = province.event("play.end", after=mark, pred=lambda e: e["data"]["id"] == alert)
    assert end["data"]["completed"] is True and end["data"]["reason"] == "finished"  # the alert was not cut
    res = ack["result"]
    assert res["ok"] is True and [(c["zone"], c["name"]) for c in res["checks"]] == [("main", "relay"),
                                                                                      ("main", "played")], res
    with province.cond:
        starts = [r.payload["data"] for r in province.received[mark:] if r.kind == "event"
                  and r.payload["kind"] == "play.start" and r.payload["data"]["origin"] == "selftest"]
    assert len(starts) == 2, starts  # the tone the alert held up, then the zone tested again after it
    assert starts[1]["started"] >= end["data"]["ended"] - 0.5


@pytest.mark.slow
def test_daily_selftest_runs_at_its_local_time(start_audio_agent, province, tap):
    now = datetime.now(ZoneInfo(TZ))
    at = (now + timedelta(minutes=1 if now.second < 30 else 2)).strftime("%H:%M")  # 30 s or more to start
    due = next_daily(at, now.timestamp(), TZ)
    mark = province.mark()
    start_audio_agent("pyaudio", selftest={"tone_s": 0.5, "daily": at}, device={"tz": TZ})
    event = province.event("selftest", after=mark, timeout=240)
    assert event["data"]["ok"] is True and {c["name"] for c in event["data"]["checks"]} == {"relay", "played"}
    ended = datetime.fromisoformat(event["at"].replace("Z", "+00:00")).timestamp()
    assert due <= ended <= due + 30, (at, event["at"])  # at its time, not before and not much after


# --- the pure parts: the daily time and the measurement ----------------------------------------------------
def test_next_daily_time_is_the_next_local_occurrence():
    tz = ZoneInfo(TZ)
    t = datetime(2026, 11, 23, 9, 59, 30, tzinfo=tz).timestamp()
    assert next_daily("10:00", t, TZ) == t + 30
    assert next_daily("10:00", t + 30, TZ) == t + 30 + 86400  # due now: the next one is tomorrow
    berlin = ZoneInfo("Europe/Berlin")  # across a DST change the local time holds, not the 24 h
    t = datetime(2026, 3, 28, 12, 0, tzinfo=berlin).timestamp()
    assert next_daily("10:00", t, "Europe/Berlin") == datetime(2026, 3, 29, 10, 0, tzinfo=berlin).timestamp()


def test_daily_time_in_quiet_hours_is_skipped():
    quiet = [{"from": "21:30", "to": "05:30", "max_volume": 0}]
    tz = ZoneInfo(TZ)
    assert daily_skip_reason(quiet, datetime(2026, 11, 23, 22, 0, tzinfo=tz).timestamp(), TZ) == \
        "quiet hours 21:30-05:30"
    assert daily_skip_reason(quiet, datetime(2026, 11, 23, 10, 0, tzinfo=tz).timestamp(), TZ) is None
    assert daily_skip_reason([], datetime(2026, 11, 23, 22, 0, tzinfo=tz).timestamp(), TZ) is None


def pcm(signal) -> array:
    import numpy as np

    return array("h", np.clip(np.round(signal * 32767), -32768, 32767).astype("<i2").tobytes())


def test_goertzel_level_at_1khz_and_the_rest():
    import numpy as np

    fig = measure(pcm(tone(-20.0, noise_dbfs=-50.0, seconds=3)), 48000)
    assert abs(fig["level_dbfs"] + 20) <= 0.2 and abs(fig["rest_dbfs"] + 50) <= 1.0 and heard(fig), fig
    # The tone only in part of the recording (relay warm-up before it, silence after): its level still.
    part = np.concatenate([noise(-60, 1.23), tone(-26.0, -60, 1.0), noise(-60, 1.0)])
    fig = measure(pcm(part), 48000)
    assert abs(fig["level_dbfs"] + 26) <= 0.3 and heard(fig), fig
    # A quiet room, digital silence and another frequency are not a 1 kHz tone.
    assert not heard(fig := measure(pcm(noise(-50.0, seconds=3)), 48000)) and fig["level_dbfs"] < -70, fig
    fig = measure(array("h", bytes(48000 * 2)), 48000)
    assert (fig["level_dbfs"], fig["rest_dbfs"], heard(fig)) == (-120.0, -120.0, False)
    fig = measure(pcm(tone(-20.0, -90, seconds=2, freq=700.0)), 48000)
    assert not heard(fig) and fig["rest_dbfs"] > -21, fig
    # A microphone at 44.1 kHz whose clock runs a little fast.
    t = np.arange(44100 * 2) / 44100
    fig = measure(pcm(0.1 * np.sin(2 * np.pi * 1000.5 * t)), 44100)
    assert abs(fig["level_dbfs"] + 20) <= 0.3 and heard(fig), fig
