"""`loa-console`: the provincial side, for demos, integrators and the project's tests.

It makes the province's Ed25519 keys, signs commands and schedules as JWS
(docs/protocol.md, "Commands and schedules: the envelope"), publishes them on the
command and schedule topics, and prints what the devices send back.

Library API (used by the test suite)::

    generate_keypair(directory, kid) -> (private_path, public_path)
    load_private_key(path)
    make_claims(type_, params=None, *, jti=None, iat=None, lifetime_s=600, aud=None, now=None, **extra)
    sign(claims, private_key, kid) -> compact JWS
    topic(prefix, target, kind) -> "PREFIX/dev/ID/cmd", ...
    make_pki(directory, devices, san=..., days=...) -> {"ca": created?, "broker": created?, DEVICE: created?}
    revoke(directory, devices, days=...) -> crl.pem
    Broker(host, port, ...): publish(), watch(), close(); a context manager

Command line: ``loa-console [global options] {keygen,send,schedule,watch,pki} ...``.
Errors print ``loa-console: error: ...`` on stderr; exit 2 for usage and
configuration problems, 1 for a broker problem, a timeout or a refused command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import queue
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jwt
import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

PROG = "loa-console"
DEFAULT_PREFIX = "ttcs/v1"
FINAL = frozenset({"done", "rejected", "failed"})
WATCHED_KINDS = ("ack", "status", "heartbeat", "event")

_DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_KID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")
_BAD_TOPIC_CHARS = set("/+#\0")

Callback = Callable[[str, bytes, bool], None]


# --- keys and tokens ------------------------------------------------------------------------

def generate_keypair(directory: Path, kid: str) -> tuple[Path, Path]:
    """Write KID.key (Ed25519 private key, PKCS8 PEM, 0600) and KID.pub (SubjectPublicKeyInfo PEM, 0644).

    Refuses to overwrite an existing private key (FileExistsError). Returns (private, public).
    """
    if not _KID.fullmatch(kid):
        raise ValueError(f"bad key id {kid!r}: use 1-64 of A-Z a-z 0-9 . _ - (not starting with a dot)")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    private_path, public_path = directory / f"{kid}.key", directory / f"{kid}.pub"
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    # O_EXCL: the check and the creation are one step, so a key is never silently replaced.
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, private_pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    fd = os.open(public_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.fchmod(fd, 0o644)
        os.write(fd, public_pem)
    finally:
        os.close(fd)
    return private_path, public_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in a PEM file (as written by generate_keypair)."""
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


def make_claims(type_: str, params: dict | None = None, *, jti: str | None = None, iat: int | None = None,
                lifetime_s: int | None = 600, aud: str | list[str] | None = None, now: float | None = None,
                **extra: Any) -> dict:
    """The claims of a command or schedule: jti, iat, exp (iat + lifetime_s; none when lifetime_s is None),
    type, aud and params when given, then any extra claims (version=, tz=, items= for schedules)."""
    if iat is None:
        iat = int(now if now is not None else time.time())
    claims: dict[str, Any] = {"jti": jti if jti is not None else uuid.uuid4().hex, "iat": iat}
    if lifetime_s is not None:
        claims["exp"] = iat + int(lifetime_s)
    claims["type"] = type_
    if aud is not None:
        claims["aud"] = aud
    if params is not None:
        claims["params"] = params
    claims.update(extra)
    return claims


def sign(claims: dict, private_key: Any, kid: str) -> str:
    """The claims as a compact JWS with header {"alg": "EdDSA", "kid": kid} (PyJWT also adds "typ")."""
    return jwt.encode(claims, private_key, algorithm="EdDSA", headers={"kid": kid})


def topic(prefix: str, target: str, kind: str) -> str:
    """The topic for a target ("dev:ID", "area:CODE" or "all") and kind ("cmd" or "schedule").

    There is no fleet-wide schedule topic: ("all", "schedule") is a ValueError, like any bad input.
    """
    if kind not in ("cmd", "schedule"):
        raise ValueError(f"bad topic kind {kind!r}: expected 'cmd' or 'schedule'")
    prefix = prefix.rstrip("/")
    if not prefix or _BAD_TOPIC_CHARS & set(prefix.replace("/", "")):
        raise ValueError(f"bad topic prefix {prefix!r}")
    if target == "all":
        if kind != "cmd":
            raise ValueError("schedules go to dev:ID or area:CODE; there is no fleet-wide schedule topic")
        return f"{prefix}/all/cmd"
    scope, sep, name = target.partition(":")
    if sep and scope == "dev":
        if not _DEVICE_ID.fullmatch(name):
            raise ValueError(f"bad device id in {target!r}: expected 1-64 of A-Z a-z 0-9 _ -")
        return f"{prefix}/dev/{name}/{kind}"
    if sep and scope == "area":
        if not name or _BAD_TOPIC_CHARS & set(name):
            raise ValueError(f"bad area code in {target!r}")
        return f"{prefix}/area/{name}/{kind}"
    raise ValueError(f"bad target {target!r}: expected dev:ID, area:CODE or all")


