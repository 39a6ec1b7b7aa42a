"""Hostile and pathological inputs from a signed source (issue 18): each sent as the province would, correctly
signed, through Mosquitto to the real agent; each must end in a clear rejection or a bounded cost, the agent's
memory must stay under 150 MB, and an emergency sent right after must start its siren at once.

The siren is timed from the alert's publish to its first sample at an unpaced ALSA tap (as scripts/bench_alert
does). The issue's goal is 100 ms; the assertion allows SIREN_BOUND_MS so that a loaded 2-core test box does not
flake; the figures measured are in docs/reliability.md.
"""

from __future__ import annotations

import hashlib
import socket
import time
from pathlib import Path

import pytest
from PIL import Image
from support.agentproc import Agent, audio_config, eventually
from support.fileserver import FileServer
from support.frames import dominant, is_red
from support.measure import rss_mb
from support.media_files import sine_file
from support.schedules import local, publish_schedule, tone_item
from support.tap import FineTap

from agent.media import MediaCache

MAX_RSS_MB = 150.0
SIREN_BOUND_MS = 400.0  # the goal is 100 ms (measured well under it); this is the flake margin on a loaded box
FRAME_BOUND_MS = 1500.0  # the alert's red frame behind a pathological text scene (measured ~0.2 s)
CMD = "ttcs/v1/dev/GL-0001/cmd"
FIGURES: dict[str, float] = {}


@pytest.fixture
def fine_tap(tmp_path: Path):
    t = FineTap(tmp_path / "home", paced=True)
    yield t
    t.close()


@pytest.fixture
def box(make_agent, province, fine_tap, tmp_path):
    """A speaker and e-board (png) whose audio reaches the fine tap; quick download limits."""
    def start(**extra: object) -> Agent:
        cfg = audio_config("pyaudio", device={"capabilities": ["speaker", "display"], "heartbeat_s": 3600},
                           display={"backend": "png", "png_dir": str(tmp_path / "frames"), "width": 640,
                                    "height": 360},
                           cache={"download_deadline_s": 4, "max_download_mb": 2}, log={"level": "info"})
        for key, value in extra.items():
            cfg[key] = {**cfg.get(key, {}), **value}  # type: ignore[dict-item]
        mark = province.mark()
        agent = make_agent(config=cfg).start(**fine_tap.env)
        province.status("online", after=mark)
        return agent
    return start


def siren_ms(province, tap: FineTap, agent: Agent, what: str, meanwhile=None) -> tuple[float, str]:
    """An emergency now: ms from its publish to its first siren sample at the tap (and its id); then stopped.
    Also checks the agent's memory."""
    tap.wait_quiet()
    mark, pmark = tap.mark(), province.mark()
    jti, token = province.token("alert", {"headline": "Lũ quét thôn 3", "repeat": 1})
    t0 = time.monotonic()
    province.publish(CMD, token)
    heard, _ = tap.first_sound(mark, timeout=30)
    ms = (heard - t0) * 1000
    if meanwhile:  # before the alert is stopped
        meanwhile(t0)
    province.ack(province.send("stop", {"level": "emergency"}), after=pmark)
    province.ack(jti, after=pmark, timeout=60)
    rss = rss_mb(agent.proc.pid)
    FIGURES[what] = ms
    print(f"\n{what}: siren {ms:.1f} ms after the publish; agent RSS {rss:.0f} MB")
    assert rss < MAX_RSS_MB, f"{what}: RSS {rss:.0f} MB"
    assert ms < SIREN_BOUND_MS, f"{what}: the siren started {ms:.0f} ms after the publish"
    return ms, jti


def rejected(province, jti: str, code: str, field: str | None = None, timeout: float = 15.0) -> dict:
    ack = province.ack(jti, timeout=timeout)
    assert (ack["status"], ack.get("code")) == ("rejected", code), ack
    if field:
        assert field in ack["message"], ack
    return ack


