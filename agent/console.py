"""`loa-console`: the provincial side, for demos, integrators and the project's tests.

Generates Ed25519 keys, signs commands and schedules as JWS (PyJWT, EdDSA) and
publishes them; watches what devices send back.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

FINAL = {"done", "rejected", "failed"}


KID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")


def generate_keypair(directory: Path, kid: str) -> tuple[Path, Path]:
    if not KID.fullmatch(kid):
        raise ValueError(f"kid {kid!r} must match {KID.pattern} (it names the key files)")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    private, public = directory / f"{kid}.key", directory / f"{kid}.pub"
    if private.exists():
        raise FileExistsError(f"{private} exists: refusing to overwrite a signing key")
    key = Ed25519PrivateKey.generate()
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    public.chmod(0o644)
    return private, public


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def make_claims(type_: str, params: dict | None = None, *, jti: str | None = None, iat: int | None = None,
                lifetime_s: int | None = 600, aud: str | list[str] | None = None, now: float | None = None,
                **extra: Any) -> dict:
    iat = int(now if now is not None else time.time()) if iat is None else iat
    claims: dict[str, Any] = {"jti": jti or uuid.uuid4().hex, "iat": iat, "type": type_}
    if lifetime_s is not None:
        claims["exp"] = iat + lifetime_s
    if aud is not None:
        claims["aud"] = aud
    if params is not None:
        claims["params"] = params
    claims.update(extra)
    return claims


def sign(claims: dict, private_key: Ed25519PrivateKey, kid: str) -> str:
    return jwt.encode(claims, private_key, algorithm="EdDSA", headers={"kid": kid})


def topic(prefix: str, target: str, kind: str) -> str:
    if kind not in ("cmd", "schedule"):
        raise ValueError(f"kind must be cmd or schedule, not {kind!r}")
    if target == "all":
        if kind != "cmd":
            raise ValueError("schedules go to a device or an area, not to all")
        return f"{prefix}/all/{kind}"
    scope, _, name = target.partition(":")
    if scope not in ("dev", "area") or not name:
        raise ValueError(f"target must be dev:ID, area:CODE or all, not {target!r}")
    return f"{prefix}/{scope}/{name}/{kind}"


class Broker:
    """A thin paho-mqtt 2 client for the provincial side."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883, *, tls_ca: str | None = None,
                 cert: str | None = None, key: str | None = None, username: str | None = None,
                 password_file: str | None = None, client_id: str | None = None):
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                  client_id=client_id or f"console-{uuid.uuid4().hex[:8]}")
        if tls_ca:
            self.client.tls_set(ca_certs=tls_ca, certfile=cert, keyfile=key)
        if username:
            password = Path(password_file).read_text().strip() if password_file else None
            self.client.username_pw_set(username, password)
        self._connected = threading.Event()
        self._subs: list[str] = []
        self._callbacks: list[tuple[str, Callable[[str, bytes, bool], None]]] = []
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        if not self._connected.wait(10):
            self.close()
            raise ConnectionError(f"no answer from the broker at {host}:{port}")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            for t in self._subs:
                client.subscribe(t, qos=1)
            self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        for filt, cb in self._callbacks:
            if mqtt.topic_matches_sub(filt, msg.topic):
                cb(msg.topic, msg.payload, bool(msg.retain))

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def publish(self, topic: str, payload: str | bytes, *, qos: int = 1, retain: bool = False,
                timeout: float = 10.0) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise TimeoutError(f"publish to {topic} not acknowledged within {timeout} s")

    def watch(self, topic_filter: str, callback: Callable[[str, bytes, bool], None]) -> None:
        self._callbacks.append((topic_filter, callback))
        self._subs.append(topic_filter)
        done = threading.Event()
        self.client.on_subscribe = lambda *a: done.set()
        self.client.subscribe(topic_filter, qos=1)
        done.wait(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


# --- CLI ----------------------------------------------------------------------------------

class UsageError(Exception):
    pass


def _env(name: str, default: Any = None) -> Any:
    return os.environ.get(f"LOA_CONSOLE_{name.upper()}", default)


def _broker(args: argparse.Namespace) -> Broker:
    return Broker(args.host, args.port, tls_ca=args.tls_ca, cert=args.cert, key=args.key_file,
                  username=args.username, password_file=args.password_file)


def _encode(args: argparse.Namespace, claims: dict) -> str:
    if args.unsigned:
        return json.dumps(claims, ensure_ascii=False)
    if not args.key:
        raise UsageError("a signing key is needed: --key PATH (or LOA_CONSOLE_KEY), or --unsigned for a lab agent")
    try:
        key = load_private_key(Path(args.key))
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot load the signing key {args.key}: {e}") from None
    return sign(claims, key, args.kid)


def cmd_keygen(args: argparse.Namespace) -> int:
    try:
        private, public = generate_keypair(Path(args.dir), args.kid)
    except FileExistsError as e:
        raise UsageError(str(e)) from None
    print(f"private key: {private}   (keep it on the provincial server only)")
    print(f"public key:  {public}")
    print(f"agent config:\n  security:\n    keys:\n      {args.kid}: {public.resolve()}")
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    try:
        params = json.loads(args.params) if args.params else None
    except ValueError as e:
        raise UsageError(f"--params is not valid JSON: {e}") from None
    claims = make_claims(args.type, params, lifetime_s=args.lifetime, aud=args.aud)
    payload = _encode(args, claims)
    dest = topic(args.prefix, args.to, "cmd")
    wait = args.wait if args.wait is not None else (10.0 if args.to.startswith("dev:") else 0.0)
    final: dict = {}
    done = threading.Event()
    with _broker(args) as b:
        if wait > 0 and args.to.startswith("dev:"):
            def on_ack(t: str, body: bytes, retain: bool) -> None:
                try:
                    ack = json.loads(body)
                except ValueError:
                    return
                if ack.get("id") == claims["jti"]:
                    print(f"ack: {ack.get('status')} {ack.get('code')} {ack.get('message') or ''}".rstrip())
                    if ack.get("result"):
                        print(json.dumps(ack["result"], ensure_ascii=False, indent=2))
                    if ack.get("status") in FINAL:
                        final.update(ack)
                        done.set()
            b.watch(f"{args.prefix}/dev/{args.to[4:]}/ack", on_ack)
        b.publish(dest, payload)
        print(f"sent {args.type} {claims['jti']} to {dest}")
        if wait > 0:
            if not done.wait(wait):
                print(f"no final ack within {wait:g} s", file=sys.stderr)
                return 1
            return 0 if final.get("status") == "done" else 1
    return 0


def cmd_schedule(args: argparse.Namespace) -> int:
    import yaml

    try:
        doc = yaml.safe_load(Path(args.file).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise UsageError(f"cannot read schedule {args.file}: {e}") from None
    if not isinstance(doc, dict):
        raise UsageError(f"{args.file}: a schedule is a mapping with version, tz and items")
    claims = make_claims("schedule", None, lifetime_s=None, **{k: v for k, v in doc.items() if k != "type"})
    dest = topic(args.prefix, args.to, "schedule")
    with _broker(args) as b:
        b.publish(dest, _encode(args, claims), retain=True)
    print(f"published schedule version {doc.get('version')} ({len(doc.get('items') or [])} items) "
          f"as {claims['jti']} to {dest}")
    return 0


def summary(t: str, payload: Any) -> str:
    kind = t.rsplit("/", 1)[-1]
    device = t.split("/")[-2]
    stamp = time.strftime("%H:%M:%S")
    if not isinstance(payload, dict):
        return f"{stamp} {device:<12} {kind:<9} {payload!r}"
    if kind == "ack":
        text = f"{payload.get('type')} {payload.get('id')} {payload.get('status')} {payload.get('code')}"
        if payload.get("message"):
            text += f" - {payload['message']}"
    elif kind == "status":
        text = f"{payload.get('state')} (boot {str(payload.get('boot_id'))[:8]}, v{payload.get('agent_version')})"
    elif kind == "heartbeat":
        text = (f"#{payload.get('seq')} {payload.get('state')} outbox={payload.get('outbox_pending')} "
                f"faults={','.join(payload.get('faults') or []) or 'none'}")
    elif kind == "event":
        data = json.dumps(payload.get("data"), ensure_ascii=False)
        text = f"{payload.get('kind')} {data[:160]}"
    else:
        text = json.dumps(payload, ensure_ascii=False)[:200]
    return f"{stamp} {device:<12} {kind:<9} {text}"


def cmd_watch(args: argparse.Namespace) -> int:
    seen = 0
    done = threading.Event()
    lock = threading.Lock()

    def on_message(t: str, body: bytes, retain: bool) -> None:
        nonlocal seen
        if t.endswith(("/cmd", "/schedule")):
            return
        try:
            payload: Any = json.loads(body)
        except ValueError:
            payload = body.decode(errors="replace")
        with lock:
            if args.json:
                print(json.dumps({"topic": t, "payload": payload}, ensure_ascii=False), flush=True)
            else:
                print(summary(t, payload), flush=True)
            seen += 1
            if args.count and seen >= args.count:
                done.set()

    with _broker(args) as b:
        b.watch(f"{args.prefix}/dev/{args.device or '+'}/+", on_message)
        try:
            done.wait()
        except KeyboardInterrupt:
            pass
    return 0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="loa-console", description="Provincial-side tool: keys, commands, schedules")
    ap.add_argument("--host", default=_env("host", "127.0.0.1"))
    ap.add_argument("--port", type=int, default=int(_env("port", 1883)))
    ap.add_argument("--prefix", default=_env("prefix", "ttcs/v1"))
    ap.add_argument("--tls-ca", default=_env("tls_ca"))
    ap.add_argument("--cert", default=_env("cert"))
    ap.add_argument("--key-file", default=_env("key_file"), help="client TLS key")
    ap.add_argument("--username", default=_env("username"))
    ap.add_argument("--password-file", default=_env("password_file"))
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    p = sub.add_parser("keygen", help="create an Ed25519 signing key pair")
    p.add_argument("--dir", default="keys")
    p.add_argument("--kid", default="prov-1")

    def signing(p: argparse.ArgumentParser) -> None:
        p.add_argument("--to", default=_env("to", "dev:GL-0001"), help="dev:ID, area:CODE or all")
        p.add_argument("--key", default=_env("key"), help="private signing key (PEM)")
        p.add_argument("--kid", default=_env("kid", "prov-1"))
        p.add_argument("--unsigned", action="store_true", help="plain JSON (agents with require_signed: false)")

    p = sub.add_parser("send", help="sign and publish a command")
    p.add_argument("type")
    p.add_argument("--params", help="JSON object")
    p.add_argument("--lifetime", type=int, default=600, help="seconds until exp")
    p.add_argument("--aud")
    p.add_argument("--wait", type=float, help="seconds to wait for the final ack (default 10 for dev:)")
    signing(p)

    p = sub.add_parser("schedule", help="sign and publish a schedule document (retained)")
    p.add_argument("file")
    signing(p)

    p = sub.add_parser("watch", help="print acks, status, heartbeats and events")
    p.add_argument("--device")
    p.add_argument("--json", action="store_true")
    p.add_argument("--count", type=int, default=0)
    return ap


COMMANDS = {"keygen": cmd_keygen, "send": cmd_send, "schedule": cmd_schedule, "watch": cmd_watch}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.cmd](args)
    except (UsageError, ValueError) as e:
        print(f"loa-console: error: {e}", file=sys.stderr)
        return 2
    except (ConnectionError, OSError, TimeoutError) as e:
        print(f"loa-console: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