# --- test PKI (openssl) ---------------------------------------------------------------------

DEFAULT_SAN = ("IP:127.0.0.1", "DNS:localhost")
_DNS_NAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
_PKI_RESERVED = frozenset({"ca", "broker"})  # file names the CA and the broker use
_CA_NAME = re.compile(r"[A-Za-z0-9._-][A-Za-z0-9 ._-]{0,63}")  # nothing openssl's -subj would parse as syntax

# One openssl config for every certificate: -config for `req`, -extfile for `x509 -req`. Written out here
# rather than relying on the system's openssl.cnf, so the extensions are these and only these.
_OPENSSL_CNF = """\
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[broker]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = {san}
[device]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


# `openssl ca` only keeps the revocation database here; certificates are issued with `x509 -req` above.
_OPENSSL_CA_CNF = """\
[ca]
default_ca = loa
[loa]
database = index.txt
crlnumber = crlnumber
default_md = sha256
"""


class PkiError(Exception):
    """openssl failed, or the directory holds half of a key pair."""


def san_entry(value: str) -> str:
    """A subjectAltName entry as openssl writes it: "IP:10.0.0.5", "DNS:mqtt.example"; a bare address or
    host name is recognised. ValueError for anything else (a comma would smuggle in more entries)."""
    import ipaddress

    kind, sep, name = value.partition(":")
    if not (sep and kind.upper() in ("IP", "DNS")):
        kind, name = "", value
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = None
    if kind.upper() != "DNS" and address is not None:
        return f"IP:{address}"
    if kind.upper() != "IP" and _DNS_NAME.fullmatch(name):
        return f"DNS:{name}"
    raise ValueError(f"bad subjectAltName {value!r}: expected IP:ADDRESS or DNS:NAME")


def _openssl(*args: str, cwd: Path, stdin: bytes | None = None) -> bytes:
    import subprocess  # only the pki command needs it

    try:
        # umask 077: a key is never readable by others, not even between its creation and the chmod below.
        proc = subprocess.run(["openssl", *args], cwd=cwd, input=stdin, capture_output=True, umask=0o077)
    except FileNotFoundError:
        raise PkiError("openssl not found: install the openssl package") from None
    if proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        raise PkiError(f"openssl {args[0]} failed: {lines[-1] if lines else f'exit {proc.returncode}'}")
    return proc.stdout


def _issue(d: Path, cnf: Path, name: str, subject: str, section: str, days: int) -> None:
    """name.key (EC P-256, 0600) and name.pem with the extensions of `section`: self-signed for the CA, else
    signed by ca.key. Made under temporary names and renamed, so a failure leaves no half pair behind."""
    import secrets

    key, pem = d / f"{name}.key", d / f"{name}.pem"
    tmp_key, tmp_pem = d / f".{name}.key.tmp", d / f".{name}.pem.tmp"
    try:
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", tmp_key.name, cwd=d)
        tmp_key.chmod(0o600)
        if section == "ca":
            _openssl("req", "-new", "-x509", "-key", tmp_key.name, "-subj", subject, "-days", str(days),
                     "-config", str(cnf), "-extensions", section, "-out", tmp_pem.name, cwd=d)
        else:
            csr = _openssl("req", "-new", "-key", tmp_key.name, "-subj", subject, "-config", str(cnf), cwd=d)
            _openssl("x509", "-req", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial",
                     str(secrets.randbits(120) + 1), "-days", str(days), "-extfile", str(cnf), "-extensions",
                     section, "-out", tmp_pem.name, cwd=d, stdin=csr)
        tmp_pem.chmod(0o644)
        os.replace(tmp_key, key)  # the key first: a .pem is never there without its key
        os.replace(tmp_pem, pem)
    finally:
        tmp_key.unlink(missing_ok=True)
        tmp_pem.unlink(missing_ok=True)


def _have(d: Path, name: str) -> bool:
    """Whether name.key and name.pem are both there; PkiError when only one is (refuse to guess)."""
    key, pem = (d / f"{name}.key").exists(), (d / f"{name}.pem").exists()
    if key != pem:
        present, missing = (f"{name}.key", f"{name}.pem") if key else (f"{name}.pem", f"{name}.key")
        raise PkiError(f"{d / present} exists without {missing}: remove it to make a new pair")
    return key


def make_pki(directory: Path, devices: Iterable[str] = (), *, san: Iterable[str] = DEFAULT_SAN, days: int = 365,
             ca_name: str = "loa-agent test CA") -> dict[str, bool]:
    """A lab/test PKI made with openssl in `directory`: ca.pem/ca.key (a CA valid 10 years), broker.pem/broker.key
    (serverAuth, subjectAltName `san`) and DEVICE.pem/DEVICE.key per device (CN = the device id, clientAuth only).

    Keys are EC P-256, mode 0600. What exists already is kept (re-running adds devices to the same CA).
    Returns {"ca": created?, "broker": created?, device: created?, ...}; ValueError for a bad device id,
    subjectAltName or days, PkiError when openssl fails.
    """
    import tempfile

    ids = list(dict.fromkeys(devices))
    for dev in ids:
        if not _DEVICE_ID.fullmatch(dev) or dev in _PKI_RESERVED:
            raise ValueError(f"bad device id {dev!r}: expected 1-64 of A-Z a-z 0-9 _ - (and not 'ca' or 'broker')")
    sans = [san_entry(s) for s in san]
    if not sans:
        raise ValueError("the broker certificate needs at least one subjectAltName")
    if not 1 <= days <= 3650:
        raise ValueError(f"days must be 1-3650, got {days}")
    if not _CA_NAME.fullmatch(ca_name):
        raise ValueError(f"bad CA name {ca_name!r}: use 1-64 of A-Z a-z 0-9 space . _ -")
    d = Path(directory)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    made: dict[str, bool] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cnf = Path(tmp) / "openssl.cnf"
        cnf.write_text(_OPENSSL_CNF.format(san=", ".join(sans)))
        made["ca"] = not _have(d, "ca")
        if made["ca"]:
            _issue(d, cnf, "ca", f"/CN={ca_name}", "ca", 3650)
        made["broker"] = not _have(d, "broker")
        if made["broker"]:
            cn = next((s[4:] for s in sans if s.startswith("DNS:")), sans[0].partition(":")[2])
            _issue(d, cnf, "broker", f"/CN={cn}", "broker", days)
        for dev in ids:
            made[dev] = not _have(d, dev)
            if made[dev]:
                _issue(d, cnf, dev, f"/CN={dev}", "device", days)
    return made


def revoke(directory: Path, devices: Iterable[str], *, days: int = 365) -> Path:
    """Revoke the devices' certificates (recorded in index.txt, openssl ca's database) and write crl.pem, signed by
    the CA and valid `days` days: the broker's `crlfile`, which refuses those certificates in the handshake.
    The CRL must be made again before it expires, or the broker refuses every certificate. Returns crl.pem."""
    import tempfile

    d = Path(directory)
    if not _have(d, "ca"):
        raise PkiError(f"no CA in {d}: make one first")
    if not 1 <= days <= 3650:
        raise ValueError(f"days must be 1-3650, got {days}")
    (d / "index.txt").touch(mode=0o600)
    if not (d / "crlnumber").exists():
        (d / "crlnumber").write_text("01\n")
    with tempfile.TemporaryDirectory() as tmp:
        cnf = Path(tmp) / "ca.cnf"
        cnf.write_text(_OPENSSL_CA_CNF)
        ca = ("-config", str(cnf), "-keyfile", "ca.key", "-cert", "ca.pem")
        for dev in dict.fromkeys(devices):
            if not _DEVICE_ID.fullmatch(dev) or dev in _PKI_RESERVED or not _have(d, dev):
                raise ValueError(f"no certificate for device {dev!r} in {d}")
            serial = _openssl("x509", "-in", f"{dev}.pem", "-noout", "-serial", cwd=d).decode().strip()
            revoked = {line.split("\t")[3] for line in (d / "index.txt").read_text().splitlines()
                       if line.startswith("R\t")}
            if serial.partition("=")[2] not in revoked:  # openssl ca fails on a second revocation
                _openssl("ca", *ca, "-revoke", f"{dev}.pem", cwd=d)
        _openssl("ca", *ca, "-gencrl", "-crldays", str(days), "-out", ".crl.pem.tmp", cwd=d)
    (d / ".crl.pem.tmp").chmod(0o644)
    os.replace(d / ".crl.pem.tmp", d / "crl.pem")
    return d / "crl.pem"


# --- broker ---------------------------------------------------------------------------------

class Broker:
    """A thin paho-mqtt 2 client (MQTT 5): connects on construction, publishes with PUBACK, watches topics.

    Subscriptions made with watch() are renewed when paho reconnects.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 1883, *, tls_ca: str | Path | None = None,
                 cert: str | Path | None = None, key: str | Path | None = None, username: str | None = None,
                 password_file: str | Path | None = None, client_id: str | None = None,
                 connect_timeout: float = 10.0):
        self.url = f"{'mqtts' if tls_ca or cert else 'mqtt'}://{host}:{port}"
        self._cond = threading.Condition()
        self._connected: Any = None  # the CONNACK reason code, once it came
        self._lost: Any = None  # why the connection dropped before any CONNACK (TLS refused, ...)
        self._subacks: dict[int, list] = {}
        self._pubacks: dict[int, Any] = {}
        self._watches: dict[str, Callback] = {}
        self._closed = False
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                        client_id=client_id or f"loa-console-{os.getpid()}-{uuid.uuid4().hex[:8]}",
                        protocol=mqtt.MQTTv5)
        c.connect_timeout = connect_timeout
        c.reconnect_delay_set(0.2, 5)
        if tls_ca or cert:
            c.tls_set(ca_certs=str(tls_ca) if tls_ca else None, certfile=str(cert) if cert else None,
                      keyfile=str(key) if key else None)
        if password_file and not username:
            raise ValueError("a password file needs a username")
        if username:
            password = Path(password_file).read_text(encoding="utf-8").strip() if password_file else None
            c.username_pw_set(username, password)
        c.on_connect = self._on_connect
        c.on_subscribe = self._on_subscribe
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        c.on_disconnect = self._on_disconnect
        self.client = c
        try:
            c.connect(host, port, keepalive=30, clean_start=True)
        except (OSError, ValueError) as e:
            raise ConnectionError(f"cannot connect to {self.url}: {e}") from e
        c.loop_start()
        with self._cond:
            self._cond.wait_for(lambda: self._connected is not None or self._lost is not None, connect_timeout)
            reason, lost = self._connected, self._lost
        if reason is None or reason.is_failure:
            self.close()
            if reason is not None:
                raise ConnectionError(f"broker {self.url} refused the connection: {reason}")
            if lost is not None:
                hint = "a client certificate or the CA?" if self.url.startswith("mqtts") else "a TLS-only port?"
                raise ConnectionError(f"{self.url} closed the connection before accepting it: {lost} ({hint})")
            raise ConnectionError(f"no answer from {self.url} within {connect_timeout} s")

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # paho's network thread
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self._cond:
            self._connected = reason
            self._cond.notify_all()
            filters = list(self._watches)
        if not reason.is_failure:
            for f in filters:  # after a reconnect: a clean session has lost them
                client.subscribe(f, qos=1)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self._cond:
            if self._connected is None:
                self._lost = reason
                self._cond.notify_all()

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: list, props: Any) -> None:
        with self._cond:
            self._subacks[mid] = list(reasons)
            self._cond.notify_all()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._cond:  # paho calls this before it marks the message published
            self._pubacks[mid] = reason

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            callbacks = [cb for f, cb in self._watches.items() if mqtt.topic_matches_sub(f, msg.topic)]
        for cb in callbacks:
            try:
                cb(msg.topic, msg.payload, bool(msg.retain))
            except Exception as e:  # an exception escaping here would kill paho's thread
                print(f"{PROG}: error in message callback for {msg.topic}: {e!r}", file=sys.stderr)

    # API
    def publish(self, topic: str, payload: str | bytes, *, qos: int = 1, retain: bool = False,
                timeout: float = 10.0) -> None:
        """Publish and wait until the broker has it (PUBACK for QoS 1); raise if it did not."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as e:
            raise ConnectionError(f"publish to {topic} on {self.url} failed: {e}") from e
        if not info.is_published():
            raise TimeoutError(f"no PUBACK from {self.url} for {topic} within {timeout} s")
        with self._cond:
            reason = self._pubacks.pop(info.mid, None)
        if reason is not None and getattr(reason, "is_failure", False):
            raise ConnectionError(f"broker {self.url} refused the publish to {topic}: {reason}")

    def watch(self, topic_filter: str, callback: Callback, *, timeout: float = 10.0) -> None:
        """Subscribe (QoS 1) and wait for the SUBACK; callback(topic, payload, retain) runs in paho's thread."""
        with self._cond:
            self._watches[topic_filter] = callback
        rc, mid = self.client.subscribe(topic_filter, qos=1)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"cannot subscribe to {topic_filter} on {self.url}: {mqtt.error_string(rc)}")
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self._subacks, timeout):
                raise TimeoutError(f"no SUBACK from {self.url} for {topic_filter} within {timeout} s")
            reasons = self._subacks.pop(mid)
        failed = [r for r in reasons if getattr(r, "is_failure", False)]
        if failed:
            raise ConnectionError(f"broker {self.url} refused the subscription to {topic_filter}: {failed[0]}")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


