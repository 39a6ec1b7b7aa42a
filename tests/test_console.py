"""loa-console: keys, tokens, topics, and the CLI against a real Mosquitto (no agent needed)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from support.mosquitto import Mosquitto, free_port

from agent import topics
from loa_console import cli
from loa_console.broker import Broker
from loa_console.keys import generate_keypair, load_private_key, make_claims, sign

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("LOA_CONSOLE_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_keypair(tmp_path_factory.mktemp("keys"), "prov-1")


def load_public(path: Path) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    assert isinstance(key, Ed25519PublicKey)
    return key


# --- keys -----------------------------------------------------------------------------------

def test_keygen_writes_pem_files_with_modes(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        private, public = generate_keypair(tmp_path / "k", "prov-7")
    finally:
        os.umask(old)
    assert (private, public) == (tmp_path / "k" / "prov-7.key", tmp_path / "k" / "prov-7.pub")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS8
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")  # SubjectPublicKeyInfo
    key = load_private_key(private)
    assert isinstance(key, Ed25519PrivateKey)
    assert key.public_key().public_bytes_raw() == load_public(public).public_bytes_raw()


def test_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    private, _ = generate_keypair(tmp_path, "prov-1")
    before = private.read_bytes()
    with pytest.raises(FileExistsError):
        generate_keypair(tmp_path, "prov-1")
    assert private.read_bytes() == before


def test_keygen_rejects_a_kid_that_is_a_path(tmp_path: Path) -> None:
    for kid in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(ValueError):
            generate_keypair(tmp_path, kid)


def test_keygen_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "keys"
    assert cli.main(["keygen", "--dir", str(d), "--kid", "prov-2"]) == 0
    out = capsys.readouterr().out
    assert str((d / "prov-2.key").resolve()) in out
    assert f"prov-2: {(d / 'prov-2.pub').resolve()}" in out and "security:" in out and "keys:" in out
    assert cli.main(["keygen", "--dir", str(d), "--kid", "prov-2"]) == 2
    assert "loa-console: error:" in capsys.readouterr().err


def test_load_private_key_refuses_other_kinds(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    with pytest.raises(ValueError):
        load_private_key(keypair[1])  # a public key


# --- claims and tokens ----------------------------------------------------------------------

def test_make_claims_defaults() -> None:
    before = int(time.time())
    a = make_claims("status.get")
    b = make_claims("status.get")
    assert a["jti"] != b["jti"] and len(a["jti"]) == 32
    assert before <= a["iat"] <= int(time.time())
    assert a["exp"] - a["iat"] == 600
    assert a["type"] == "status.get"
    assert "params" not in a and "aud" not in a


def test_make_claims_options() -> None:
    c = make_claims("play", {"level": "priority"}, jti="j-1", now=1_800_000_000.7, lifetime_s=60,
                    aud=["64", "GL-0001"], title="x")
    assert c == {"jti": "j-1", "iat": 1_800_000_000, "exp": 1_800_000_060, "type": "play",
                 "aud": ["64", "GL-0001"], "params": {"level": "priority"}, "title": "x"}
    s = make_claims("schedule", lifetime_s=None, iat=5, version=3, tz="Asia/Ho_Chi_Minh", items=[])
    assert s["iat"] == 5 and "exp" not in s and s["version"] == 3 and s["items"] == []
    assert make_claims("x", {}, now=0)["iat"] == 0 and make_claims("x", {})["params"] == {}


def test_sign_verifies_and_carries_kid(keypair: tuple[Path, Path]) -> None:
    private, public = keypair
    claims = make_claims("volume", {"volume": 40}, aud="GL-0001")
    token = sign(claims, load_private_key(private), "prov-1")
    header = jwt.get_unverified_header(token)
    assert header["kid"] == "prov-1" and header["alg"] == "EdDSA"
    assert jwt.decode(token, load_public(public), algorithms=["EdDSA"], audience="GL-0001") == claims
    other = Ed25519PrivateKey.generate()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(sign(claims, other, "prov-1"), load_public(public), algorithms=["EdDSA"],
                   audience="GL-0001")


def test_topics() -> None:
    assert topics.target("ttcs/v1", "dev:GL-0001", "cmd") == "ttcs/v1/dev/GL-0001/cmd"
    assert topics.target("ttcs/v1", "dev:GL-0001", "schedule") == "ttcs/v1/dev/GL-0001/schedule"
    assert topics.target("ttcs/v1", "area:64", "cmd") == "ttcs/v1/area/64/cmd"
    assert topics.target("ttcs/v1/", "area:64.23581", "schedule") == "ttcs/v1/area/64.23581/schedule"
    assert topics.target("ttcs/v1", "all", "cmd") == "ttcs/v1/all/cmd"
    for target, kind in [("GL-0001", "cmd"), ("dev:", "cmd"), ("dev:a/b", "cmd"), ("dev:+", "cmd"),
                         ("area:", "cmd"), ("area:6#", "cmd"), ("area:a/b", "cmd"), ("box:1", "cmd"),
                         ("dev:GL-0001", "ack"), ("dev:GL-0001", ""), ("all", "schedule"), ("ALL", "cmd"),
                         ("dev:" + "x" * 65, "cmd")]:
        with pytest.raises(ValueError):
            topics.target("ttcs/v1", target, kind)


def test_pretty_lines() -> None:
    ack = cli._line("ttcs/v1/dev/GL-0001/ack", {"id": "abc", "type": "play", "status": "rejected",
                                                "code": "quiet_hours", "message": "quiet hours until 05:00"})
    assert "GL-0001" in ack and "ack" in ack and "id=abc" in ack and "status=rejected" in ack
    assert "code=quiet_hours" in ack and '"quiet hours until 05:00"' in ack
    hb = cli._line("ttcs/v1/dev/GL-0001/heartbeat", {"seq": 7, "state": "idle", "outbox_pending": 0,
                                                     "faults": ["amp_fault"]})
    assert "seq=7" in hb and "state=idle" in hb and "outbox_pending=0" in hb and "faults=amp_fault" in hb
    ev = cli._line("ttcs/v1/dev/GL-0001/event", {"kind": "play.end", "data": {"completed": True}})
    assert "play.end" in ev and "completed=true" in ev
    st = cli._line("ttcs/v1/dev/GL-0001/status", {"state": "lost"}, retain=True)
    assert "state=lost" in st and "retained" in st
    assert "not json" in cli._line("ttcs/v1/dev/GL-0001/event", "not json")


# --- CLI errors before any broker -----------------------------------------------------------

@pytest.mark.parametrize("argv,needle", [
    (["send", "play", "--to", "dev:T1", "--unsigned", "--params", "{bad"], "--params"),
    (["send", "play", "--to", "dev:T1", "--unsigned", "--params", "[1]"], "--params"),
    (["send", "play", "--to", "dev:T1", "--key", "/nonexistent/prov-1.key"], "no such file"),
    (["send", "play", "--to", "dev:T1"], "no signing key"),
    (["send", "play", "--unsigned"], "--to"),
    (["send", "play", "--to", "nowhere", "--unsigned"], "--to"),
    (["--tls-ca", "/nonexistent/ca.pem", "send", "play", "--to", "all", "--unsigned"], "no such file"),
    (["--port", "x", "watch"], "port"),
    (["--prefix", "a+b", "watch"], "--prefix"),  # agent.topics refuses it before any connection
    (["schedule", "/nonexistent.yaml", "--to", "dev:T1", "--unsigned"], "cannot read"),
])
def test_usage_errors_exit_2(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("loa-console: error:") and needle in err


def test_unreachable_broker_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--port", str(free_port()), "send", "status.get", "--to", "all", "--unsigned"]) == 1
    assert "cannot connect" in capsys.readouterr().err


# --- against a real Mosquitto ---------------------------------------------------------------

@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    broker = Mosquitto(tmp_path_factory.mktemp("broker")).start()
    yield broker.port
    broker.stop()


class Client:
    """A plain paho client for the test's side: records messages, answers commands when asked."""

    def __init__(self, port: int, client_id: str):
        self.messages: list[mqtt.MQTTMessage] = []
        self.cond = threading.Condition()
        self.on_message: Callable[[mqtt.MQTTMessage], None] | None = None
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.subacks: set[int] = set()
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, *rest: Any) -> None:
        with self.cond:
            self.subacks.add(mid)
            self.cond.notify_all()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self.on_message:
            self.on_message(msg)
        with self.cond:
            self.messages.append(msg)
            self.cond.notify_all()

    def subscribe(self, topic_filter: str) -> None:
        _, mid = self.c.subscribe(topic_filter, qos=1)
        with self.cond:
            assert self.cond.wait_for(lambda: mid in self.subacks, 10), "no SUBACK"

    def publish(self, topic: str, payload: Any, retain: bool = False) -> None:
        self.c.publish(topic, json.dumps(payload), qos=1, retain=retain).wait_for_publish(10)

    def wait(self, n: int = 1, timeout: float = 10.0) -> list[mqtt.MQTTMessage]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.messages) >= n, timeout), f"got {len(self.messages)}"
            return list(self.messages)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def client(port: int, request: pytest.FixtureRequest) -> Iterator[Client]:
    c = Client(port, f"test-{request.node.name[:40]}")
    yield c
    c.close()


