"""`loa doctor`: one pass/warn/fail/skip line per check, with a hint for each failure.

It works with or without the daemon: it reads the config, the files and the state store (read-only),
connects to the broker under its own client id (so the running agent is not kicked off), and asks the
daemon about the devices it holds instead of opening them behind its back. Every check fails soft: an
exception inside one is that check's failure, and a check that hangs is cut off after CHECK_TIMEOUT_S.
Exit code: 0 nothing failed (warnings allowed), 1 a check failed, 2 the config itself is invalid.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import config
from .errors import ConfigError, DriverError, IpcError

if TYPE_CHECKING:
    from .store import Store

CHECK_TIMEOUT_S = 15.0  # a last resort: the slow checks have their own few-second limits inside
BROKER_TIMEOUT_S = 5.0
IPC_TIMEOUT_S = 5.0
CERT_WARN_DAYS = 30
DISK_WARN_MB = 500
CACHE_VERIFY_BYTES = 50 * 2**20  # hash everything below this; above, the most recently used files up to it
OUTBOX_WARN = 1000
SECRET_KEYS = ("mqtt.password_file:", "mqtt.tls.key:", "security.keys.")  # config problems about secret files


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # pass | warn | fail | skip
    detail: str
    hint: str = ""


def passed(detail: str) -> Check:
    return Check("", "pass", detail)


def warned(detail: str, hint: str = "") -> Check:
    return Check("", "warn", detail, hint)


def failed(detail: str, hint: str) -> Check:
    return Check("", "fail", detail, hint)


def skipped(detail: str) -> Check:
    return Check("", "skip", detail)


class Context:
    """What the checks share: the config (or its problems) and the daemon's status, asked once."""

    def __init__(self, path: str):
        self.path = path
        self.cfg: dict | None = None
        self.problems: list[str] = []
        self._asked = False
        self._status: dict | None = None
        self.daemon_error = "it did not answer"

    @property
    def state_dir(self) -> Path:
        assert self.cfg is not None
        return Path(self.cfg["paths"]["state_dir"])

    def daemon(self) -> dict | None:
        """The running agent's `status`, or None (then `daemon_error` says why)."""
        from .ipc import request

        assert self.cfg is not None
        if not self._asked:
            self._asked = True
            try:
                self._status = request(self.cfg["paths"]["socket"], "status", timeout=IPC_TIMEOUT_S)
            except IpcError as e:
                self.daemon_error = str(e)
        return self._status


CHECKS: list[tuple[str, Callable[[Context], Check], bool]] = []  # (name, function, needs a valid config)


def check(name: str, *, needs_config: bool = True) -> Callable:
    def register(fn: Callable[[Context], Check]) -> Callable[[Context], Check]:
        CHECKS.append((name, fn, needs_config))
        return fn
    return register


@contextmanager
def _open_store(ctx: Context) -> Iterator[Store | None]:
    """The state store, read-only; None when the agent never ran (opening would fail, not create it)."""
    from .store import DB_NAME, Store

    if not (ctx.state_dir / DB_NAME).exists():
        yield None
        return
    store = Store(ctx.state_dir, readonly=True)
    try:
        yield store
    finally:
        store.close()