# --- command line ---------------------------------------------------------------------------

class UsageError(Exception):
    """A usage or configuration problem: exit 2."""


class Failure(Exception):
    """A runtime problem (broker, timeout): exit 1."""


# (option, dest, env var, help); the flag wins over the env var, which wins over the default.
GLOBAL_OPTIONS = [
    ("--host", "host", "LOA_CONSOLE_HOST", "broker host (default 127.0.0.1)"),
    ("--port", "port", "LOA_CONSOLE_PORT", "broker port (default 1883, or 8883 with TLS)"),
    ("--prefix", "prefix", "LOA_CONSOLE_PREFIX", f"topic prefix (default {DEFAULT_PREFIX})"),
    ("--tls-ca", "tls_ca", "LOA_CONSOLE_TLS_CA", "CA file: connect with TLS"),
    ("--cert", "cert", "LOA_CONSOLE_CERT", "client certificate (TLS)"),
    ("--key-file", "key_file", "LOA_CONSOLE_KEY_FILE", "client certificate's private key (TLS), not the signing key"),
    ("--username", "username", "LOA_CONSOLE_USERNAME", "broker user name"),
    ("--password-file", "password_file", "LOA_CONSOLE_PASSWORD_FILE", "file holding the broker password"),
]


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    for flag, dest, env, text in GLOBAL_OPTIONS:
        common.add_argument(flag, dest=dest, default=argparse.SUPPRESS, metavar=dest.upper(),
                            help=f"{text}; env {env}")
    ap = argparse.ArgumentParser(
        prog=PROG, parents=[common],
        description="The provincial side of loa-agent: make keys, sign and send commands and schedules, "
                    "watch what the devices report.",
        epilog="Global options may come before or after the command.")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    p = sub.add_parser("keygen", parents=[common], help="make an Ed25519 key pair for signing")
    p.add_argument("--dir", default="keys", help="directory for KID.key and KID.pub (default ./keys)")
    p.add_argument("--kid", default="prov-1", help="key id (default prov-1)")

    signing = argparse.ArgumentParser(add_help=False)
    signing.add_argument("--to", metavar="TARGET",
                         help="dev:ID, area:CODE or all (required; env LOA_CONSOLE_TO)")
    signing.add_argument("--key", help="signing key, a PEM file (env LOA_CONSOLE_KEY)")
    signing.add_argument("--kid", help="key id (env LOA_CONSOLE_KID; default: the key file's name)")
    signing.add_argument("--unsigned", action="store_true",
                         help="send the claims as plain JSON (agents with security.require_signed: false)")
    signing.add_argument("--aud", action="append", metavar="X",
                         help="audience claim: a device id, an area code or '*' (repeatable)")
    signing.add_argument("--json", action="store_true", help="print acks as JSON, one per line")

    p = sub.add_parser("send", parents=[common, signing], help="sign and publish a command")
    p.add_argument("type", metavar="TYPE", help="command type: play, stop, status.get, ...")
    p.add_argument("--params", metavar="JSON", help="the params object, as JSON")
    p.add_argument("--lifetime", type=int, default=600, metavar="S", help="exp - iat in seconds (default 600)")
    p.add_argument("--wait", type=float, metavar="S",
                   help="wait S seconds for the final ack (default 10 for dev: targets, 0 otherwise)")

    p = sub.add_parser("schedule", parents=[common, signing], help="sign and publish a schedule (retained)")
    p.add_argument("file", metavar="FILE", help="YAML or JSON: version, tz, items")
    p.add_argument("--wait", type=float, default=0.0, metavar="S", help="wait S seconds for the final ack")

    p = sub.add_parser("pki", help="make a test CA, the broker's certificate and device certificates (openssl)",
                       description="A throwaway PKI for labs and tests (config/mosquitto/README.md): ca.pem/ca.key, "
                                   "broker.pem/broker.key and DEVICE.pem/DEVICE.key (CN = the device id, the "
                                   "broker's user name). Keys are mode 0600. Files that exist are kept, so running "
                                   "it again adds devices to the same CA.")
    p.add_argument("devices", nargs="*", metavar="DEVICE", help="device ids to make client certificates for")
    p.add_argument("--dir", default="pki", help="output directory (default ./pki)")
    p.add_argument("--san", action="append", metavar="IP:ADDR|DNS:NAME",
                   help="the broker certificate's subjectAltName, repeatable (default IP:127.0.0.1 and "
                        "DNS:localhost); use the address or name the boxes connect to")
    p.add_argument("--days", type=int, default=365, help="validity of the broker and device certificates made "
                                                         "now, and of the CRL (default 365; the CA: 10 years)")
    p.add_argument("--ca-name", default="loa-agent test CA", help="the CA's common name")
    p.add_argument("--revoke", action="append", default=[], metavar="DEVICE",
                   help="revoke this device's certificate and write crl.pem (valid --days; the broker's crlfile), "
                        "repeatable")

    p = sub.add_parser("watch", parents=[common], help="print acks, status, heartbeats and events")
    p.add_argument("--device", metavar="ID", help="only this device (default: all)")
    p.add_argument("--json", action="store_true", help='one {"topic": ..., "payload": ...} per line')
    p.add_argument("--count", type=int, metavar="N", help="stop after N messages")
    p.add_argument("--timeout", type=float, metavar="S", help="stop after S seconds")
    return ap


