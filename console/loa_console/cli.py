"""`loa-console`'s command line: ``loa-console [global options] {keygen,send,schedule,watch,pki,bundle} ...``.

Errors print ``loa-console: error: ...`` on stderr; exit 2 for usage and
configuration problems, 1 for a broker problem, a timeout or a refused command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import queue
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent import topics
from agent.bundle import BundleError, open_bundle

from . import PROG
from .broker import Broker
from .bundle import BuildError, build_bundle, default_source
from .keys import generate_keypair, load_private_key, make_claims, sign
from .pki import DEFAULT_SAN, RESERVED, PkiError, make_pki, revoke

DEFAULT_PREFIX = "ttcs/v1"
FINAL = frozenset({"done", "rejected", "failed"})
WATCHED_KINDS = ("ack", "status", "heartbeat", "event")


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

    p = sub.add_parser("bundle", help="build a signed release bundle of the agent, for the update command",
                       description="A release of the agent and all its dependencies as wheels, with a manifest "
                                   "signed by a release key (docs/protocol.md, \"Release bundles\"). Prints the "
                                   "bundle's path, version, size and sha256 (the update command names the sha256).")
    p.add_argument("--key", required=True, help="the release key, a PEM file (not a command key)")
    p.add_argument("--kid", help="its key id (default: the key file's name)")
    p.add_argument("--source", metavar="DIR", help="the agent's source tree (default: this checkout)")
    p.add_argument("--version", metavar="V", help="release version, stamped into a copy of agent/__init__.py "
                                                  "(default: the source's own)")
    p.add_argument("--wheels", metavar="DIR", help="dependency wheels already built, used first (pip's "
                                                   "--find-links; with PIP_NO_INDEX=1 for an offline build)")
    p.add_argument("--out", metavar="FILE|DIR", default=".",
                   help="the bundle file (a name ending in .tar), or a directory for loa-agent-VERSION.tar "
                        "(default: .)")
    p.add_argument("--python", metavar="X.Y", help="the target's Python (default: this one; pip builds for it)")
    p.add_argument("--machine", metavar="M", help="the target's platform.machine() (default: this machine's)")

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
    for dev in [n for n in made if n not in RESERVED]:
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


# bundle

def cmd_bundle(args: argparse.Namespace) -> int:
    key_path = Path(args.key)
    kid = args.kid or key_path.stem
    here = {"python": f"{sys.version_info[0]}.{sys.version_info[1]}", "machine": platform.machine()}
    for what, mine in here.items():
        theirs = getattr(args, what)
        if theirs and theirs != mine:
            print(f"{PROG}: note: --{what} {theirs} labels wheels built for this {what}, {mine}", file=sys.stderr)
    try:
        path, sha256 = build_bundle(Path(args.source) if args.source else default_source(), Path(args.out),
                                    key_path, kid, version=args.version,
                                    wheels=Path(args.wheels) if args.wheels else None,
                                    python=args.python, machine=args.machine)
        # As a box will check it, with the public half of the key that signed it.
        manifest = open_bundle(path, {kid: load_private_key(key_path).public_key()})
    except FileNotFoundError as e:
        raise UsageError(f"no such file: {e.filename}") from None
    except (ValueError, TypeError) as e:
        raise UsageError(str(e)) from None
    except (BuildError, BundleError, OSError) as e:
        raise Failure(str(e)) from None
    print(f"bundle:  {path.resolve()}")
    print(f"version: {manifest.version} (Python {manifest.python}, {manifest.machine}; "
          f"{len(manifest.files)} wheels; signed by {kid})")
    print(f"size:    {path.stat().st_size} bytes")
    print(f"sha256:  {sha256}")
    return 0


# send / schedule

def _target(args: argparse.Namespace, kind: str) -> tuple[str, str]:
    to = args.to or os.environ.get("LOA_CONSOLE_TO")
    if not to:
        raise UsageError("--to is required: dev:ID, area:CODE or all")
    try:
        return to, topics.target(args.prefix, to, kind)
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
                broker.watch(topics.Topics(args.prefix, device).ack, lambda t, p, r: acks.put((t, p, r)))
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
    if args.device is not None and not topics.DEVICE_ID.fullmatch(args.device):
        raise UsageError(f"bad device id {args.device!r}")
    if args.count is not None and args.count <= 0:
        raise UsageError("--count must be positive")
    try:
        watched = topics.Topics(args.prefix, args.device or "+")
    except ValueError as e:
        raise UsageError(f"--prefix: {e}") from None
    messages: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
    topic_filter = f"{watched.base}/#"
    depth = watched.base.count("/") + 1  # PREFIX/dev/D/kind
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
    "bundle": cmd_bundle,
}


if __name__ == "__main__":
    sys.exit(main())
