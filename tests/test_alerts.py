"""Emergency alerts: CAP 1.2 mapping, and alerts over MQTT heard at the ALSA tap."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
from support.agentproc import audio_config, eventually
from support.fileserver import FileServer
from support.media_files import cache_file, sine_file
from support.tap import active_seconds, total

from agent.alerts import from_cap, resource_bytes
from agent.errors import Rejection
from loa_console.keys import load_private_key

CAP = Path(__file__).parent / "data" / "cap"
HERE = {"areas": ["64", "64.23581"], "location": {"lat": 13.98, "lon": 108.0}}


def cap(name: str) -> str:
    return (CAP / f"{name}.xml").read_text(encoding="utf-8")


def test_cap_mapping():
    typhoon = from_cap(cap("typhoon"), **HERE)
    assert typhoon.identifier == "VN-NCHMF-2026-11-22-BAO-SO-5" and typhoon.status == "actual"
    assert typhoon.headline == "Bão số 5 sắp đổ bộ" and typhoon.level == "emergency"  # the vi-VN info
    assert "di chuyển đến nơi tránh trú" in typhoon.speech()
    flood = from_cap(cap("flood-polygon"), **HERE)  # no geocode; the polygon holds the box
    assert flood.level == "emergency" and flood.instruction.startswith("Không đi qua")
    with pytest.raises(Rejection) as e:
        from_cap(cap("epidemic-elsewhere"), **HERE)  # geocode 66 and a circle around Buôn Ma Thuột
    assert e.value.code == "not_for_me"
    drill = from_cap(cap("test-drill"), **HERE)
    assert drill.drill and drill.level == "priority" and drill.speech().startswith("Đây là tin thử nghiệm.")
    assert not from_cap(cap("system"), **HERE).plays
    cancel = from_cap(cap("cancel"), **HERE)
    assert cancel.msg_type == "cancel" and cancel.references == ["VN-NCHMF-2026-11-22-BAO-SO-5"]
    bad = from_cap(cap("bad-digest"), **HERE)
    with pytest.raises(ValueError, match="digest"):
        resource_bytes(bad.audio)


@pytest.mark.parametrize("xml", [
    ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "lol">]><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'
     "<identifier>&x;</identifier></alert>"),
    '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><alert>&x;</alert>',
    "<alert>not closed",
    '<feed xmlns="http://www.w3.org/2005/Atom"/>',
])
def test_hostile_or_wrong_xml_is_refused(xml):
    with pytest.raises(Rejection) as e:
        from_cap(xml, **HERE)
    assert e.value.code == "bad_schema"


def siren_heard(rs) -> float:
    """Seconds of the siren's two tones (650/900 Hz half-cycles, not a chime's short 880 Hz note)."""
    long = [r for r in rs if r.duration_s >= 0.3]
    return total(long, 650, 0.015) + total(long, 900, 0.015)


def test_alert_interrupts_a_programme_which_then_resumes(start_audio_agent, province, tap, tmp_path):
    agent = start_audio_agent("pyaudio")
    src = cache_file(agent, sine_file(tmp_path / "programme.mp3", (400, 4)))
    normal = province.send("play", {"source": src, "volume": 100})
    tap.wait_for(lambda rs: total(rs, 400) >= 1.0)
    jti = province.send("alert", {"cap": cap("typhoon"), "repeat": 1})
    assert province.ack(jti, final=False)["status"] == "accepted"
    ack = province.done(jti, timeout=60)
    assert ack["result"]["completed"] is True
    start = province.event("alert.start", pred=lambda e: e["data"]["id"] == jti)
    assert start["data"]["identifier"] == "VN-NCHMF-2026-11-22-BAO-SO-5" and start["data"]["level"] == "emergency"
    end = province.event("alert.end", pred=lambda e: e["data"]["id"] == jti)
    assert end["data"]["plays"] == 1 and end["data"]["cut_short"] is False
    province.done(normal, timeout=30)
    rs = tap.wait_for(lambda rs: total(rs, 400) >= 3.5 and rs)
    freqs = [min((400, 650, 900), key=lambda f: abs(f - r.freq)) for r in rs]
    assert freqs[0] == 400 and freqs[-1] == 400 and siren_heard(rs) >= 5.0, rs
    first_siren = next(i for i, f in enumerate(freqs) if f != 400)
    speech = rs[first_siren:]
    assert active_seconds(tap.left()) - total(rs, 400) - siren_heard(rs) > 1.0, "the message was spoken too"
    assert speech


def test_cap_cancel_stops_a_running_alert(start_audio_agent, province, tap):
    start_audio_agent("pyaudio")
    jti = province.send("alert", {"cap": cap("typhoon"), "repeat": 5})
    tap.wait_for(lambda rs: siren_heard(rs) >= 1.0)
    cancel = province.done(province.send("alert", {"cap": cap("cancel")}))
    assert cancel["result"]["cancelled"] == 1
    ack = province.done(jti)
    assert ack["result"]["completed"] is False and ack["result"]["reason"] == "stopped"
    end = province.event("alert.end", pred=lambda e: e["data"]["id"] == jti)
    assert end["data"]["cut_short"] is True


def test_status_system_and_duplicates_are_not_played(start_audio_agent, province, tap):
    start_audio_agent("pyaudio")
    ack = province.done(province.send("alert", {"cap": cap("system")}))
    assert ack["result"] == {"played": False}
    province.done(province.send("alert", {"cap": cap("flood-polygon"), "repeat": 1, "siren": False}), timeout=60)
    again = province.done(province.send("alert", {"cap": cap("flood-polygon"), "repeat": 1}))
    assert again["result"] == {"played": False} and "already delivered" in again["message"]


def test_drill_is_announced_with_a_chime_at_priority(start_audio_agent, province, tap):
    start_audio_agent("pyaudio")
    jti = province.send("alert", {"cap": cap("test-drill"), "repeat": 1})
    province.done(jti, timeout=60)
    start = province.event("alert.start", pred=lambda e: e["data"]["id"] == jti)
    assert start["data"]["drill"] is True and start["data"]["level"] == "priority"
    rs = tap.wait_for(lambda rs: total(rs, 1046.5) > 0.2 and rs)
    assert siren_heard(rs) < 0.5, "a drill never sounds the siren"


def test_bad_resource_digest_is_not_played_but_the_alert_is_spoken(start_audio_agent, province, tap):
    start_audio_agent("pyaudio")
    jti = province.send("alert", {"cap": cap("bad-digest"), "repeat": 1, "siren": False})
    province.done(jti, timeout=60)
    ev = province.event("alert.resource_rejected")
    assert "digest" in ev["data"]["error"]
    assert active_seconds(tap.left()) > 1.0  # the headline, spoken


def test_area_alert_reaches_only_the_boxes_of_that_area(make_agent, province, tap, tmp_path):
    mark = province.mark()
    make_agent("GL-0001", config={"audio": {"backend": "null"}}).start()
    make_agent("GL-0002", config={"audio": {"backend": "null"}, "device": {"areas": ["66"],
                                                                          "location": {"lat": 21.0, "lon": 105.8}}}
               ).start()
    province.status("online", after=mark)
    province.status("online", after=mark, device="GL-0002")
    jti, token = province.token("alert", {"cap": cap("typhoon"), "repeat": 1, "siren": False})
    province.publish("ttcs/v1/all/cmd", token)
    assert province.ack(jti, device="GL-0001", final=False)["status"] == "accepted"
    other = province.ack(jti, device="GL-0002")
    assert (other["status"], other["code"]) == ("rejected", "not_for_me")
    province.event("alert.start", pred=lambda e: e["data"]["id"] == jti)


def test_an_alert_resumes_after_a_power_cut_unless_expired(start_audio_agent, province, tap):
    agent = start_audio_agent("pyaudio")
    jti = province.send("alert", {"headline": "Lũ lớn trên sông Ba", "repeat": 3,
                                  "expires": time.strftime("%Y-%m-%dT%H:%M:%S+00:00",
                                                           time.gmtime(time.time() + 600))})
    tap.wait_for(lambda rs: siren_heard(rs) >= 1.0)
    agent.kill()
    mark = province.mark()
    agent.start(**tap.env)
    again = province.event("alert.start", after=mark, pred=lambda e: e["data"]["id"] == jti)
    assert again["data"]["headline"] == "Lũ lớn trên sông Ba"
    province.send("stop", {"level": "emergency"})


def test_forged_alert_never_sounds(start_audio_agent, province, tap, keys):
    start_audio_agent("pyaudio")
    forger = load_private_key(keys["prov-2"])
    _, token = province.token("alert", {"headline": "Giả mạo", "repeat": 1}, key=forger, kid="prov-1")
    province.publish("ttcs/v1/dev/GL-0001/cmd", token)
    ack = province.wait(lambda r: r.kind == "ack" and r.payload["status"] == "rejected").payload
    assert ack["code"] == "bad_signature"
    time.sleep(0.5)  # what a forged siren would need to reach the tap
    assert active_seconds(tap.left()) == 0


def test_an_expired_alert_does_not_resume(start_audio_agent, province, tap):
    agent = start_audio_agent("pyaudio")
    expires = time.time() + 3
    jti = province.send("alert", {"headline": "Triều cường", "repeat": 5,
                                  "expires": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(expires))})
    tap.wait_for(lambda rs: siren_heard(rs) >= 0.5)
    agent.kill()
    time.sleep(max(0.0, expires + 0.5 - time.time()))  # the power stays off past the alert's expiry
    mark = province.mark()
    agent.start(**tap.env)
    ack = province.ack(jti, after=mark)
    assert (ack["status"], ack["code"]) == ("rejected", "expired")
    assert not [r for r in province.received[mark:] if r.kind == "event" and r.payload["kind"] == "alert.start"]


def test_replayed_alert_never_sounds_again(start_audio_agent, province, tap):
    start_audio_agent("pyaudio")
    jti, token = province.token("alert", {"headline": "Sạt lở đất", "repeat": 1, "siren": False})
    province.publish("ttcs/v1/dev/GL-0001/cmd", token)
    province.done(jti, timeout=60)
    mark = province.mark()
    province.publish("ttcs/v1/dev/GL-0001/cmd", token)
    assert province.ack(jti, after=mark)["code"] == "replayed"
    assert not [r for r in province.received[mark:] if r.kind == "event" and r.payload["kind"] == "alert.start"]


def test_cap_names_recorded_announcements():
    alert = from_cap(cap("flood-jrai"), **HERE)
    assert alert.announcements == ["lu-quet-jrai"] and alert.level == "emergency"
    assert from_cap(cap("typhoon"), **HERE).announcements == []


def test_a_recorded_announcement_is_fetched_ahead_and_played_instead_of_the_text(start_audio_agent, province, tap,
                                                                                  tmp_path):
    """A province's recording (say, Gia Rai) named by a CAP parameter plays from the cache, not the Vietnamese
    text; the prefetcher fetched it when the config named it, before any alert."""
    media = tmp_path / "media"
    media.mkdir()
    recording = sine_file(media / "lu-quet-jrai.mp3", (500, 2.5))
    digest = hashlib.sha256(recording.read_bytes()).hexdigest()
    with FileServer(media) as server:
        agent = start_audio_agent("pyaudio", config=audio_config("pyaudio", announcements={
            "lu-quet-jrai": {"url": server.url(recording.name), "sha256": digest, "lang": "jra"}}))
        eventually(lambda: (agent.state_dir / "cache" / digest).exists(), what="the recording prefetched")
    jti = province.send("alert", {"cap": cap("flood-jrai"), "repeat": 1, "siren": False})
    province.done(jti, timeout=60)
    rs = tap.wait_for(lambda rs: total(rs, 500) >= 2.0 and rs)
    assert active_seconds(tap.left()) - total(rs, 500) < 0.5, "the text was spoken as well"
    with pytest.raises(TimeoutError):
        province.event("alert.resource_rejected", timeout=0.5)


def test_an_unknown_announcement_falls_back_to_the_spoken_text(start_audio_agent, province, tap):
    start_audio_agent("pyaudio")
    jti = province.send("alert", {"headline": "Sơ tán ngay khỏi vùng trũng", "announcements": ["ede-evac"],
                                  "repeat": 1, "siren": False})
    province.done(jti, timeout=60)
    ev = province.event("alert.resource_rejected")
    assert "ede-evac" in ev["data"]["error"]
    assert active_seconds(tap.left()) > 1.0  # the headline, spoken