def _globals(args: argparse.Namespace) -> None:
    """Fill each global option from its env var when the flag is absent, then the default."""
    for _flag, dest, env, _text in GLOBAL_OPTIONS:
        if not hasattr(args, dest):
            setattr(args, dest, os.environ.get(env) or None)
    args.host = args.host or "127.0.0.1"
    args.prefix = (args.prefix or DEFAULT_PREFIX).rstrip("/")
    if args.port is None:
        args.port = 8883 if args.tls_ca or args.cert else 1883
    else:
        try:
            args.port = int(args.port)
        except ValueError:
            raise UsageError(f"bad port {args.port!r}") from None
    for dest in ("tls_ca", "cert", "key_file", "password_file"):
        path = getattr(args, dest)
        if path and not Path(path).is_file():
            raise UsageError(f"--{dest.replace('_', '-')}: no such file: {path}")
    if args.key_file and not args.cert:
        raise UsageError("--key-file needs --cert")
    if args.password_file and not args.username:
        raise UsageError("--password-file needs --username")


def _connect(args: argparse.Namespace) -> Broker:
    try:
        return Broker(args.host, args.port, tls_ca=args.tls_ca, cert=args.cert, key=args.key_file,
                      username=args.username, password_file=args.password_file)
    except (ConnectionError, TimeoutError, OSError) as e:
        raise Failure(str(e)) from e


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _globals(args)
        return COMMANDS[args.cmd](args)
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except Failure as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