# --- 1, 2, 8: schedules --------------------------------------------------------------------------
def test_rules_that_never_match_or_fire_too_often_are_refused_at_once(box, province, fine_tap):
    agent = box()
    start = local(time.time() + 3600)
    never = [tone_item(f"feb30-{i}", 0, start=start, rrule="FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=30")
             for i in range(800)]
    t0 = time.monotonic()
    ack = rejected(province, publish_schedule(province, 1, never), "bad_schema", "items[0].rrule")
    assert "can never match" in ack["message"]
    FIGURES["800 items of 30 February: ack"] = (time.monotonic() - t0) * 1000
    print(f"\n800 items of 30 February: rejected {FIGURES['800 items of 30 February: ack']:.0f} ms after the publish")
    siren_ms(province, fine_tap, agent, "after 30 February x 800")
    secondly = [tone_item(f"s{i}", 0, start=start, rrule="FREQ=SECONDLY") for i in range(4)]
    ack = rejected(province, publish_schedule(province, 2, secondly), "bad_schema", "items[0].rrule")
    assert "min_interval_s" in ack["message"]
    siren_ms(province, fine_tap, agent, "after FREQ=SECONDLY x 4")
    far = [tone_item("far", 0, start="9999-12-31T23:59:58+00:00")]
    rejected(province, publish_schedule(province, 3, far), "bad_schema", "items[0].start")


def test_two_thousand_minutely_items_apply_in_bounded_time_and_memory(box, province, fine_tap):
    """The most a valid document may ask: 2,000 items once a minute from a start years back (dateutil alone
    walks every minute since), with the prefetch horizon's 48 h holding 5.8 million occurrences."""
    agent = box(security={"max_payload_bytes": 4 << 20})
    month = time.localtime().tm_mon % 12 + 1  # next month: nothing fires during the test
    items = [tone_item(f"m{i}", 0, start="2020-01-01T00:00:30", rrule=f"FREQ=MINUTELY;BYMONTH={month}",
                       ) for i in range(2000)]
    t0 = time.monotonic()
    province.done(publish_schedule(province, 1, items), timeout=60)
    FIGURES["2,000 minutely items since 2020: ack"] = ms = (time.monotonic() - t0) * 1000
    print(f"\n2,000 minutely items since 2020: applied {ms:.0f} ms after the publish")
    status = agent.cli("status")
    assert status.returncode == 0, status.stderr
    siren_ms(province, fine_tap, agent, "after 2,000 minutely items")


# --- 3, 5, 6: downloads ---------------------------------------------------------------------------
def cap_with_uri(uri: str) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>VN-PCTT-GL-2026-0{int(time.time() * 1000) % 10**6}</identifier>
  <sender>pctt.gialai.gov.vn</sender><sent>2026-11-22T10:00:00+07:00</sent>
  <status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
  <info><language>vi</language><category>Met</category><event>Lũ</event><urgency>Immediate</urgency>
    <severity>Severe</severity><certainty>Observed</certainty><headline>Lũ quét</headline>
    <resource><resourceDesc>Bản tin</resourceDesc><mimeType>audio/mpeg</mimeType><uri>{uri}</uri></resource>
  </info>
