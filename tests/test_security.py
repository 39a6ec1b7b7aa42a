"""Security with real parts: the reference broker of config/mosquitto/ (mutual TLS, per-device ACL), the
PKI `loa-console pki` makes with openssl, the real agent; then provincial key rotation and key file checks.

The broker runs config/mosquitto/loa.conf as shipped, with /etc/mosquitto/loa/ moved to a temp dir and its two
listeners to free loopback ports: what passes here is what an operator installs.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from support.agentproc import Agent, eventually
from support.mosquitto import Mosquitto, free_port, wait_port
from support.province import Province

from loa_console import cli
from loa_console.broker import Broker
from loa_console.keys import load_private_key, make_claims, sign
from loa_console.pki import make_pki

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "config" / "mosquitto"
PREFIX = "ttcs/v1"
GRANTED_QOS1, NOT_AUTHORIZED = 1, 135  # MQTT 5 reason codes
ACCEPTED = (0, 16)  # a PUBACK's Success, or No matching subscribers (taken, and nobody listens)
PROVINCE_PASSWORD = "province-password"


@pytest.fixture(autouse=True)
def clean_console_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """cli.main() reads LOA_CONSOLE_* variables: an operator's shell must not steer these tests."""
    for name in list(os.environ):
        if name.startswith("LOA_CONSOLE_"):
            monkeypatch.delenv(name)


# --- the reference broker ---------------------------------------------------------------------

class ReferenceBroker(Mosquitto):
    """config/mosquitto/ with its files in `workdir/etc` (certificates from `pki`) and its ports free."""

    def __init__(self, workdir: Path, pki: Path, *, crl: bool = False):
        super().__init__(workdir)
        self.server_port = free_port()
        while self.server_port == self.port:
            self.server_port = free_port()
        self.crl = crl
        self.etc = workdir / "etc"
        self.etc.mkdir(parents=True, exist_ok=True)
        for name in ("ca.pem", "broker.pem", "broker.key") + (("crl.pem",) if crl else ()):
            shutil.copy(pki / name, self.etc / name)
        for name in ("devices.acl", "server.acl"):
            shutil.copy(REFERENCE / name, self.etc / name)
        passwd = self.etc / "passwd"
        passwd.touch(mode=0o600)
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), "province", PROVINCE_PASSWORD], check=True,
                       capture_output=True)
        self.password_file = workdir / "province.password"  # the console reads its password from a file
        self.password_file.write_text(PROVINCE_PASSWORD + "\n")
        self.password_file.chmod(0o600)

    def conf(self) -> str:
        text = (REFERENCE / "loa.conf").read_text()
        edits = [("\nlistener 8883\n", f"\nlistener {self.port} 127.0.0.1\n"),
                 ("\nlistener 8884\n", f"\nlistener {self.server_port} 127.0.0.1\n")]
        if self.crl:
            edits.append(("\n#crlfile ", "\ncrlfile "))
        for old, new in edits:  # the shipped file must still have the shape this adapts, or the test means nothing
            assert text.count(old) == 1, f"config/mosquitto/loa.conf: expected one {old.strip()!r}"
            text = text.replace(old, new)
        text = text.replace("/etc/mosquitto/loa/", f"{self.etc}/")
        assert not [line for line in text.splitlines() if "/etc/mosquitto" in line and not line.startswith("#")]
        extra = ["persistence true", f"persistence_location {self.dir}/", "log_type error", "log_type warning",
                 "log_type notice", "log_dest stderr"] + (["user root"] if os.geteuid() == 0 else [])
        return text + "\n" + "\n".join(extra) + "\n"

    def start(self) -> ReferenceBroker:
        super().start()  # waits for the device listener
        wait_port(self.server_port, proc=self.proc)
        return self

    def reload(self) -> None:
        """What `systemctl reload mosquitto` does: SIGHUP, which rereads the ACL and password files."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Certificates for GL-0001 and GL-0002, made by the console's command line as an operator would."""
    d = tmp_path_factory.mktemp("pki") / "pki"
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "loa-console"), "pki", "--dir", str(d),
                          "GL-0001", "GL-0002"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return d