# keygen

def cmd_keygen(args: argparse.Namespace) -> int:
    try:
        private, public = generate_keypair(Path(args.dir), args.kid)
    except FileExistsError as e:
        raise UsageError(f"{e.filename} exists; refusing to overwrite a private key") from None
    except ValueError as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(f"cannot write the key pair: {e}") from None
    private, public = private.resolve(), public.resolve()
    print(f"private key: {private}  (keep it secret; it signs for the province)")
    print(f"public key:  {public}  (copy it to each box)")
    print("add to the agent config (with the path where the .pub lands on the box):")
    print("security:")
    print("  keys:")
    print(f"    {args.kid}: {public}")
    return 0


# pki

def cmd_pki(args: argparse.Namespace) -> int:
    d = Path(args.dir)
    try:
        made = make_pki(d, args.devices, san=args.san or DEFAULT_SAN, days=args.days, ca_name=args.ca_name)
    except ValueError as e:
        raise UsageError(str(e)) from None
    except (PkiError, OSError) as e:
        raise Failure(str(e)) from None
    d = d.resolve()
    if args.san and not made["broker"]:
        print(f"{PROG}: note: --san ignored: {d / 'broker.pem'} exists (remove it and broker.key to make a new one)",
              file=sys.stderr)
    notes = {"ca": "the CA; keep ca.key off the broker and the boxes", "broker": "the broker's TLS certificate"}
    print(f"{PROG}: PKI in {d}")
    for name, created in made.items():
        print(f"  {'created' if created else 'kept   '} {name}.pem {name}.key  {notes.get(name, 'device ' + name)}")
    print("broker (config/mosquitto/loa.conf): cafile ca.pem, certfile broker.pem, keyfile broker.key")
    for dev in [n for n in made if n not in _PKI_RESERVED]:
        print(f"box {dev}: mqtt.tls: {{ca: ca.pem, cert: {dev}.pem, key: {dev}.key}}")
    if args.revoke:
        try:
            crl = revoke(d, args.revoke, days=args.days)
        except ValueError as e:
            raise UsageError(str(e)) from None
        except (PkiError, OSError) as e:
            raise Failure(str(e)) from None
        print(f"revoked {', '.join(args.revoke)}: {crl} (crlfile in loa.conf; restart mosquitto; make it again "
              f"within {args.days} days, or the broker refuses every certificate)")
    return 0