</alert>"""


def test_a_gzip_bomb_as_a_cap_resource_or_a_media_file_is_never_unpacked(box, province, fine_tap, tmp_path):
    agent = box()
    with FileServer(tmp_path / "www") as www:
        wire = www.bomb("bomb.mp3", inflated_mb=200)
        mark = province.mark()
        jti = province.send("alert", {"cap": cap_with_uri(www.url("bomb.mp3")), "repeat": 1, "siren": False})
        bad = province.event("alert.resource_rejected", after=mark, timeout=30)
        assert "bomb.mp3" in bad["data"]["error"] or "decod" in bad["data"]["error"].lower(), bad
        province.done(jti, timeout=90)  # the text was spoken instead
        assert rss_mb(agent.proc.pid) < MAX_RSS_MB
        digest = "2" * 64  # whatever it names, the bytes as sent hash to something else
        play = province.send("play", {"source": {"kind": "file", "url": www.url("bomb.mp3"), "sha256": digest}})
        ack = province.ack(play, timeout=30)
        assert (ack["status"], ack.get("code")) == ("failed", "media_unavailable"), ack
        parts = list((agent.state_dir / "cache").glob(".*"))
        assert all(p.stat().st_size <= wire for p in parts), parts  # the bytes as sent, not 200 MB
        www.endless("endless.mp3")
        ack = province.ack(province.send("play", {"source": {"kind": "file", "url": www.url("endless.mp3"),
                                                             "sha256": digest}}), timeout=30)
        assert ack.get("code") == "media_unavailable" and "cap of" in ack["message"], ack
        siren_ms(province, fine_tap, agent, "after a gzip bomb (CAP uri, play) and an endless body")


def test_a_trickling_server_fails_by_the_deadline_and_starves_nothing(box, province, fine_tap, tmp_path):
    agent = box()
    www_dir = tmp_path / "www"
    www_dir.mkdir()
    good = sine_file(www_dir / "good.mp3", (500, 1))
    good_digest = hashlib.sha256(good.read_bytes()).hexdigest()
    with FileServer(www_dir) as www:
        www.trickle("slow.mp3", every_s=2.0)
        t0 = time.monotonic()
        play = province.send("play", {"source": {"kind": "file", "url": www.url("slow.mp3"), "sha256": "0" * 64}})
        ack = province.ack(play, timeout=30)
        took = time.monotonic() - t0
        assert ack.get("code") == "media_unavailable" and "not complete within 4 s" in ack["message"], ack
        assert took < 4 + 2 + 5, took  # the deadline, one read's wait, and the agent's own work
        FIGURES["trickle: play's final ack (deadline 4 s)"] = took * 1000
        print(f"\ntrickle: the play failed {took:.1f} s after it was sent (deadline 4 s)")
        soon = time.time() + 3600
        items = [{"id": "slow", "source": {"kind": "file", "url": www.url("slow.mp3"), "sha256": "1" * 64},
                  "start": local(soon)},
                 {"id": "good", "source": {"kind": "file", "url": www.url("good.mp3"), "sha256": good_digest},
                  "start": local(soon + 60)}]
        province.done(publish_schedule(province, 1, items))
        eventually(lambda: (agent.state_dir / "cache" / good_digest).exists(), timeout=20,
                   what="the second item cached while the first trickles")
        missing = province.event("media.missing", pred=lambda e: e["data"]["sha256"] == "1" * 64, timeout=30)
        assert "not complete within" in missing["data"]["error"]
        siren_ms(province, fine_tap, agent, "while a download trickles")


# --- 4, 7: the screen ---------------------------------------------------------------------------------
def test_an_image_bomb_is_refused_from_its_header(box, province, fine_tap, tmp_path):
    agent = box()
    bomb = tmp_path / "bomb.png"
    Image.new("1", (12_000, 12_000)).save(bomb, optimize=True)  # 144 megapixels in a few KB
    digest = MediaCache(agent.state_dir / "cache").add_file(bomb)
    t0 = time.monotonic()
    ack = province.ack(province.send("display.show", {"scene": {"kind": "image", "url": bomb.as_uri(),
                                                                "sha256": digest}}), timeout=30)
    assert (ack["status"], ack.get("code")) == ("failed", "media_unavailable") and "megapixels" in ack["message"], ack
    FIGURES[f"12k x 12k PNG ({bomb.stat().st_size // 1024} KB): refused"] = (time.monotonic() - t0) * 1000
    siren_ms(province, fine_tap, agent, "after a 12,000 x 12,000 PNG")


def test_one_long_word_renders_at_once_and_the_alert_frame_follows(box, province, fine_tap, tmp_path):
    agent = box()
    word = {"scene": {"kind": "text", "title": "W" * 300, "body": "W" * 5000}}
    t0 = time.monotonic()
    assert province.done(province.send("display.show", word), timeout=30)["result"]["on_screen"] is True
    FIGURES["a 5,000-letter word: on screen"] = (time.monotonic() - t0) * 1000
    print(f"\na 5,000-letter word on screen {FIGURES['a 5,000-letter word: on screen']:.0f} ms after the publish")
    province.send("display.show", word)  # and the alert right behind it, while it may still be laid out
    frame = tmp_path / "frames" / "frame.png"

    def red(t0: float) -> None:
        eventually(lambda: is_red(dominant(frame)), timeout=10, interval=0.01, what="the alert's frame")
        ms = FIGURES["a 5,000-letter word then an alert: the red frame"] = (time.monotonic() - t0) * 1000
        print(f"the alert's frame {ms:.0f} ms after the publish")
        assert ms < FRAME_BOUND_MS
    siren_ms(province, fine_tap, agent, "after a 5,000-letter word", meanwhile=red)


# --- 9: the control socket ---------------------------------------------------------------------------
def test_idle_and_vanishing_socket_clients_are_bounded_and_quiet(box, province, fine_tap):
    agent = box()
    path = agent.config["paths"]["socket"]
    idle = []
    for _ in range(300):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        idle.append(s)
    threads = len(list(Path(f"/proc/{agent.proc.pid}/task").iterdir()))
    assert threads < 60, threads  # 16 clients served, the rest answered busy and closed
    for s in idle:
        s.close()
    for _ in range(20):  # ask and leave before the answer
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        s.sendall(b'{"op": "status"}\n')
        s.close()
    eventually(lambda: agent.cli("status").returncode == 0, timeout=20, what="the CLI answered again")
    assert "Traceback" not in agent.log() and "BrokenPipeError" not in agent.log()
    siren_ms(province, fine_tap, agent, "after 300 idle socket clients")