@pytest.fixture(scope="module")
def rogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another CA, with a GL-0001 certificate of its own."""
    d = tmp_path_factory.mktemp("rogue") / "pki"
    make_pki(d, ["GL-0001"], ca_name="not the province")
    return d


@pytest.fixture
def secure(tmp_path: Path, pki: Path) -> Iterator[ReferenceBroker]:
    b = ReferenceBroker(tmp_path / "reference", pki)
    try:
        yield b.start()
    finally:
        b.stop()


def tls(pki: Path, device: str) -> dict[str, str]:
    """The agent's mqtt.tls for a device."""
    return {"ca": str(pki / "ca.pem"), "cert": str(pki / f"{device}.pem"), "key": str(pki / f"{device}.key")}


# --- clients ----------------------------------------------------------------------------------

@dataclass
class Message:
    topic: str
    payload: Any
    retain: bool


class Recorder:
    """Messages as they arrive (paho's thread), and a wait for one that matches."""

    def __init__(self) -> None:
        self.items: list[Message] = []
        self.cond = threading.Condition()

    def __call__(self, topic: str, payload: bytes, retain: bool) -> None:
        try:
            value: Any = json.loads(payload)
        except ValueError:
            value = payload
        with self.cond:
            self.items.append(Message(topic, value, retain))
            self.cond.notify_all()

    def wait(self, pred: Callable[[Message], bool], timeout: float = 20.0, what: str = "message") -> Message:
        def match() -> Message | None:
            return next((m for m in self.items if pred(m)), None)

        with self.cond:
            found = self.cond.wait_for(match, timeout)
            if found is None:
                raise AssertionError(f"no {what} within {timeout} s; got {[(m.topic, m.payload) for m in self.items]}")
            return found

    def ack(self, jti: str) -> dict:
        return self.wait(lambda m: m.topic.endswith("/ack") and isinstance(m.payload, dict)
                         and m.payload.get("id") == jti and m.payload.get("status") in cli.FINAL,
                         what=f"final ack of {jti}").payload


class Device:
    """A raw paho client holding a device's certificate (the thief's tool), recording the broker's reason codes."""

    def __init__(self, broker: ReferenceBroker, pki: Path, device: str, *, client_id: str | None = None,
                 username: str | None = None):
        self.cond = threading.Condition()
        self.connack: Any = None
        self.pubacks: dict[int, int] = {}
        self.subacks: dict[int, int] = {}
        self.disconnects = 0
        self.messages = Recorder()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"raw-{device}",
                        protocol=mqtt.MQTTv5)
        c.tls_set(ca_certs=str(pki / "ca.pem"), certfile=str(pki / f"{device}.pem"),
                  keyfile=str(pki / f"{device}.key"))
        if username:
            c.username_pw_set(username, "anything")
        c.on_connect = self._on_connect
        c.on_publish = lambda cl, u, mid, reason, props: self._note(self.pubacks, mid, reason.value)
        c.on_subscribe = lambda cl, u, mid, reasons, props: self._note(self.subacks, mid, reasons[0].value)
        c.on_message = lambda cl, u, msg: self.messages(msg.topic, msg.payload, bool(msg.retain))
        c.on_disconnect = self._on_disconnect
        self.client = c
        c.connect("127.0.0.1", broker.port, clean_start=True)
        c.loop_start()
        with self.cond:
            answered = self.cond.wait_for(lambda: self.connack is not None, 20)
        if not answered or self.connack.is_failure:
            self.close()
            raise AssertionError(f"{device}: no CONNACK" if not answered else f"{device}: {self.connack}")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self.cond:
            self.connack = reason
            self.cond.notify_all()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self.cond:
            self.disconnects += 1

    def _note(self, table: dict[int, int], mid: int, code: int) -> None:
        with self.cond:
            table[mid] = code
            self.cond.notify_all()

    def _await(self, table: dict[int, int], mid: int) -> int:
        with self.cond:
            assert self.cond.wait_for(lambda: mid in table, 20), "no answer from the broker"
            return table.pop(mid)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int:
        """QoS 1: the reason code of the broker's PUBACK."""
        return self._await(self.pubacks, self.client.publish(topic, payload, qos=1, retain=retain).mid)

    def subscribe(self, topic_filter: str) -> int:
        """The reason code of the broker's SUBACK (1 = granted QoS 1)."""
        return self._await(self.subacks, self.client.subscribe(topic_filter, qos=1)[1])

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients() -> Iterator[list[Any]]:
    """Closes what a test opened, even when it fails."""
    opened: list[Any] = []
    yield opened
    for c in reversed(opened):
        c.close()