# send / schedule

def _target(args: argparse.Namespace, kind: str) -> tuple[str, str]:
    target = args.to or os.environ.get("LOA_CONSOLE_TO")
    if not target:
        raise UsageError("--to is required: dev:ID, area:CODE or all")
    try:
        return target, topic(args.prefix, target, kind)
    except ValueError as e:
        raise UsageError(f"--to: {e}") from None


def _signer(args: argparse.Namespace) -> tuple[Any, str] | None:
    """(private key, kid), or None for --unsigned."""
    if args.unsigned:
        return None
    path = args.key or os.environ.get("LOA_CONSOLE_KEY")
    if not path:
        raise UsageError("no signing key: pass --key PATH or set LOA_CONSOLE_KEY "
                         "(or --unsigned for an agent with security.require_signed: false)")
    try:
        key = load_private_key(Path(path))
    except FileNotFoundError:
        raise UsageError(f"--key: no such file: {path}") from None
    except (OSError, ValueError, TypeError) as e:
        raise UsageError(f"--key: cannot load {path}: {e}") from None
    kid = args.kid or os.environ.get("LOA_CONSOLE_KID") or Path(path).stem
    return key, kid


def _encode(claims: dict, signer: tuple[Any, str] | None) -> str:
    if signer is None:
        return json.dumps(claims, ensure_ascii=False)
    return sign(claims, *signer)


