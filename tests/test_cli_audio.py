"""The technician's audio commands through `loa`, heard at the ALSA tap; and a box without a sound card."""

from __future__ import annotations

import json

from support.agentproc import audio_config
from support.tap import total


def test_loa_play_tone_say_volume_stop_and_amp(start_audio_agent, province, tap):
    agent = start_audio_agent("pyaudio")
    out = agent.cli("play", "--tone", "test", "--duration", "1", "--volume", "100")
    assert out.returncode == 0 and "playing (priority)" in out.stdout, out.stderr
    cli_id = out.stdout.split()[-1]
    start = province.event("play.start", pred=lambda e: e["data"]["id"] == cli_id)
    assert start["data"]["origin"] == "cli" and start["data"]["level"] == "priority"
    tap.wait_for(lambda rs: total(rs, 1000) >= 0.9)

    out = agent.cli("volume", "35")
    assert out.returncode == 0 and "volume 35" in out.stdout
    st = json.loads(agent.cli("status", "--json").stdout)
    assert st["audio"]["volume"]["default"] == 35

    out = agent.cli("amp", "on")
    assert out.returncode == 0 and "main on" in out.stdout
    assert json.loads(agent.cli("status", "--json").stdout)["audio"]["amp"]["zones"]["main"] is True
    assert "main off" in agent.cli("amp", "off").stdout

    out = agent.cli("say", "Xin chào")
    assert out.returncode == 0, out.stderr
    say_id = out.stdout.split()[-1]
    province.event("play.end", pred=lambda e: e["data"]["id"] == say_id, timeout=30)

    out = agent.cli("play", "--tone", "siren", "--duration", "60")
    siren_id = out.stdout.split()[-1]
    province.event("play.start", pred=lambda e: e["data"]["id"] == siren_id)
    out = agent.cli("stop")
    assert out.returncode == 0 and "stopped 1" in out.stdout
    end = province.event("play.end", pred=lambda e: e["data"]["id"] == siren_id)
    assert end["data"]["reason"] == "stopped" and end["data"]["completed"] is False


def test_technician_play_never_overrides_an_emergency(start_audio_agent, province, tap):
    agent = start_audio_agent("pyaudio")
    alert = province.send("play", {"source": {"kind": "tone", "name": "siren", "duration_s": 3},
                                   "level": "emergency", "volume": 100})
    province.event("play.start", pred=lambda e: e["data"]["id"] == alert)
    assert "stopped 0" in agent.cli("stop").stdout  # `loa stop` never touches an emergency
    out = agent.cli("play", "--tone", "test", "--duration", "1")
    cli_id = out.stdout.split()[-1]
    province.done(alert)
    first_cli = province.event("play.start", pred=lambda e: e["data"]["id"] == cli_id)
    alert_end = province.event("play.end", pred=lambda e: e["data"]["id"] == alert)
    assert alert_end["data"]["completed"] is True and first_cli["data"]["started"] >= alert_end["data"]["ended"] - 0.5


def test_loa_test_reports_each_zone(start_audio_agent, province, tap):
    agent = start_audio_agent("pyaudio", zones=[{"name": "north", "relay_pin": 17}, {"name": "south",
                                                                                       "relay_pin": 27}])
    out = agent.cli("test", "--json", timeout=90)
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["ok"] is True and set(report["zones"]) == {"north", "south"}
    assert all(z["relay_switched_on"] for z in report["zones"].values())
    rs = tap.wait_for(lambda rs: total(rs, 1000) >= 3.8 and rs)
    assert total(rs, 1000) >= 3.8  # two zones x 2 s of 1 kHz


def test_relay_without_feedback_raises_a_fault(start_audio_agent, province, tap):
    start_audio_agent("pyaudio", zones=[{"name": "main", "relay_pin": 17, "feedback_pin": 22}])
    province.done(province.send("play", {"source": {"kind": "tone", "name": "chime"}}))
    ev = province.event("fault.raised", pred=lambda e: e["data"]["code"] == "amp_no_feedback")
    assert "GPIO 22" in ev["data"]["message"]


def test_missing_sound_card_is_a_fault_not_a_crash(make_agent, province, tap):
    cfg = audio_config("pyaudio")
    cfg["audio"]["device"] = "no-such-card"
    mark = province.mark()
    agent = make_agent(config=cfg).start(**tap.env)
    province.status("online", after=mark)
    ev = province.event("fault.raised", pred=lambda e: e["data"]["code"] == "audio_device")
    assert "no-such-card" in ev["data"]["message"]
    ack = province.ack(province.send("play", {"source": {"kind": "tone", "name": "chime"}}))
    assert (ack["status"], ack["code"]) == ("failed", "device_fault"), ack
    assert province.done(province.send("status.get"))["result"]["faults"] == ["audio_device"]
    assert agent.proc.poll() is None