def server(broker: ReferenceBroker) -> Broker:
    """The province's account on the server listener: TLS (broker certificate checked) and its password."""
    return Broker("127.0.0.1", broker.server_port, tls_ca=broker.etc / "ca.pem", username="province",
                  password_file=broker.password_file)


@functools.cache
def _private(path: Path) -> Any:
    return load_private_key(path)


def signed(key: Path, type_: str, params: dict | None = None, *, kid: str = "prov-1", **claims: Any) -> tuple[str, str]:
    body = make_claims(type_, params, **claims)
    return body["jti"], sign(body, _private(key), kid)


# --- the PKI ----------------------------------------------------------------------------------

def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _verify(ca: Path, cert: Path, *args: str) -> bool:
    return subprocess.run(["openssl", "verify", "-CAfile", str(ca), *args, str(cert)],
                          capture_output=True).returncode == 0


def test_pki_makes_a_ca_a_broker_certificate_and_device_certificates(pki: Path, tmp_path: Path) -> None:
    for name in ("ca", "broker", "GL-0001", "GL-0002"):
        assert stat.S_IMODE((pki / f"{name}.key").stat().st_mode) == 0o600, name
        assert stat.S_IMODE((pki / f"{name}.pem").stat().st_mode) == 0o644, name
    ca = _cert(pki / "ca.pem")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    device = _cert(pki / "GL-0001.pem")
    assert device.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "GL-0001"  # the broker user
    assert list(device.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == \
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    broker = _cert(pki / "broker.pem")
    san = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    # openssl's own view: each certificate is good for its role and not for the other one.
    assert _verify(pki / "ca.pem", pki / "GL-0001.pem", "-purpose", "sslclient")
    assert not _verify(pki / "ca.pem", pki / "GL-0001.pem", "-purpose", "sslserver")
    assert _verify(pki / "ca.pem", pki / "broker.pem", "-purpose", "sslserver", "-verify_ip", "127.0.0.1")
    assert not _verify(pki / "ca.pem", pki / "broker.pem", "-purpose", "sslclient")

    # Running it again adds a device under the same CA and keeps everything else.
    d = tmp_path / "lab"
    assert cli.main(["pki", "--dir", str(d), "--san", "10.64.0.2", "--san", "DNS:mqtt.gialai.example",
                     "GL-0001"]) == 0
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    assert cli.main(["pki", "--dir", str(d), "GL-0001", "GL-0003"]) == 0
    assert all((d / name).read_bytes() == data for name, data in before.items())
    assert _verify(d / "ca.pem", d / "GL-0003.pem", "-purpose", "sslclient")
    lab_san = _cert(d / "broker.pem").extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert lab_san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.64.0.2")]
    assert lab_san.get_values_for_type(x509.DNSName) == ["mqtt.gialai.example"]
    # A device id is a file name and the broker's user name: nothing that could be a path, a wildcard, the CA.
    for bad in (["../GL-0001"], ["GL+0001"], ["ca"], ["--san", "DNS:a,IP:10.0.0.1", "GL-0004"]):
        assert cli.main(["pki", "--dir", str(d), *bad]) == 2, bad
    assert sorted(p.name for p in d.iterdir() if p.suffix == ".key") == \
        ["GL-0001.key", "GL-0003.key", "broker.key", "ca.key"]


# --- the reference broker with the real agent -------------------------------------------------

def test_the_agent_works_through_the_reference_broker(secure: ReferenceBroker, pki: Path,
                                                      make_agent: Callable[..., Agent],
                                                      keys: dict[str, Path], clients: list[Any]) -> None:
    province = server(secure)
    clients.append(province)
    seen = Recorder()
    province.watch(f"{PREFIX}/dev/GL-0001/#", seen)
    agent = make_agent(config={"device": {"heartbeat_s": 5},
                               "mqtt": {"port": secure.port, "tls": tls(pki, "GL-0001")}}).start()
    seen.wait(lambda m: m.topic.endswith("/status") and m.payload.get("state") == "online", what="status online")

    # Its own, its area's and the fleet's command topics all reach it (it subscribed to each, and was let).
    for topic in (f"{PREFIX}/dev/GL-0001/cmd", f"{PREFIX}/area/64.23581/cmd", f"{PREFIX}/all/cmd"):
        jti, token = signed(keys["prov-1"], "status.get")
        province.publish(topic, token)
        assert seen.ack(jti)["status"] == "done", topic
    for topic in (f"{PREFIX}/dev/GL-0001/schedule", f"{PREFIX}/area/64/schedule"):
        jti, token = signed(keys["prov-1"], "schedule", lifetime_s=None, version=1, items=[])
        province.publish(topic, token, retain=True)
        assert seen.ack(jti)["status"] == "done", topic

    # An unsigned command is refused with an ack and an event: the device may write both topics.
    forged = json.dumps(make_claims("status.get", {}))
    province.publish(f"{PREFIX}/dev/GL-0001/cmd", forged)
    assert seen.ack(json.loads(forged)["jti"])["code"] == "unsigned"
    seen.wait(lambda m: m.topic.endswith("/event") and m.payload.get("kind") == "command.rejected", what="event")
    seen.wait(lambda m: m.topic.endswith("/heartbeat"), what="heartbeat")
    assert "subscription refused" not in agent.log()


def test_a_device_cannot_publish_as_another_device(secure: ReferenceBroker, pki: Path,
                                                   clients: list[Any]) -> None:
    province = server(secure)
    clients.append(province)
    seen = Recorder()
    province.watch(f"{PREFIX}/#", seen)
    thief = Device(secure, pki, "GL-0001")  # GL-0001's certificate and key, in hostile hands
    clients.append(thief)

    forged = [f"{PREFIX}/dev/GL-0002/{kind}" for kind in ("ack", "status", "heartbeat", "event", "cmd", "schedule")]
    forged += [f"{PREFIX}/dev/GL-0001/cmd", f"{PREFIX}/area/64/cmd", f"{PREFIX}/area/64/schedule", f"{PREFIX}/all/cmd"]
    for topic in forged:
        payload = json.dumps({"id": "forged", "device_id": "GL-0002", "status": "done"}).encode()
        assert thief.publish(topic, payload, retain=topic.endswith(("/status", "/schedule"))) == NOT_AUTHORIZED, topic
    assert thief.publish(f"{PREFIX}/dev/GL-0001/ack", b'{"id": "own"}') in ACCEPTED
    own = seen.wait(lambda m: m.topic == f"{PREFIX}/dev/GL-0001/ack", what="GL-0001's own ack")
    # The broker forwards one client's messages in order: had a forged one got through, it would be here first.
    assert seen.items == [own]

    # The province's account cannot speak for a device either.
    with pytest.raises(ConnectionError, match="refused the publish"):
        province.publish(f"{PREFIX}/dev/GL-0002/status", '{"state": "online"}', retain=True)


def test_a_stolen_certificate_cannot_take_over_another_devices_session(secure: ReferenceBroker, pki: Path,
                                                                       clients: list[Any]) -> None:
    victim = Device(secure, pki, "GL-0002", client_id="GL-0002")
    clients.append(victim)
    # The victim's client id and user name: the broker replaces both by the certificate's CN
    # (use_identity_as_username, use_username_as_clientid), so this neither kicks GL-0002 off nor inherits its
    # persistent session and queued commands, nor gets its rights.
    intruder = Device(secure, pki, "GL-0001", client_id="GL-0002", username="GL-0002")
    clients.append(intruder)
    # A replaced session's connection is closed before the newcomer's CONNACK: the victim still getting a
    # PUBACK with no disconnect in between proves it kept its connection.
    assert victim.publish(f"{PREFIX}/dev/GL-0002/ack", b'{"id": "still-here"}') in ACCEPTED
    assert victim.disconnects == 0
    assert intruder.publish(f"{PREFIX}/dev/GL-0002/ack", b'{"id": "forged"}') == NOT_AUTHORIZED


def test_a_device_cannot_read_another_devices_commands(secure: ReferenceBroker, pki: Path,
                                                       clients: list[Any]) -> None:
    province = server(secure)
    clients.append(province)
    province.publish(f"{PREFIX}/dev/GL-0002/schedule", "GL-0002's schedule", retain=True)
    owner = Device(secure, pki, "GL-0002")
    clients.append(owner)
    assert owner.subscribe(f"{PREFIX}/dev/GL-0002/cmd") == GRANTED_QOS1
    thief = Device(secure, pki, "GL-0001")
    clients.append(thief)
    for topic_filter in (f"{PREFIX}/dev/GL-0002/cmd", f"{PREFIX}/dev/GL-0002/schedule", f"{PREFIX}/dev/+/cmd",
                         f"{PREFIX}/#", "#"):
        # Mosquitto 2.0 grants a SUBSCRIBE and checks read access on every message it would deliver (a broker
        # that refuses the subscription outright, 135, would do as well); what counts is what arrives.
        assert thief.subscribe(topic_filter) in (GRANTED_QOS1, NOT_AUTHORIZED), topic_filter
    assert thief.subscribe(f"{PREFIX}/dev/GL-0001/cmd") == GRANTED_QOS1

    province.publish(f"{PREFIX}/dev/GL-0002/cmd", "for GL-0002 only")
    owner.messages.wait(lambda m: m.payload == b"for GL-0002 only", what="GL-0002's command at GL-0002")
    province.publish(f"{PREFIX}/dev/GL-0001/cmd", "for GL-0001")
    thief.messages.wait(lambda m: m.topic == f"{PREFIX}/dev/GL-0001/cmd", what="GL-0001's own command")
    # Sent after the other device's command (and after the retained schedule was due): nothing of those came.
    assert {m.topic for m in thief.messages.items} == {f"{PREFIX}/dev/GL-0001/cmd"}


# --- the TLS handshake ----------------------------------------------------------------------------

CONNECT = bytes([0x10, 14, 0, 4]) + b"MQTT" + bytes([5, 2, 0, 30, 0, 0, 1]) + b"x"  # MQTT 5, clean start, id "x"


def mqtt_over_tls(port: int, ca: Path, cert: Path | None, version: ssl.TLSVersion) -> str:
    """"CONNACK n" when the broker answers an MQTT CONNECT, else the TLS alert or error that stopped it.

    With TLS 1.2 the handshake itself fails. With TLS 1.3 the client's side of the handshake completes before the
    broker has judged its certificate, so its alert comes with the first read (by then the broker may have closed
    the connection, and CONNECT may fail to go out: the alert is still there to read).
    """
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.minimum_version = ctx.maximum_version = version
    if cert is not None:
        ctx.load_cert_chain(cert, cert.with_suffix(".key"))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as raw, \
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            try:
                s.sendall(CONNECT)
            except OSError:
                pass
            head = s.recv(4)
    except ssl.SSLCertVerificationError as e:
        return f"broker refused by the client: {e.verify_message}"
    except ssl.SSLError as e:
        return str(e.reason or e)
    return f"CONNACK {head[3]}" if len(head) == 4 and head[0] == 0x20 else f"unexpected {head!r}"


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"])
def test_the_broker_refuses_foreign_certificates_in_the_handshake(secure: ReferenceBroker, pki: Path, rogue: Path,
                                                                  version: ssl.TLSVersion) -> None:
    ca = pki / "ca.pem"
    assert mqtt_over_tls(secure.port, ca, pki / "GL-0001.pem", version) == "CONNACK 0"  # the control
    assert mqtt_over_tls(secure.port, ca, None, version) in (
        "SSLV3_ALERT_HANDSHAKE_FAILURE", "TLSV13_ALERT_CERTIFICATE_REQUIRED")  # no certificate
    assert mqtt_over_tls(secure.port, ca, rogue / "GL-0001.pem", version) == "TLSV1_ALERT_UNKNOWN_CA"
    # The broker's own certificate is for serverAuth only: its key is no device identity.
    assert mqtt_over_tls(secure.port, ca, pki / "broker.pem", version) == "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE"
    # And the other way round: a box that trusts only the provincial CA refuses a broker it did not sign.
    assert mqtt_over_tls(secure.port, rogue / "ca.pem", pki / "GL-0001.pem", version).startswith(
        "broker refused by the client")
    # The server listener asks for a password, never a certificate: a device's certificate gets nowhere.
    assert mqtt_over_tls(secure.server_port, ca, pki / "GL-0001.pem", version) == f"CONNACK {NOT_AUTHORIZED}"


def test_an_agent_with_another_cas_certificate_stays_out(secure: ReferenceBroker, rogue: Path, pki: Path,
                                                         make_agent: Callable[..., Agent]) -> None:
    agent = make_agent(signed=False, config={"mqtt": {"port": secure.port, "tls": {
        "ca": str(pki / "ca.pem"), "cert": str(rogue / "GL-0001.pem"), "key": str(rogue / "GL-0001.key")}}})
    agent.start()
    st = eventually(lambda: (s := json.loads(agent.cli("status", "--json").stdout))["link_error"] and s,
                    what="TLS refusal reported")
    assert not st["connected"] and "closed the connection before accepting it" in st["link_error"], st


# --- revocation ---------------------------------------------------------------------------------

def test_a_revoked_certificate_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    make_pki(d, ["GL-0001", "GL-0002"])
    assert cli.main(["pki", "--dir", str(d), "--revoke", "GL-0002"]) == 0
    broker = ReferenceBroker(tmp_path / "reference", d, crl=True)  # loa.conf's crlfile line enabled
    try:
        broker.start()
        version = ssl.TLSVersion.TLSv1_3
        assert mqtt_over_tls(broker.port, d / "ca.pem", d / "GL-0001.pem", version) == "CONNACK 0"
        assert mqtt_over_tls(broker.port, d / "ca.pem", d / "GL-0002.pem", version) == \
            "SSLV3_ALERT_CERTIFICATE_REVOKED"
    finally:
        broker.stop()


def test_a_device_blocked_in_the_acl_loses_its_rights_on_reload(secure: ReferenceBroker, pki: Path,
                                                                 clients: list[Any]) -> None:
    province = server(secure)
    clients.append(province)
    device = Device(secure, pki, "GL-0002")
    clients.append(device)
    assert device.subscribe(f"{PREFIX}/dev/GL-0002/cmd") == GRANTED_QOS1
    assert device.publish(f"{PREFIX}/dev/GL-0002/ack", b"{}") in ACCEPTED
    province.publish(f"{PREFIX}/dev/GL-0002/cmd", "before the block")
    device.messages.wait(lambda m: m.payload == b"before the block", what="GL-0002's command before the block")

    # docs/security.md: the quick block while the CRL is being made, no new certificate needed.
    with open(secure.etc / "devices.acl", "a") as acl:
        acl.write("\nuser GL-0002\ntopic deny ttcs/v1/#\n")
    secure.reload()
    # SIGHUP has no answer to wait for: poll until the connected device's next publish is refused.
    eventually(lambda: device.publish(f"{PREFIX}/dev/GL-0002/ack", b"{}") == NOT_AUTHORIZED,
               what="GL-0002 blocked after the reload")
    province.publish(f"{PREFIX}/dev/GL-0002/cmd", "after the block")
    # The broker wrote anything it delivered to GL-0002 before the answer to GL-0002's next publish.
    assert device.publish(f"{PREFIX}/dev/GL-0002/ack", b"{}") == NOT_AUTHORIZED
    assert [m.payload for m in device.messages.items] == [b"before the block"]


# --- provincial keys ----------------------------------------------------------------------------

def test_key_rotation_two_kids_then_one(make_agent: Callable[..., Agent], province: Province,
                                        keys: dict[str, Path]) -> None:
    pub = {kid: key.with_suffix(".pub") for kid, key in keys.items()}
    mark = province.mark()
    agent = make_agent(config={"security": {"keys": {"prov-2": str(pub["prov-2"])}}}).start()
    assert set(agent.config["security"]["keys"]) == {"prov-1", "prov-2"}  # prov-1 is the fixture's
    province.status("online", after=mark)
    for kid in ("prov-1", "prov-2"):  # both valid at once: the province may sign with either during rotation
        assert province.ack(province.send("status.get", kid=kid, key=_private(keys[kid])))["status"] == "done"
    # The kid names the key that must verify: prov-2's signature presented as prov-1 is no signature at all.
    mark = province.mark()
    province.send("status.get", kid="prov-1", key=_private(keys["prov-2"]))
    ack = province.ack(None, after=mark)  # unverified claims are not echoed: id null
    assert (ack["status"], ack["code"]) == ("rejected", "bad_signature")

    # prov-1 is retired: taken out of the config, the agent restarted.
    assert agent.stop() == 0
    agent.config["security"]["keys"] = {"prov-2": str(pub["prov-2"])}
    agent.write_config()
    mark = province.mark()
    agent.start()
    province.status("online", after=mark)
    mark = province.mark()
    province.send("status.get")  # signed with prov-1
    ack = province.ack(None, after=mark)
    assert (ack["status"], ack["code"]) == ("rejected", "unknown_key") and "'prov-1'" in ack["message"]
    assert province.ack(province.send("status.get", kid="prov-2", key=_private(keys["prov-2"])))["status"] == "done"


def _as_the_service(args: list[str], agent: Agent) -> subprocess.CompletedProcess:
    """Run the agent (or its CLI) subject to file permissions, as systemd runs it (User=loa, no capabilities):
    a root test process would read any file. setpriv empties the bounding set, so uid 0 keeps no CAP_DAC_*."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv (util-linux) to drop root's capabilities")
        prefix = ["setpriv", "--bounding-set=-all"]
    return subprocess.run([*prefix, sys.executable, "-m", *args, "--config", str(agent.config_path)],
                          env=agent.env(), capture_output=True, text=True, timeout=60)


def test_an_unreadable_key_file_stops_the_agent_at_start(make_agent: Callable[..., Agent], keys: dict[str, Path],
                                                         tmp_path: Path) -> None:
    # What agent/config.py checks for a public key file: there, a regular file, and readable by the agent.
    key = tmp_path / "prov-2.pub"
    shutil.copy(keys["prov-2"].with_suffix(".pub"), key)
    agent = make_agent(config={"security": {"keys": {"prov-2": str(key)}}})
    assert _as_the_service(["agent.cli", "config", "check"], agent).returncode == 0  # the control
    key.chmod(0o200)  # e.g. copied in as root with a umask of 077
    out = _as_the_service(["agent"], agent)
    assert out.returncode == 2, out.stderr
    assert f"security.keys.prov-2: cannot read {key}: permission denied" in out.stderr
    assert "security.keys.prov-1" not in out.stderr
    key.unlink()
    key.mkdir()
    out = _as_the_service(["agent"], agent)
    assert out.returncode == 2 and f"security.keys.prov-2: {key} is not a regular file" in out.stderr


def test_a_key_file_others_may_write_is_refused(make_agent: Callable[..., Agent], keys: dict[str, Path],
                                                tmp_path: Path) -> None:
    key = tmp_path / "prov-2.pub"
    shutil.copy(keys["prov-2"].with_suffix(".pub"), key)
    key.chmod(0o666)
    agent = make_agent(config={"security": {"keys": {"prov-2": str(key)}}})
    out = _as_the_service(["agent.cli", "config", "check"], agent)
    assert out.returncode == 2 and "security.keys.prov-2" in out.stderr