def _aud(args: argparse.Namespace) -> str | list[str] | None:
    if not args.aud:
        return None
    return args.aud[0] if len(args.aud) == 1 else list(args.aud)


def cmd_send(args: argparse.Namespace) -> int:
    target, cmd_topic = _target(args, "cmd")
    params = None
    if args.params is not None:
        try:
            params = json.loads(args.params)
        except ValueError as e:
            raise UsageError(f"--params is not valid JSON: {e}") from None
        if not isinstance(params, dict):
            raise UsageError("--params must be a JSON object")
    if args.lifetime <= 0:
        raise UsageError("--lifetime must be positive")
    signer = _signer(args)
    claims = make_claims(args.type, params, lifetime_s=args.lifetime, aud=_aud(args))
    wait = args.wait if args.wait is not None else (10.0 if target.startswith("dev:") else 0.0)
    return _publish_and_wait(args, target, cmd_topic, claims, _encode(claims, signer), wait, retain=False)


def _load_document(path: str) -> dict:
    import yaml  # only the schedule command needs it

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        doc = json.loads(text)
    except ValueError:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise UsageError(f"{path} is neither JSON nor YAML: {e}") from None
    if not isinstance(doc, dict):
        raise UsageError(f"{path}: expected a mapping with version, tz and items")
    return _jsonable(doc)


