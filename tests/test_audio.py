"""The audio engine through real ALSA (the file tap), real PortAudio, VLC, ffmpeg and espeak-ng.

The contract tests run against both decoding backends (`vlc` and `pyaudio`).
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest
from support.agentproc import eventually
from support.media_files import cache_file, sine_file
from support.tap import active_seconds, first_active_offset, last_active_offset, runs, total

BACKENDS = ["vlc", "pyaudio"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_test_tone_is_1khz_for_its_duration(start_audio_agent, province, tap, backend):
    start_audio_agent(backend)
    jti = province.send("play", {"source": {"kind": "tone", "name": "test", "duration_s": 2}, "volume": 100})
    assert province.ack(jti, final=False)["status"] == "accepted"
    ack = province.done(jti)
    assert ack["result"]["completed"] is True and ack["result"]["reason"] == "finished"
    rs = tap.wait_for(lambda rs: total(rs, 1000) >= 1.9 and rs)
    assert 1.9 <= total(rs, 1000) <= 2.1, rs
    assert all(abs(r.freq - 1000) <= 20 for r in rs), rs
    start = province.event("play.start", pred=lambda e: e["data"]["id"] == jti)
    end = province.event("play.end", pred=lambda e: e["data"]["id"] == jti)
    assert start["data"]["level"] == "normal" and end["data"]["completed"] is True
    assert end["data"]["reason"] == "finished" and 1.9 <= end["data"]["seconds"] <= 2.1
    assert 1.4 <= end["data"]["ended"] - end["data"]["started"] <= 2.6, "played at the pace of a sound card"


def test_tts_speaks_vietnamese_of_plausible_length(start_audio_agent, province, tap):
    start_audio_agent("pyaudio")
    text = "Xin chào bà con. Đây là bản tin thử nghiệm của xã."
    jti = province.send("play", {"source": {"kind": "tts", "text": text, "lang": "vi"}, "level": "priority"})
    province.done(jti)
    spoken = tap.wait_for(lambda rs: active_seconds(tap.left()) >= 1.5 and active_seconds(tap.left()))
    assert 1.5 <= spoken <= 12, spoken
    freqs = {round(r.freq, -2) for r in runs(tap.left(), tolerance=0.2)}
    assert len(freqs) >= 4, f"speech has varied pitch, not one tone: {freqs}"


def gpio_log(tmp_path) -> list[dict]:
    path = tmp_path / "gpio.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_relay_on_before_first_sample_and_off_after_hold(start_audio_agent, province, tap, tmp_path):
    start_audio_agent("pyaudio")
    mark = tap.mark()
    jti = province.send("play", {"source": {"kind": "tone", "name": "test", "duration_s": 1}})
    province.done(jti)
    changes = eventually(lambda: [c for c in gpio_log(tmp_path)[1:] if c["pin"] == 17][:2]
                         if len([c for c in gpio_log(tmp_path)[1:] if c["pin"] == 17]) >= 2 else None,
                         timeout=10, what="relay on then off")
    on, off = changes
    assert on["active"] is True and off["active"] is False
    samples = tap.left(mark)
    first_sound = tap.arrival_of(mark + first_active_offset(samples))
    last_sound = tap.arrival_of(mark + last_active_offset(samples) - 1)
    assert on["t"] < first_sound, "the relay is on before the first sample"
    assert first_sound - on["t"] >= 0.15, "and the warm-up (0.2 s) passed first"
    assert off["t"] - last_sound >= 1.0, "off only after hold_s (1.5 s) of silence"


@pytest.mark.parametrize("backend", BACKENDS)
def test_priority_and_emergency_preempt_then_normal_resumes(start_audio_agent, province, tap, tmp_path, backend):
    agent = start_audio_agent(backend)
    src = cache_file(agent, sine_file(tmp_path / "programme.mp3", (400, 3), (600, 2), (800, 2)))
    normal = province.send("play", {"source": src, "title": "Bản tin sáng", "volume": 100})
    tap.wait_for(lambda rs: total(rs, 400) >= 1.2)
    priority = province.send("play", {"source": {"kind": "tone", "name": "test", "duration_s": 3},
                                      "level": "priority", "volume": 100})
    tap.wait_for(lambda rs: total(rs, 1000) >= 0.8)
    emergency = province.send("play", {"source": {"kind": "tone", "name": "siren", "duration_s": 2},
                                       "level": "emergency", "volume": 100})
    for jti in (emergency, priority, normal):
        assert province.done(jti, timeout=40)["result"]["completed"] is True
    rs = tap.wait_for(lambda rs: total(rs, 800) >= 1.7 and rs)
    seq = [min((400, 1000, 650, 900, 600, 800), key=lambda f: abs(f - r.freq)) for r in rs]
    collapsed = [f for i, f in enumerate(seq) if i == 0 or f != seq[i - 1]]
    assert collapsed[:2] == [400, 1000] and collapsed[-3:] == [400, 600, 800], collapsed
    assert {650, 900} <= set(collapsed[2:-3]) and collapsed[-4] == 1000, rs
    assert 2.4 <= total(rs, 400) <= 3.3, f"the programme resumed where it was: {rs}"
    assert 2.5 <= total(rs, 1000) <= 3.3
    end = province.event("play.end", pred=lambda e: e["data"]["id"] == normal)
    assert end["data"]["completed"] is True and end["data"]["title"] == "Bản tin sáng"


class _Streams(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    stall_after: dict[str, int] = {}
    release = threading.Event()

    def do_GET(self) -> None:  # noqa: N802
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "audio/mpeg")
        self.end_headers()
        cut = self.stall_after.get(self.path, len(body))
        try:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            if cut < len(body):
                self.release.wait(30)  # the stream stalls: connected, silent
        except OSError:
            pass

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def http(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Streams)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    _Streams.release.set()
    server.shutdown()
    _Streams.release.clear()


@pytest.mark.parametrize("backend", BACKENDS)
def test_stalled_stream_fails_over_to_the_next_url(start_audio_agent, province, tap, tmp_path, http, backend):
    start_audio_agent(backend)
    a = sine_file(tmp_path / "a.mp3", (500, 20)).read_bytes()
    b = sine_file(tmp_path / "b.mp3", (700, 20)).read_bytes()
    _Streams.files = {"/a.mp3": a, "/b.mp3": b}
    _Streams.stall_after = {"/a.mp3": len(a) // 10}  # 2 s of audio, then nothing
    port = http.server_address[1]
    jti = province.send("play", {"source": {"kind": "stream", "urls": [f"http://127.0.0.1:{port}/a.mp3",
                                                                       f"http://127.0.0.1:{port}/b.mp3"]},
                                 "duration_s": 7, "volume": 100})
    ack = province.done(jti, timeout=40)
    assert ack["result"]["reason"] == "finished"
    rs = tap.wait_for(lambda rs: total(rs, 700) >= 1.0 and rs)
    assert total(rs, 500) >= 1.0 and total(rs, 700) >= 1.0, rs
    assert rs.index(next(r for r in rs if abs(r.freq - 500) < 25)) < \
        rs.index(next(r for r in rs if abs(r.freq - 700) < 35))


def test_unreachable_stream_fails_and_the_box_stays_healthy(start_audio_agent, province, tap):
    start_audio_agent("pyaudio")
    from support.mosquitto import free_port
    jti = province.send("play", {"source": {"kind": "stream", "urls": [f"http://127.0.0.1:{free_port()}/live"]}})
    ack = province.ack(jti, timeout=30)
    assert (ack["status"], ack["code"]) == ("failed", "media_unavailable"), ack
    st = province.done(province.send("status.get"))
    assert "stream_down" in st["result"]["faults"] and st["result"]["state"] == "idle"
    province.done(province.send("play", {"source": {"kind": "tone", "name": "chime"}}))


def test_quiet_hours_refuse_normal_but_not_emergency(start_audio_agent, province, tap):
    now = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh"))
    window = {"from": (now - timedelta(hours=1)).strftime("%H:%M"),
              "to": (now + timedelta(hours=1)).strftime("%H:%M"), "max_volume": 10}
    start_audio_agent("pyaudio", quiet_hours=[window])
    jti = province.send("play", {"source": {"kind": "tone", "name": "chime"}})
    ack = province.ack(jti)
    assert (ack["status"], ack["code"]) == ("rejected", "quiet_hours") and "quiet hours" in ack["message"]
    assert [a["status"] for a in province.acks(jti)] == ["rejected"]
    siren = province.send("play", {"source": {"kind": "tone", "name": "siren", "duration_s": 1},
                                   "level": "emergency", "volume": 100})
    province.done(siren)
    rs = tap.wait_for(lambda rs: total(rs, 650) + total(rs, 900) >= 0.8 and rs)
    assert total(rs, 650) > 0.3 and total(rs, 900) > 0.3


def test_file_whose_bytes_do_not_match_its_digest_never_plays(start_audio_agent, province, tap, tmp_path):
    agent = start_audio_agent("pyaudio")
    good = sine_file(tmp_path / "good.mp3", (440, 2))
    src = cache_file(agent, good)
    (agent.state_dir / "cache" / src["sha256"]).write_bytes(sine_file(tmp_path / "evil.mp3", (880, 2)).read_bytes())
    jti = province.send("play", {"source": src})
    ack = province.ack(jti)
    assert (ack["status"], ack["code"]) == ("failed", "media_unavailable") and "corrupt" in ack["message"]
    ev = province.event("media.rejected", pred=lambda e: e["data"]["id"] == jti)
    assert ev["data"]["source"]["sha256"] == src["sha256"]
    assert (agent.state_dir / "cache" / "rejected" / src["sha256"]).exists()
    time.sleep(0.3)  # give a wrongly started player the time to reach the tap
    assert active_seconds(tap.left()) == 0


def test_stop_by_id_and_heartbeat_reports_playing(start_audio_agent, province, tap):
    start_audio_agent("pyaudio")
    jti = province.send("play", {"source": {"kind": "tone", "name": "test", "duration_s": 30},
                                 "level": "priority", "title": "thử loa"})
    tap.wait_for(lambda rs: total(rs, 1000) >= 0.3)
    st = province.done(province.send("status.get"))["result"]
    assert st["state"] == "playing" and st["playing"]["id"] == jti and st["playing"]["title"] == "thử loa"
    assert st["amp"]["on"] is True and st["volume"]["default"] == 80
    province.done(province.send("stop", {"id": jti}))
    ack = province.done(jti)
    assert ack["result"]["completed"] is False and ack["result"]["reason"] == "stopped"