def _existing(path: Path) -> Path:
    """The path itself or its nearest existing parent (what the agent would create it in)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


# --- the checks, in the order they print -------------------------------------------------------------------

@check("config", needs_config=False)
def check_config(ctx: Context) -> Check:
    try:
        ctx.cfg = config.load(ctx.path)
    except ConfigError as e:
        ctx.problems = e.problems
        return failed(f"{ctx.path}: {len(e.problems)} problem(s)\n" + "\n".join(e.problems),
                      "fix each line above, then run `loa config check`")
    return passed(f"{ctx.path} is valid")


@check("secrets", needs_config=False)
def check_secrets(ctx: Context) -> Check:
    hint = "a secret must be a regular file readable by the agent's user alone: chmod 600 FILE"
    if ctx.cfg is None:  # config.load refuses unsafe secrets itself: repeat those problems here
        bad = [p for p in ctx.problems if p.startswith(SECRET_KEYS)]
        return failed("\n".join(bad), hint) if bad else skipped("config invalid")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    mq = ctx.cfg["mqtt"]
    problems, fine = [], []
    secrets = {"mqtt.password_file": mq.get("password_file"), "mqtt.tls.key": (mq.get("tls") or {}).get("key")}
    for key, path in secrets.items():
        if not path:
            continue
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError as e:
            problems.append(f"{key}: cannot read {path}: {e.strerror}")
            continue
        if mode & 0o077:
            problems.append(f"{key}: {path} is readable by group or others (mode {mode:04o}); chmod 600 {path}")
        elif not os.access(path, os.R_OK):
            problems.append(f"{key}: cannot read {path}: permission denied")
        else:
            fine.append(f"{key} {mode:04o}")
    for kid, path in ctx.cfg["security"]["keys"].items():
        try:
            if not isinstance(load_pem_public_key(Path(path).read_bytes()), Ed25519PublicKey):
                problems.append(f"security.keys.{kid}: {path} is not an Ed25519 public key")
        except (OSError, ValueError) as e:
            problems.append(f"security.keys.{kid}: cannot load {path}: {getattr(e, 'strerror', None) or e}")
    if problems:
        return failed("\n".join(problems), hint + "; security.keys are the province's Ed25519 public keys (PEM)")
    keys = len(ctx.cfg["security"]["keys"])
    fine.append(f"{keys} provincial public key(s) load" if keys else "no provincial public keys")
    return passed(", ".join(fine))


@check("broker")
def check_broker(ctx: Context) -> Check:
    import ssl

    from .mqttclient import AUTH_FAILURES, new_client, set_credentials

    assert ctx.cfg is not None
    mq, tls = ctx.cfg["mqtt"], ctx.cfg["mqtt"].get("tls")
    where = f"{mq['host']}:{mq['port']}"
    # The link's client, but with its own id: reusing the device's would disconnect the daemon.
    try:
        client = new_client(f"{ctx.cfg['device']['id']}-doctor", mq, connect_timeout=BROKER_TIMEOUT_S)
    except (OSError, ValueError) as e:  # ssl.SSLError is an OSError: a key not matching its cert, a bad PEM
        return failed(f"cannot load mqtt.tls files: {e}", "check mqtt.tls.ca, mqtt.tls.cert and mqtt.tls.key")
    try:
        set_credentials(client, mq)
    except OSError as e:
        return failed(f"cannot read mqtt.password_file: {e.strerror}", "see the secrets check")
    answered = threading.Event()
    outcome: dict[str, Any] = {}

    def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        outcome.setdefault("connack", reason)
        answered.set()

    def on_disconnect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        outcome.setdefault("closed", reason)
        answered.set()

    client.on_connect, client.on_disconnect = on_connect, on_disconnect
    tls_hint = ("check mqtt.tls.ca (the CA that signed the broker's certificate), that the broker's certificate "
                "names mqtt.host, and the clock")
    try:
        client.connect(mq["host"], mq["port"], keepalive=30, clean_start=True)
    except ssl.SSLError as e:
        return failed(f"TLS with {where} failed: {e}", tls_hint)
    except OSError as e:
        return failed(f"cannot reach {where}: {e.strerror or e}",
                      "is the broker up? check mqtt.host, mqtt.port, the network and the firewall")
    client.loop_start()
    try:
        if not answered.wait(BROKER_TIMEOUT_S):
            return failed(f"{where}: no answer to CONNECT within {BROKER_TIMEOUT_S:g} s",
                          "the port answers but no MQTT broker replies: check mqtt.port and mqtt.tls")
    finally:
        client.disconnect()
        client.loop_stop()
    reason = outcome.get("connack")
    if reason is None:
        return failed(f"{where} closed the connection before accepting it ({outcome.get('closed')})",
                      "check the client certificate (mqtt.tls.cert, mqtt.tls.key) and the broker's TLS settings"
                      if tls else "the broker's log says why")
    if reason.is_failure:
        hint = "check mqtt.username and mqtt.password_file" + (" and the client certificate" if tls else "") \
            if reason.value in AUTH_FAILURES else "the broker's log says why"
        return failed(f"{where} refused: {reason}", hint)
    return passed(f"{where} accepted us (MQTT 5, {'TLS' if tls else 'plain'})")


@check("certificates")
def check_certificates(ctx: Context) -> Check:
    from cryptography import x509

    assert ctx.cfg is not None
    tls = ctx.cfg["mqtt"].get("tls")
    if not tls:
        return skipped("no TLS configured (mqtt.tls)")
    now = datetime.now(UTC)
    verdicts = []
    for key in ("cert", "ca"):
        if not tls.get(key):
            continue
        try:
            certs = x509.load_pem_x509_certificates(Path(tls[key]).read_bytes())
        except (OSError, ValueError) as e:
            verdicts.append(failed(f"mqtt.tls.{key}: no PEM certificate in {tls[key]}: {e}", ""))
            continue
        if len(certs) > 1:  # a bundle (e.g. the system's): old roots in it harm nothing; the broker check
            valid = sum(c.not_valid_before_utc <= now <= c.not_valid_after_utc for c in certs)  # tries the chain
            verdicts.append(Check("", "pass" if valid else "fail",
                                  f"mqtt.tls.{key}: a bundle of {len(certs)} certificates, {valid} valid now"))
            continue
        status, text = _cert_verdict(certs[0], now)
        verdicts.append(Check("", status, f"mqtt.tls.{key} {text}"))
    status = max((v.status for v in verdicts), key=("pass", "warn", "fail").index)
    hint = "renew the certificate from the provincial CA (if 'not valid before' looks wrong, check the clock)" \
        if status != "pass" else ""
    return Check("", status, "; ".join(v.detail for v in verdicts), hint)


def _cert_verdict(cert: Any, now: datetime) -> tuple[str, str]:
    from cryptography.x509.oid import NameOID

    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    who = f"CN={names[0].value}" if names else cert.subject.rfc4514_string() or "(no subject)"
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    days = (end - now).total_seconds() / 86400
    if now < start:
        return "fail", f"{who}: not valid before {start:%Y-%m-%d %H:%M} UTC"
    if days < 0:
        return "fail", f"{who}: expired on {end:%Y-%m-%d}"
    if days < CERT_WARN_DAYS:
        return "warn", f"{who}: expires in {int(days)} day(s), on {end:%Y-%m-%d}"
    return "pass", f"{who}: valid until {end:%Y-%m-%d} ({int(days)} days)"


@check("clock")
def check_clock(ctx: Context) -> Check:
    from .health import Health
    from .timeutil import rfc3339

    assert ctx.cfg is not None
    now = time.time()
    with _open_store(ctx) as store:
        floor = store.time_floor() if store else 0
    # The floor is the newest `iat` of a verified message; the scheduler allows the same skew before it stops.
    if now < floor - ctx.cfg["security"]["max_clock_skew_s"]:
        return failed(f"{rfc3339(now)} is before the newest signed message seen ({rfc3339(floor)})",
                      "the clock is wrong: enable NTP (timedatectl set-ntp true) and check the network")
    synced = Health(str(ctx.state_dir)).clock_synced()
    if synced is None:
        return warned(f"{rfc3339(now)}; cannot tell whether it is synchronised (adjtimex unavailable)",
                      "check `timedatectl status`")
    if not synced:  # a box with a good RTC runs fine offline; the time floor above is what must hold
        return warned(f"{rfc3339(now)}; the kernel says the clock is not synchronised",
                      "enable NTP (timedatectl set-ntp true, systemd-timesyncd) and check that a time server "
                      "is reachable: schedules and signed messages depend on the time")
    return passed(f"{rfc3339(now)}, synchronised")


@check("audio")
def check_audio(ctx: Context) -> Check:
    assert ctx.cfg is not None
    audio = ctx.cfg["audio"]
    if audio["backend"] == "null":
        return passed("no audio (null backend)")
    hint = "check audio.device (`aplay -L` lists ALSA devices), the sound card, and that nothing else holds it"
    st = ctx.daemon()
    if st is not None:  # the agent keeps the device open: opening it again could fail or steal it
        fault = next((f for f in st["faults"] if f["code"] == "audio_device"), None)
        if fault:
            return failed(f"the agent reports: {fault['message']}", hint)
        return passed(f"{audio['device']!r} held by the running agent ({audio['backend']}), no audio fault")
    from drivers.audio.portaudio import probe

    try:
        probe(audio["device"])
    except OSError as e:
        return failed(f"cannot open {audio['device']!r}: {e}", hint)
    return passed(f"{audio['device']!r} opens (PortAudio, for the {audio['backend']} backend)")


@check("gpio")
def check_gpio(ctx: Context) -> Check:
    assert ctx.cfg is not None
    users: dict[int, list[str]] = {}
    for z in ctx.cfg["zones"]:
        users.setdefault(z["relay_pin"], []).append(f"zone {z['name']} relay")
        if z.get("feedback_pin") is not None:
            users.setdefault(z["feedback_pin"], []).append(f"zone {z['name']} feedback")
    for s in ctx.cfg.get("sensors", []):
        users.setdefault(s["pin"], []).append(f"sensor {s['name']}")
    twice = [f"pin {pin} is used by {' and '.join(who)}" for pin, who in sorted(users.items()) if len(who) > 1]
    if twice:
        return failed("; ".join(twice), "give each relay, feedback input and sensor its own pin "
                                        "(zones[].relay_pin, zones[].feedback_pin, sensors[].pin)")
    pins = ", ".join(f"{w} {pin}" for pin, who in sorted(users.items()) for w in who)
    gpio = ctx.cfg["gpio"]
    if gpio["backend"] == "sim":
        return passed(f"simulated (sim backend); {pins}")
    group_hint = "add the agent's user to the gpio group"
    if gpio["backend"] == "gpiod":
        try:
            os.close(os.open(gpio["chip"], os.O_RDWR | os.O_CLOEXEC))
        except OSError as e:
            return failed(f"cannot open {gpio['chip']}: {e.strerror}",
                          f"check gpio.chip (ls /dev/gpiochip*); {group_hint}")
        return passed(f"{gpio['chip']} opens; {pins}")
    mem = Path("/dev/gpiomem")  # rpigpio
    if not mem.exists():
        return failed(f"no {mem}: not a Raspberry Pi?", "on other boards use gpio.backend: gpiod")
    if not os.access(mem, os.R_OK | os.W_OK):
        return failed(f"{mem}: permission denied", group_hint)
    return passed(f"{mem} is there; {pins}")


def _has_display(ctx: Context) -> bool:
    assert ctx.cfg is not None
    return "display" in ctx.cfg["device"]["capabilities"]


@check("display")
def check_display(ctx: Context) -> Check:
    assert ctx.cfg is not None
    if not _has_display(ctx):
        return skipped("no display capability (device.capabilities)")
    disp = ctx.cfg["display"]
    backend = disp["backend"]
    if backend == "none":
        return passed("no display backend (none)")
    if backend == "png":
        where = _existing(Path(disp["png_dir"]))
        if not os.access(where, os.W_OK | os.X_OK):
            return failed(f"{where} is not writable", "fix display.png_dir or its owner")
        return passed(f"{disp['png_dir']} writable (png backend)")
    if backend == "framebuffer":
        from drivers.display.framebuffer import Backend  # reads the geometry from sysfs as the agent will

        fb = Backend(disp)  # DriverError (this check's failure) names the sysfs node when there is no geometry
        if not os.access(fb.device, os.W_OK):
            return failed(f"{fb.device}: cannot write (missing or permission denied)",
                          "check display.fb_device (ls /dev/fb*); add the agent's user to the video group")
        return passed(f"{fb.device}: {fb.panel[0]}x{fb.panel[1]}, {fb.bpp} bpp")
    from drivers.audio.vlc import libvlc_version

    try:
        version = libvlc_version()
    except DriverError as e:
        return failed(str(e), "apt install vlc-bin vlc-plugin-base")
    return passed(f"libVLC {version} loads")


@check("fonts")
def check_fonts(ctx: Context) -> Check:
    assert ctx.cfg is not None
    if not _has_display(ctx):
        return skipped("no display capability (device.capabilities)")
    from drivers.display.fonts import FontError, find

    try:
        regular, bold = find(ctx.cfg["display"]["fonts"]), find(ctx.cfg["display"]["fonts"], bold=True)
    except FontError as e:
        return failed(str(e), "apt install fonts-noto-core (or fonts-dejavu-core), or name a font in display.fonts")
    return passed(f"Vietnamese glyphs in {regular.name} and {bold.name}")


@check("disk")
def check_disk(ctx: Context) -> Check:
    assert ctx.cfg is not None
    from .health import Health

    where = _existing(ctx.state_dir)
    free_mb = Health(str(where)).disk_free_mb()
    if free_mb is None:
        return failed(f"cannot read the free space of {where}", "check that the state directory's disk is mounted")
    low = ctx.cfg.get("health", {}).get("disk_low_mb", 200.0)
    detail = f"{free_mb:.0f} MB free on {where}"
    hint = "free some space: `loa cache purge`, old logs (journalctl --vacuum-size=50M)"
    if free_mb < low:
        return failed(f"{detail}, under health.disk_low_mb ({low:g} MB)", hint)
    if free_mb < DISK_WARN_MB:
        return warned(f"{detail}, under {DISK_WARN_MB} MB", hint)
    return passed(detail)


@check("cache")
def check_cache(ctx: Context) -> Check:
    from .media import MediaCache, sha256_file

    cache = MediaCache(ctx.state_dir / "cache")
    if not cache.dir.is_dir():
        return passed("empty (no cache directory yet)")
    files = cache.entries()[::-1]  # most recently used first: what plays next matters most
    total = sum(size for _, size, _ in files)
    budget, verified, bad = CACHE_VERIFY_BYTES, 0, []
    for digest, size, _ in files:
        p = cache.dir / digest
        if total > CACHE_VERIFY_BYTES and size > budget:
            continue
        budget -= size
        try:
            if sha256_file(p) != p.name:
                bad.append(str(p))
        except FileNotFoundError:  # evicted meanwhile by the running agent
            continue
        verified += 1
    detail = f"{len(files)} file(s), {total / 2**20:.1f} MB, {verified} verified"
    if bad:
        return failed(f"{detail}; content does not match its name: {', '.join(bad)}",
                      "delete the named file(s): a corrupt file never plays, and the agent fetches it again")
    return passed(detail)


@check("outbox")
def check_outbox(ctx: Context) -> Check:
    with _open_store(ctx) as store:
        if store is None:
            return skipped("agent never ran (no state database yet)")
        count = store.outbox_count()
    if count > OUTBOX_WARN:
        return warned(f"{count} message(s) waiting for the broker",
                      "the box has not delivered for a while: see the broker check and `loa status`")
    return passed(f"{count} message(s) waiting for the broker")


@check("schedule")
def check_schedule(ctx: Context) -> Check:
    from .errors import SchemaError
    from .schedule import Schedule

    with _open_store(ctx) as store:
        if store is None:
            return skipped("agent never ran (no state database yet)")
        docs = store.get_json("schedule_docs", {})
    if not docs:
        return warned("no schedule received yet", "the province has not sent one to this box's topics "
                                                  "(its device id or its areas)")
    try:
        items = len(Schedule(docs).items)
    except SchemaError as e:
        return failed(f"the stored schedule does not compile: {e}", "ask the province to send it again")
    versions = ", ".join(f"{'device' if '/dev/' in t else 'area ' + t.split('/')[-2]} v{d.get('version')}"
                         for t, d in sorted(docs.items()))
    return passed(f"{items} item(s); {versions}")


@check("daemon")
def check_daemon(ctx: Context) -> Check:
    st = ctx.daemon()
    if st is None:
        return warned(ctx.daemon_error, "the other checks ran without it; start it with "
                                        "`systemctl start loa-agent`")
    link = f"connected to {st['broker']}" if st["connected"] else \
        f"NOT connected to {st['broker']} ({st['link_error'] or 'no answer yet'})"
    faults = ", ".join(f"{f['code']} ({f['message']})" for f in st["faults"])
    detail = f"running {st['agent_version']}, {link}; faults: {faults or 'none'}"
    if faults or not st["connected"]:
        return warned(detail, "see `loa status` and `loa logs`")
    return passed(detail)


# --- running and printing ------------------------------------------------------------------------------------

def _run_one(name: str, fn: Callable[[Context], Check], ctx: Context) -> Check:
    box: list[Check] = []

    def target() -> None:
        try:
            box.append(fn(ctx))
        except Exception as e:  # a broken check is that check's failure, never the doctor's crash
            box.append(failed(f"{type(e).__name__}: {e}", "an unexpected error inside this check"))

    # A daemon thread: a check stuck in a driver call cannot keep the doctor from answering (or exiting).
    worker = threading.Thread(target=target, name=f"doctor-{name}", daemon=True)
    worker.start()
    worker.join(CHECK_TIMEOUT_S)
    if not box:
        return Check(name, "fail", f"no result within {CHECK_TIMEOUT_S:g} s", "something hangs here")
    return replace(box[0], name=name)


def run(path: str) -> list[Check]:
    ctx = Context(path)
    return [_run_one(name, fn, ctx) if ctx.cfg is not None or not needs_config
            else Check(name, "skip", "config invalid") for name, fn, needs_config in CHECKS]


def exit_code(checks: list[Check]) -> int:
    if any(c.name == "config" and c.status == "fail" for c in checks):
        return 2
    return 1 if any(c.status == "fail" for c in checks) else 0


def human(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks) + 1
    out = []
    for c in checks:
        first, *more = c.detail.splitlines() or [""]
        hint = f"hint: {c.hint}" if c.hint and c.status in ("fail", "warn") else ""
        if hint and not more:
            first, hint = f"{first} — {hint}", ""
        out.append(f"{c.status.upper():<5} {c.name:<{width}} {first}")
        out += [f"{'':<{6 + width}} {line}" for line in [*more, *([hint] if hint else [])]]
    counts = {s: sum(c.status == s for c in checks) for s in ("pass", "warn", "fail", "skip")}
    out.append(f"{counts['pass']} passed, {counts['warn']} warning(s), {counts['fail']} failed, "
               f"{counts['skip']} skipped")
    return "\n".join(out)


def cli(args: argparse.Namespace, path: str) -> int:
    checks = run(path)
    if args.json:
        print(json.dumps({"ok": not any(c.status == "fail" for c in checks), "checks": [asdict(c) for c in checks]},
                         ensure_ascii=False, indent=2))
    else:
        print(human(checks))
    return exit_code(checks)