def _jsonable(value: Any) -> Any:
    """YAML's dates and times back to ISO strings (the protocol's start, until and exdates are strings)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.date | dt.time):  # datetime is a date
        return value.isoformat()
    return value


def cmd_schedule(args: argparse.Namespace) -> int:
    target, sched_topic = _target(args, "schedule")
    doc = _load_document(args.file)
    if doc.setdefault("type", "schedule") != "schedule":
        raise UsageError(f"{args.file}: type must be 'schedule', not {doc['type']!r}")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise UsageError(f"{args.file}: version must be an integer (increase it on every change)")
    if not isinstance(doc.get("items", []), list):
        raise UsageError(f"{args.file}: items must be a list")
    for claim in ("jti", "iat"):
        if doc.pop(claim, None) is not None:
            print(f"{PROG}: note: {claim} in {args.file} replaced by a fresh one", file=sys.stderr)
    signer = _signer(args)
    aud = _aud(args) if args.aud else doc.pop("aud", None)
    doc.pop("type")
    claims = make_claims("schedule", None, lifetime_s=None, aud=aud, **doc)
    return _publish_and_wait(args, target, sched_topic, claims, _encode(claims, signer), args.wait, retain=True)


def _publish_and_wait(args: argparse.Namespace, target: str, to_topic: str, claims: dict, payload: str,
                      wait: float, *, retain: bool) -> int:
    jti = claims["jti"]
    acks: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
    device = target.partition(":")[2] if target.startswith("dev:") else "+"
    with _connect(args) as broker:
        try:
            if wait > 0:  # subscribe first, so that no ack can come before we listen
                broker.watch(f"{args.prefix}/dev/{device}/ack", lambda t, p, r: acks.put((t, p, r)))
            broker.publish(to_topic, payload, qos=1, retain=retain)
        except (ConnectionError, TimeoutError) as e:
            raise Failure(str(e)) from e
        print(jti, flush=True)
        how = "unsigned" if args.unsigned else "signed"
        print(f"{PROG}: published {claims['type']} ({how}) to {to_topic}{' retained' if retain else ''}",
              file=sys.stderr)
        if wait <= 0:
            return 0
        return _await_acks(args, acks, jti, wait, single=device != "+")


def _show(args: argparse.Namespace, t: str, payload: object, retain: bool) -> None:
    """One received message: a JSON line with --json, else a readable line."""
    print(json.dumps({"topic": t, "payload": payload}, ensure_ascii=False) if args.json
          else _line(t, payload, retain), flush=True)


def _await_acks(args: argparse.Namespace, acks: queue.Queue, jti: str, wait: float, *, single: bool) -> int:
    """Print the acks for jti. One device: until its final ack. Area or fleet: for the whole wait."""
    deadline = time.monotonic() + wait
    finals: list[str] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            t, raw, retain = acks.get(timeout=left)
        except queue.Empty:
            break
        payload = _decode(raw)
        if not isinstance(payload, dict) or payload.get("id") != jti:
            continue
        _show(args, t, payload, retain)
        status = payload.get("status")
        if status in FINAL:
            finals.append(status)
            if single:
                return 0 if status == "done" else 1
    if single or not finals:
        print(f"{PROG}: error: no final ack for {jti} within {wait:g} s", file=sys.stderr)
        return 1
    return 0 if all(s == "done" for s in finals) else 1


# watch

def cmd_watch(args: argparse.Namespace) -> int:
    if args.device is not None and not _DEVICE_ID.fullmatch(args.device):
        raise UsageError(f"bad device id {args.device!r}")
    if args.count is not None and args.count <= 0:
        raise UsageError("--count must be positive")
    messages: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
    topic_filter = f"{args.prefix}/dev/{args.device or '+'}/#"
    depth = args.prefix.count("/") + 3  # PREFIX/dev/D/kind
    seen = 0
    try:
        with _connect(args) as broker:
            def on_message(t: str, payload: bytes, retain: bool) -> None:
                if t.count("/") == depth and t.rsplit("/", 1)[-1] in WATCHED_KINDS:
                    messages.put((t, payload, retain))

            try:
                broker.watch(topic_filter, on_message)
            except (ConnectionError, TimeoutError) as e:
                raise Failure(str(e)) from e
            print(f"{PROG}: watching {topic_filter} on {broker.url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
            deadline = time.monotonic() + args.timeout if args.timeout is not None else None
            while args.count is None or seen < args.count:
                left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
                if left <= 0:
                    break
                try:
                    t, raw, retain = messages.get(timeout=left)
                except queue.Empty:
                    continue
                _show(args, t, _decode(raw), retain)
                seen += 1
    except KeyboardInterrupt:
        return 0
    if args.count is not None and seen < args.count:
        print(f"{PROG}: error: {seen} of {args.count} messages within {args.timeout:g} s", file=sys.stderr)
        return 1
    return 0


def _decode(raw: bytes) -> Any:
    """JSON when it parses, else the text."""
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _fields(pairs: list[tuple[str, Any]]) -> str:
    out = []
    for name, value in pairs:
        if value is None or value == "" or value == {} or value == []:
            continue
        text = _short(value)
        out.append(f"{name}={json.dumps(text, ensure_ascii=False) if ' ' in text else text}")
    return " ".join(out)


def _line(t: str, payload: Any, retain: bool = False) -> str:
    """One readable line: time, device, kind and the fields that matter for that kind."""
    parts = t.split("/")
    device, kind = (parts[-2], parts[-1]) if len(parts) >= 2 else ("?", t)
    head = f"{time.strftime('%H:%M:%S')}  {device:<16} {kind:<9}"
    if not isinstance(payload, dict):
        return f"{head} {_short(payload, 100)!r}"
    p = payload
    if kind == "ack":
        body = _fields([("id", p.get("id") or "null"), ("type", p.get("type")), ("status", p.get("status")),
                        ("code", p.get("code")), ("message", p.get("message")), ("result", p.get("result"))])
    elif kind == "status":
        body = _fields([("state", p.get("state")), ("boot", p.get("boot_id")),
                        ("version", p.get("agent_version"))])
    elif kind == "heartbeat":
        playing = p.get("playing")
        if isinstance(playing, dict):
            playing = "/".join(str(playing[k]) for k in ("level", "title", "id") if playing.get(k))
        body = _fields([("seq", p.get("seq")), ("state", p.get("state")), ("playing", playing),
                        ("volume", p.get("volume")), ("outbox_pending", p.get("outbox_pending")),
                        ("faults", ",".join(map(str, p.get("faults") or [])) or "none")])
    elif kind == "event":
        data = p.get("data")
        summary = _fields(list(data.items())[:6]) if isinstance(data, dict) else _short(data)
        body = f"{p.get('kind', '?')} {summary}".rstrip()
    else:
        body = _short(p, 100)
    return f"{head} {body}{' (retained)' if retain else ''}"


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "keygen": cmd_keygen,
    "send": cmd_send,
    "schedule": cmd_schedule,
    "watch": cmd_watch,
    "pki": cmd_pki,
}


if __name__ == "__main__":
    sys.exit(main())
