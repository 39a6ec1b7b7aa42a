"""Every `loa` operation that changes state goes through the schema and handler of the MQTT command of the
same name: a bad value exits 2 with the message the MQTT ack would carry, and changes nothing."""

from __future__ import annotations

import json

import pytest


def _state(agent) -> dict:
    out = agent.cli("status", "--json")
    assert out.returncode == 0, out.stderr
    audio = json.loads(out.stdout)["audio"]
    return {"volume": audio["volume"], "amp": audio["amp"]["zones"], "playing": audio["playing"],
            "queued": audio["queued"]}


BAD = [
    (("volume", "500"), "params.volume"),
    (("volume", "500", "--zone", "main"), "params.volume"),
    (("volume", "-50", "--zone", "main"), "params.volume"),
    (("volume", "50", "--zone", "nowhere"), "params.zones[0]: unknown zone 'nowhere'"),
    (("amp", "on", "--zone", "nowhere"), "params.zones[0]: unknown zone 'nowhere'"),
    (("play", "--tone", "test", "--volume", "500"), "params.volume"),
    (("play", "--tone", "test", "--repeat", "0"), "params.repeat"),
    (("play", "--tone", "siren", "--duration", "0"), "params.source.duration_s"),
    (("play", "http://127.0.0.1:9/live", "--duration", "0"), "params.duration_s"),
    (("say", ""), "params.source.text"),
    (("say", "Xin chào", "--zone", "nowhere"), "params.zones[0]: unknown zone 'nowhere'"),
    (("display", "on"), "this box has no display"),
    (("display", "clear"), "this box has no display"),
]


@pytest.mark.parametrize(("argv", "says"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_value_exits_2_with_the_acks_message_and_changes_nothing(agent, argv, says):
    before = _state(agent)
    out = agent.cli(*argv)
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert out.stderr.startswith("loa: error: ") and says in out.stderr, out.stderr
    assert _state(agent) == before


def test_a_local_file_with_a_bad_volume_is_refused_too(agent, tmp_path):
    import wave

    path = tmp_path / "bulletin.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000), w.writeframes(b"\0\0" * 1600)
    before = _state(agent)
    out = agent.cli("play", str(path), "--volume", "101")
    assert out.returncode == 2 and "params.volume" in out.stderr, (out.stdout, out.stderr)
    assert _state(agent) == before
    out = agent.cli("play", str(path), "--level", "normal")
    assert out.returncode == 0 and out.stdout.split()[-1].startswith("cli-"), (out.stdout, out.stderr)


def test_loa_volume_says_what_the_mqtt_ack_says(agent, province):
    jti = province.send("volume", {"volume": 500})
    ack = province.ack(jti)
    assert ack["status"] == "rejected" and ack["code"] == "bad_schema"
    out = agent.cli("volume", "500")
    assert out.returncode == 2 and out.stderr.strip() == f"loa: error: {ack['message']}", (out.stderr, ack)
    assert ack["message"] == "params.volume: must be between 0 and 100, got 500"  # as docs/protocol.md shows
    ok = agent.cli("volume", "40")
    assert ok.returncode == 0 and _state(agent)["volume"]["default"] == 40


def test_a_technicians_play_is_never_an_emergency(agent):
    out = agent.cli("play", "--tone", "siren", "--level", "emergency")
    assert out.returncode == 2  # argparse offers normal and priority only
    from agent import config
    from agent.errors import Rejection
    from agent.ipc import request

    sock = config.load(agent.config_path)["paths"]["socket"]
    with pytest.raises(Rejection, match="never emergency"):
        request(sock, "command", type="play", params={"source": {"kind": "tone", "name": "siren"},
                                                      "level": "emergency"})
    assert _state(agent)["playing"] is None