def test_send_publishes_a_verifiable_jws(port: int, client: Client, keypair: tuple[Path, Path],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    client.subscribe("ttcs/v1/dev/T1/cmd")
    rc = cli.main(["--port", str(port), "send", "status.get", "--to", "dev:T1", "--wait", "0",
                   "--key", str(keypair[0]), "--kid", "prov-1", "--params", '{"lines": 3}'])
    out = capsys.readouterr().out
    assert rc == 0
    jti = out.split()[0]
    msg = client.wait()[0]
    assert msg.topic == "ttcs/v1/dev/T1/cmd" and msg.qos == 1 and not msg.retain
    token = msg.payload.decode()
    assert jwt.get_unverified_header(token)["kid"] == "prov-1"
    claims = jwt.decode(token, load_public(keypair[1]), algorithms=["EdDSA"])
    assert claims["jti"] == jti and claims["type"] == "status.get" and claims["params"] == {"lines": 3}
    assert claims["exp"] - claims["iat"] == 600


def test_send_reads_key_and_connection_from_env(port: int, client: Client, keypair: tuple[Path, Path],
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LOA_CONSOLE_PORT", str(port))
    monkeypatch.setenv("LOA_CONSOLE_KEY", str(keypair[0]))
    client.subscribe("ttcs/v1/area/64/cmd")
    assert cli.main(["send", "stop", "--to", "area:64", "--lifetime", "30", "--aud", "64"]) == 0
    token = client.wait()[0].payload.decode()
    assert jwt.get_unverified_header(token)["kid"] == "prov-1"  # from the key file's name
    claims = jwt.decode(token, load_public(keypair[1]), algorithms=["EdDSA"], audience="64")
    assert claims["exp"] - claims["iat"] == 30 and "params" not in claims
    assert claims["jti"] == capsys.readouterr().out.split()[0]


def test_send_unsigned_is_plain_json(port: int, client: Client) -> None:
    client.subscribe("ttcs/v1/all/cmd")
    assert cli.main(["--port", str(port), "send", "volume", "--to", "all", "--unsigned",
                     "--params", '{"volume": 30}']) == 0
    claims = json.loads(client.wait()[0].payload)
    assert claims["type"] == "volume" and claims["params"] == {"volume": 30}


def fake_device(client: Client, device: str, final: str) -> None:
    """Answer every command on the device's cmd topic: accepted, then the final status."""
    def answer(msg: mqtt.MQTTMessage) -> None:
        claims = json.loads(msg.payload)
        for status in ("accepted", final):
            ack = {"id": claims["jti"], "device_id": device, "type": claims["type"], "status": status,
                   "code": "ok" if status in ("accepted", "done") else "bad_schema",
                   "message": "params.volume: must be 0-100" if status == "rejected" else "", "result": {}}
            client.c.publish(f"ttcs/v1/dev/{device}/ack", json.dumps(ack), qos=1)
    client.on_message = answer
    client.subscribe(f"ttcs/v1/dev/{device}/cmd")


@pytest.mark.parametrize("final,code", [("done", 0), ("rejected", 1)])
def test_send_waits_for_the_final_ack(port: int, client: Client, final: str, code: int,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    device = f"W-{final}"
    fake_device(client, device, final)
    # an ack for another command must not end the wait
    client.publish(f"ttcs/v1/dev/{device}/ack", {"id": "someone-else", "status": "done"})
    assert cli.main(["--port", str(port), "send", "volume", "--to", f"dev:{device}", "--unsigned",
                     "--params", '{"volume": 50}', "--wait", "10", "--json"]) == code
    lines = capsys.readouterr().out.splitlines()
    jti = lines[0]
    acks = [json.loads(line)["payload"] for line in lines[1:]]
    assert [a["status"] for a in acks] == ["accepted", final] and all(a["id"] == jti for a in acks)


def test_send_wait_times_out(port: int, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    assert cli.main(["--port", str(port), "send", "status.get", "--to", "dev:NOBODY", "--unsigned",
                     "--wait", "0.3"]) == 1
    assert time.monotonic() - started < 5
    assert "no final ack" in capsys.readouterr().err


def test_schedule_is_signed_and_retained(port: int, client: Client, keypair: tuple[Path, Path],
                                         tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "sched.yaml"
    doc.write_text("version: 4\ntz: Asia/Ho_Chi_Minh\nitems:\n"
                   "  - id: morning\n    title: Bản tin sáng\n    start: 2025-01-01T06:00:00\n"
                   "    rrule: FREQ=DAILY\n    exdates: [2025-01-02]\n"
                   "    source: {kind: tts, text: Xin chào, lang: vi}\n", encoding="utf-8")
    assert cli.main(["--port", str(port), "schedule", str(doc), "--to", "dev:S1",
                     "--key", str(keypair[0])]) == 0
    jti = capsys.readouterr().out.split()[0]
    client.subscribe("ttcs/v1/dev/S1/schedule")  # after the publish: only a retained message arrives
    msg = client.wait()[0]
    assert msg.retain and msg.qos == 1
    claims = jwt.decode(msg.payload.decode(), load_public(keypair[1]), algorithms=["EdDSA"])
    assert claims["jti"] == jti and claims["type"] == "schedule" and "exp" not in claims
    assert claims["version"] == 4 and claims["tz"] == "Asia/Ho_Chi_Minh"
    item = claims["items"][0]
    assert item["start"] == "2025-01-01T06:00:00" and item["exdates"] == ["2025-01-02"]
    assert item["title"] == "Bản tin sáng"


def test_schedule_needs_a_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "s.json"
    doc.write_text('{"items": []}')
    assert cli.main(["schedule", str(doc), "--to", "area:64", "--unsigned"]) == 2
    assert "version" in capsys.readouterr().err


def test_watch_prints_messages_as_json(port: int, client: Client, capsys: pytest.CaptureFixture[str]) -> None:
    status = {"state": "online", "device_id": "T2", "boot_id": "b", "at": "2025-01-01T00:00:00Z"}
    client.publish("ttcs/v1/dev/T2/status", status, retain=True)  # there before watch subscribes
    stop_beats = threading.Event()

    def beat() -> None:  # live messages, published until watch has seen enough
        seq = 0
        while not stop_beats.wait(0.05):
            seq += 1
            client.publish("ttcs/v1/dev/T2/heartbeat", {"device_id": "T2", "seq": seq, "state": "idle"})
            client.publish("ttcs/v1/dev/T2/cmd", {"ignored": True})  # not a device → server kind

    t = threading.Thread(target=beat, daemon=True)
    t.start()
    try:
        rc = cli.main(["--port", str(port), "watch", "--device", "T2", "--count", "2", "--json",
                       "--timeout", "10"])
    finally:
        stop_beats.set()
        t.join(5)
    assert rc == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2 and all(set(line) == {"topic", "payload"} for line in lines)
    assert lines[0] == {"topic": "ttcs/v1/dev/T2/status", "payload": status}
    assert lines[1]["topic"] == "ttcs/v1/dev/T2/heartbeat" and lines[1]["payload"]["state"] == "idle"


def test_watch_count_1_json(port: int, client: Client, capsys: pytest.CaptureFixture[str]) -> None:
    client.publish("ttcs/v1/dev/T3/event", {"id": "e1", "kind": "play.end", "data": {}}, retain=True)
    assert cli.main(["--port", str(port), "watch", "--count", "1", "--json", "--timeout", "10",
                     "--device", "T3"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "topic": "ttcs/v1/dev/T3/event", "payload": {"id": "e1", "kind": "play.end", "data": {}}}
    client.c.publish("ttcs/v1/dev/T3/event", b"", qos=1, retain=True).wait_for_publish(10)  # clear it


def test_watch_timeout_short_of_count_exits_1(port: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--port", str(port), "watch", "--device", "QUIET", "--count", "1",
                     "--timeout", "0.3"]) == 1


def test_broker_class_round_trip(port: int) -> None:
    got: list[tuple[str, bytes, bool]] = []
    done = threading.Event()

    def on_message(topic: str, payload: bytes, retain: bool) -> None:
        got.append((topic, payload, retain))
        done.set()

    with Broker("127.0.0.1", port) as b:
        b.watch("ttcs/v1/dev/+/ack", on_message)
        b.publish("ttcs/v1/dev/B1/ack", '{"id": "x"}')
        assert done.wait(10)
    assert got == [("ttcs/v1/dev/B1/ack", b'{"id": "x"}', False)]
    with pytest.raises(ConnectionError):
        Broker("127.0.0.1", free_port())


def test_launcher_script(tmp_path: Path) -> None:
    script = REPO / "scripts" / "loa-console"
    assert os.access(script, os.X_OK)
    r = subprocess.run([sys.executable, str(script), "keygen", "--dir", str(tmp_path)], capture_output=True,
                       text=True, timeout=30, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "prov-1.key").exists() and "security:" in r.stdout
