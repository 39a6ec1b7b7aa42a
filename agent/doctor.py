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
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import config
from .errors import ConfigError, DriverError, IpcError
from .i18n import C_, Lines, Msg, Size, Time

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
        self.daemon_error: str = Msg("it did not answer")

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
                self.daemon_error = e.args[0] if e.args else str(e)
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

@check(C_("doctor check", "config"), needs_config=False)
def check_config(ctx: Context) -> Check:
    try:
        ctx.cfg = config.load(ctx.path)
    except ConfigError as e:
        ctx.problems = e.problems
        return failed(Lines([Msg("%(path)s: %(n)d problem(s)", path=ctx.path, n=len(e.problems)), *e.problems]),
                      Msg("fix each line above, then run `loa config check`"))
    return passed(Msg("%(path)s is valid", path=ctx.path))


@check(C_("doctor check", "secrets"), needs_config=False)
def check_secrets(ctx: Context) -> Check:
    hint = Msg("a secret must be a regular file readable by the agent's user alone: chmod 600 FILE")
    if ctx.cfg is None:  # config.load refuses unsafe secrets itself: repeat those problems here
        bad = [p for p in ctx.problems if p.startswith(SECRET_KEYS)]
        return failed(Lines(bad), hint) if bad else skipped(Msg("config invalid"))
    from .jws import load_public_key  # the daemon's own loader: what passes here, the daemon loads

    mq = ctx.cfg["mqtt"]
    problems, fine = [], []
    secrets = {"mqtt.password_file": mq.get("password_file"), "mqtt.tls.key": (mq.get("tls") or {}).get("key")}
    for key, path in secrets.items():
        if not path:
            continue
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError as e:
            problems.append(Msg("%(key)s: cannot read %(path)s: %(error)s", key=key, path=path, error=e.strerror))
            continue
        if mode & 0o077:
            problems.append(Msg("%(key)s: %(path)s is readable by group or others (mode %(mode)s); chmod 600 "
                                "%(path)s", key=key, path=path, mode=format(mode, "04o")))
        elif not os.access(path, os.R_OK):
            problems.append(Msg("%(key)s: cannot read %(path)s: permission denied", key=key, path=path))
        else:
            fine.append(f"{key} {mode:04o}")
    for kid, path in ctx.cfg["security"]["keys"].items():
        try:
            load_public_key(Path(path).read_bytes())
        except (OSError, ValueError) as e:
            problems.append(Msg("security.keys.%(kid)s: cannot load %(path)s: %(error)s", kid=kid, path=path,
                                error=getattr(e, "strerror", None) or str(e)))
    if problems:
        return failed(Lines(problems),
                      Msg("%(hint)s; security.keys are the province's Ed25519 public keys (PEM)", hint=hint))
    keys = len(ctx.cfg["security"]["keys"])
    keys_text = Msg("%(n)d provincial public key(s) load", n=keys) if keys else Msg("no provincial public keys")
    return passed(Msg("%(files)s%(keys)s", files=", ".join(fine) + ", " if fine else "", keys=keys_text))


@check(C_("doctor check", "broker"))
def check_broker(ctx: Context) -> Check:
    """Every broker of mqtt.hosts: all answer (pass), some do (warn: the box fails over), none does (fail)."""
    assert ctx.cfg is not None
    results = [_check_broker(ctx, h["host"], h["port"]) for h in ctx.cfg["mqtt"]["hosts"]]
    if len(results) == 1:
        return results[0]
    detail = Lines([r.detail for r in results], sep="; ")
    ok = [r for r in results if r.status == "pass"]
    if len(ok) == len(results):
        return passed(detail)
    hint = next(r.hint for r in results if r.status != "pass")
    return warned(detail, hint) if ok else failed(detail, hint)


def _check_broker(ctx: Context, host: str, port: int) -> Check:
    import ssl

    from .mqttclient import AUTH_FAILURES, new_client, set_credentials

    assert ctx.cfg is not None
    mq, tls = ctx.cfg["mqtt"], ctx.cfg["mqtt"].get("tls")
    where = f"{host}:{port}"
    # The link's client, but with its own id: reusing the device's would disconnect the daemon.
    try:
        client = new_client(f"{ctx.cfg['device']['id']}-doctor", mq, connect_timeout=BROKER_TIMEOUT_S)
    except (OSError, ValueError) as e:  # ssl.SSLError is an OSError: a key not matching its cert, a bad PEM
        return failed(Msg("cannot load mqtt.tls files: %(error)s", error=str(e)),
                      Msg("check mqtt.tls.ca, mqtt.tls.cert and mqtt.tls.key"))
    try:
        set_credentials(client, mq)
    except OSError as e:
        return failed(Msg("cannot read mqtt.password_file: %(error)s", error=e.strerror), Msg("see the secrets check"))
    answered = threading.Event()
    outcome: dict[str, Any] = {}

    def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        outcome.setdefault("connack", reason)
        answered.set()

    def on_disconnect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        outcome.setdefault("closed", reason)
        answered.set()

    client.on_connect, client.on_disconnect = on_connect, on_disconnect
    tls_hint = Msg("check mqtt.tls.ca (the CA that signed the broker's certificate), that the broker's certificate "
                   "names mqtt.host, and the clock")
    try:
        client.connect(host, port, keepalive=30, clean_start=True)
    except ssl.SSLError as e:
        return failed(Msg("TLS with %(where)s failed: %(error)s", where=where, error=str(e)), tls_hint)
    except OSError as e:
        return failed(Msg("cannot reach %(where)s: %(error)s", where=where, error=e.strerror or str(e)),
                      Msg("is the broker up? check mqtt.host, mqtt.port, the network and the firewall"))
    client.loop_start()
    try:
        if not answered.wait(BROKER_TIMEOUT_S):
            return failed(Msg("%(where)s: no answer to CONNECT within %(s)g s", where=where, s=BROKER_TIMEOUT_S),
                          Msg("the port answers but no MQTT broker replies: check mqtt.port and mqtt.tls"))
    finally:
        client.disconnect()
        client.loop_stop()
    reason = outcome.get("connack")
    if reason is None:
        return failed(Msg("%(where)s closed the connection before accepting it (%(reason)s)", where=where,
                          reason=str(outcome.get("closed"))),
                      Msg("check the client certificate (mqtt.tls.cert, mqtt.tls.key) and the broker's TLS settings")
                      if tls else Msg("the broker's log says why"))
    if reason.is_failure:
        hint = (Msg("check mqtt.username and mqtt.password_file and the client certificate") if tls else
                Msg("check mqtt.username and mqtt.password_file")) if reason.value in AUTH_FAILURES else \
            Msg("the broker's log says why")
        return failed(Msg("%(where)s refused: %(reason)s", where=where, reason=str(reason)), hint)
    return passed(Msg("%(where)s accepted us (MQTT %(protocol)s, TLS)", where=where, protocol=mq["protocol"]) if tls
                  else Msg("%(where)s accepted us (MQTT %(protocol)s, plain)", where=where, protocol=mq["protocol"]))


@check(C_("doctor check", "certificates"))
def check_certificates(ctx: Context) -> Check:
    from cryptography import x509

    assert ctx.cfg is not None
    tls = ctx.cfg["mqtt"].get("tls")
    if not tls:
        return skipped(Msg("no TLS configured (mqtt.tls)"))
    now = datetime.now(UTC)
    verdicts = []
    for key in ("cert", "ca"):
        if not tls.get(key):
            continue
        try:
            certs = x509.load_pem_x509_certificates(Path(tls[key]).read_bytes())
        except (OSError, ValueError) as e:
            verdicts.append(failed(Msg("mqtt.tls.%(key)s: no PEM certificate in %(path)s: %(error)s", key=key,
                                       path=tls[key], error=str(e)), ""))
            continue
        if len(certs) > 1:  # a bundle (e.g. the system's): old roots in it harm nothing; the broker check
            valid = sum(c.not_valid_before_utc <= now <= c.not_valid_after_utc for c in certs)  # tries the chain
            verdicts.append(Check("", "pass" if valid else "fail",
                                  Msg("mqtt.tls.%(key)s: a bundle of %(n)d certificates, %(valid)d valid now",
                                      key=key, n=len(certs), valid=valid)))
            continue
        status, text = _cert_verdict(certs[0], now)
        verdicts.append(Check("", status, Msg("mqtt.tls.%(key)s %(verdict)s", key=key, verdict=text)))
    status = max((v.status for v in verdicts), key=("pass", "warn", "fail").index)
    hint = Msg("renew the certificate from the provincial CA (if 'not valid before' looks wrong, check the clock)") \
        if status != "pass" else ""
    return Check("", status, Lines([v.detail for v in verdicts], sep="; "), hint)


def _cert_verdict(cert: Any, now: datetime) -> tuple[str, Msg]:
    from cryptography.x509.oid import NameOID

    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    who = f"CN={names[0].value}" if names else cert.subject.rfc4514_string() or "(no subject)"
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    days = (end - now).total_seconds() / 86400
    end_day = end.strftime("%Y-%m-%d")
    if now < start:
        return "fail", Msg("%(who)s: not valid before %(start)s UTC", who=who, start=start.strftime("%Y-%m-%d %H:%M"))
    if days < 0:
        return "fail", Msg("%(who)s: expired on %(end)s", who=who, end=end_day)
    if days < CERT_WARN_DAYS:
        return "warn", Msg("%(who)s: expires in %(days)d day(s), on %(end)s", who=who, days=int(days),
                           end=end_day)
    return "pass", Msg("%(who)s: valid until %(end)s (%(days)d days)", who=who, end=end_day, days=int(days))


@check(C_("doctor check", "clock"))
def check_clock(ctx: Context) -> Check:
    from .health import Health

    assert ctx.cfg is not None
    now, tz = time.time(), ctx.cfg["device"]["tz"]
    with _open_store(ctx) as store:
        floor = store.time_floor() if store else 0
    # The floor is the newest `iat` of a verified message; the scheduler allows the same skew before it stops.
    if now < floor - ctx.cfg["security"]["max_clock_skew_s"]:
        return failed(Msg("%(now)s is before the newest signed message seen (%(floor)s)", now=Time(now, tz),
                          floor=Time(floor, tz)),
                      Msg("the clock is wrong: enable NTP (timedatectl set-ntp true) and check the network"))
    synced = Health(str(ctx.state_dir)).clock_synced()
    if synced is None:
        return warned(Msg("%(now)s; cannot tell whether it is synchronised (adjtimex unavailable)",
                          now=Time(now, tz)), Msg("check `timedatectl status`"))
    if not synced:  # a box with a good RTC runs fine offline; the time floor above is what must hold
        return warned(Msg("%(now)s; the kernel says the clock is not synchronised", now=Time(now, tz)),
                      Msg("enable NTP (timedatectl set-ntp true, systemd-timesyncd) and check that a time server "
                          "is reachable: schedules and signed messages depend on the time"))
    return passed(Msg("%(now)s, synchronised", now=Time(now, tz)))


@check(C_("doctor check", "audio"))
def check_audio(ctx: Context) -> Check:
    assert ctx.cfg is not None
    audio = ctx.cfg["audio"]
    if audio["backend"] == "null":
        return passed(Msg("no audio (null backend)"))
    hint = Msg("check audio.device (`aplay -L` lists ALSA devices), the sound card, and that nothing else holds it")
    st = ctx.daemon()
    if st is not None:  # the agent keeps the device open: opening it again could fail or steal it
        fault = next((f for f in st["faults"] if f["code"] == "audio_device"), None)
        if fault:
            return failed(Msg("the agent reports: %(fault)s", fault=fault["message"]), hint)
        return passed(Msg("%(device)r held by the running agent (%(backend)s), no audio fault",
                          device=audio["device"], backend=audio["backend"]))
    from drivers.audio.portaudio import probe

    try:
        probe(audio["device"])
    except OSError as e:
        return failed(Msg("cannot open %(device)r: %(error)s", device=audio["device"], error=str(e)), hint)
    return passed(Msg("%(device)r opens (PortAudio, for the %(backend)s backend)", device=audio["device"],
                      backend=audio["backend"]))


@check(C_("doctor check", "gpio"))
def check_gpio(ctx: Context) -> Check:
    assert ctx.cfg is not None
    users: dict[int, list[str]] = {}
    for z in ctx.cfg["zones"]:
        users.setdefault(z["relay_pin"], []).append(Msg("zone %(zone)s relay", zone=z["name"]))
        if z.get("feedback_pin") is not None:
            users.setdefault(z["feedback_pin"], []).append(Msg("zone %(zone)s feedback", zone=z["name"]))
    for s in ctx.cfg.get("sensors", []):
        users.setdefault(s["pin"], []).append(Msg("sensor %(name)s", name=s["name"]))
    twice = [Msg("pin %(pin)s is used by %(users)s", pin=pin, users=Lines(who, sep=" + "))
             for pin, who in sorted(users.items()) if len(who) > 1]
    if twice:
        return failed(Lines(twice, sep="; "), Msg("give each relay, feedback input and sensor its own pin "
                                                  "(zones[].relay_pin, zones[].feedback_pin, sensors[].pin)"))
    pins = Lines([Msg("%(user)s %(pin)s", user=w, pin=pin) for pin, who in sorted(users.items()) for w in who],
                 sep=", ")
    gpio = ctx.cfg["gpio"]
    if gpio["backend"] == "sim":
        return passed(Msg("simulated (sim backend); %(pins)s", pins=pins))
    group_hint = Msg("add the agent's user to the gpio group")
    if gpio["backend"] == "gpiod":
        try:
            os.close(os.open(gpio["chip"], os.O_RDWR | os.O_CLOEXEC))
        except OSError as e:
            return failed(Msg("cannot open %(chip)s: %(error)s", chip=gpio["chip"], error=e.strerror),
                          Msg("check gpio.chip (ls /dev/gpiochip*); %(hint)s", hint=group_hint))
        return passed(Msg("%(chip)s opens; %(pins)s", chip=gpio["chip"], pins=pins))
    mem = Path("/dev/gpiomem")  # rpigpio
    if not mem.exists():
        return failed(Msg("no %(path)s: not a Raspberry Pi?", path=str(mem)),
                      Msg("on other boards use gpio.backend: gpiod"))
    if not os.access(mem, os.R_OK | os.W_OK):
        return failed(Msg("%(path)s: permission denied", path=str(mem)), group_hint)
    return passed(Msg("%(path)s is there; %(pins)s", path=str(mem), pins=pins))


def _has_display(ctx: Context) -> bool:
    assert ctx.cfg is not None
    return "display" in ctx.cfg["device"]["capabilities"]


@check(C_("doctor check", "display"))
def check_display(ctx: Context) -> Check:
    assert ctx.cfg is not None
    if not _has_display(ctx):
        return skipped(Msg("no display capability (device.capabilities)"))
    disp = ctx.cfg["display"]
    backend = disp["backend"]
    if backend == "none":
        return passed(Msg("no display backend (none)"))
    if backend == "png":
        where = _existing(Path(disp["png_dir"]))
        if not os.access(where, os.W_OK | os.X_OK):
            return failed(Msg("%(path)s is not writable", path=str(where)), Msg("fix display.png_dir or its owner"))
        return passed(Msg("%(path)s writable (png backend)", path=disp["png_dir"]))
    if backend == "framebuffer":
        from drivers.display.framebuffer import Backend  # reads the geometry from sysfs as the agent will

        fb = Backend(disp)  # DriverError (this check's failure) names the sysfs node when there is no geometry
        if not os.access(fb.device, os.W_OK):
            return failed(Msg("%(path)s: cannot write (missing or permission denied)", path=fb.device),
                          Msg("check display.fb_device (ls /dev/fb*); add the agent's user to the video group"))
        return passed(f"{fb.device}: {fb.panel[0]}x{fb.panel[1]}, {fb.bpp} bpp")
    from drivers.audio.vlc import libvlc_version

    try:
        version = libvlc_version()
    except DriverError as e:
        return failed(str(e), "apt install vlc-bin vlc-plugin-base")
    return passed(Msg("libVLC %(version)s loads", version=version))


@check(C_("doctor check", "fonts"))
def check_fonts(ctx: Context) -> Check:
    assert ctx.cfg is not None
    if not _has_display(ctx):
        return skipped(Msg("no display capability (device.capabilities)"))
    from drivers.display.fonts import FontError, find

    try:
        regular, bold = find(ctx.cfg["display"]["fonts"]), find(ctx.cfg["display"]["fonts"], bold=True)
    except FontError as e:
        return failed(str(e), Msg("apt install fonts-noto-core (or fonts-dejavu-core), or name a font in "
                                  "display.fonts"))
    return passed(Msg("Vietnamese glyphs in %(regular)s and %(bold)s", regular=regular.name, bold=bold.name))


@check(C_("doctor check", "disk"))
def check_disk(ctx: Context) -> Check:
    assert ctx.cfg is not None
    from .health import Health

    where = _existing(ctx.state_dir)
    free_mb = Health(str(where)).disk_free_mb()
    if free_mb is None:
        return failed(Msg("cannot read the free space of %(path)s", path=str(where)),
                      Msg("check that the state directory's disk is mounted"))
    low = ctx.cfg.get("health", {}).get("disk_low_mb", 200.0)
    detail = Msg("%(free)s free on %(path)s", free=Size(free_mb * 2**20), path=str(where))
    hint = Msg("free some space: `loa cache purge`, old logs (journalctl --vacuum-size=50M)")
    if free_mb < low:
        return failed(Msg("%(detail)s, under health.disk_low_mb (%(low)g MB)", detail=detail, low=low), hint)
    if free_mb < DISK_WARN_MB:
        return warned(Msg("%(detail)s, under %(low)g MB", detail=detail, low=DISK_WARN_MB), hint)
    return passed(detail)


@check(C_("doctor check", "cache"))
def check_cache(ctx: Context) -> Check:
    from .media import MediaCache, sha256_file

    cache = MediaCache(ctx.state_dir / "cache")
    if not cache.dir.is_dir():
        return passed(Msg("empty (no cache directory yet)"))
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
    detail = Msg("%(n)d file(s), %(size)s, %(verified)d verified", n=len(files), size=Size(total), verified=verified)
    if bad:
        return failed(Msg("%(detail)s; content does not match its name: %(files)s", detail=detail,
                          files=", ".join(bad)),
                      Msg("delete the named file(s): a corrupt file never plays, and the agent fetches it again"))
    return passed(detail)


@check(C_("doctor check", "outbox"))
def check_outbox(ctx: Context) -> Check:
    with _open_store(ctx) as store:
        if store is None:
            return skipped(Msg("agent never ran (no state database yet)"))
        count = store.outbox_count()
    detail = Msg("%(n)d message(s) waiting for the broker", n=count)
    if count > OUTBOX_WARN:
        return warned(detail, Msg("the box has not delivered for a while: see the broker check and `loa status`"))
    return passed(detail)


@check(C_("doctor check", "schedule"))
def check_schedule(ctx: Context) -> Check:
    from .errors import SchemaError
    from .schedule import Schedule

    with _open_store(ctx) as store:
        if store is None:
            return skipped(Msg("agent never ran (no state database yet)"))
        docs = store.get_json("schedule_docs", {})
    if not docs:
        return warned(Msg("no schedule received yet"), Msg("the province has not sent one to this box's topics "
                                                           "(its device id or its areas)"))
    try:
        items = len(Schedule(docs).items)
    except SchemaError as e:
        return failed(Msg("the stored schedule does not compile: %(error)s", error=e.msg),
                      Msg("ask the province to send it again"))
    versions = [Msg("device v%(version)s", version=d.get("version")) if "/dev/" in t else
                Msg("area %(area)s v%(version)s", area=t.split("/")[-2], version=d.get("version"))
                for t, d in sorted(docs.items())]
    return passed(Msg("%(n)d item(s); %(versions)s", n=items, versions=Lines(versions, sep=", ")))


@check(C_("doctor check", "daemon"))
def check_daemon(ctx: Context) -> Check:
    st = ctx.daemon()
    if st is None:
        return warned(ctx.daemon_error, Msg("the other checks ran without it; start it with "
                                            "`systemctl start loa-agent`"))
    link = Msg("connected to %(broker)s", broker=st["broker"]) if st["connected"] else \
        Msg("NOT connected to %(broker)s (%(error)s)", broker=st["broker"],
            error=st["link_error"] or Msg("no answer yet"))
    faults = ", ".join(f"{f['code']} ({f['message']})" for f in st["faults"])
    detail = Msg("running %(version)s, %(link)s; faults: %(faults)s", version=st["agent_version"], link=link,
                 faults=faults or Msg("none"))
    if faults or not st["connected"]:
        return warned(detail, Msg("see `loa status` and `loa logs`"))
    return passed(detail)


# --- running and printing ------------------------------------------------------------------------------------

def _run_one(name: str, fn: Callable[[Context], Check], ctx: Context) -> Check:
    box: list[Check] = []

    def target() -> None:
        try:
            box.append(fn(ctx))
        except Exception as e:  # a broken check is that check's failure, never the doctor's crash
            box.append(failed(f"{type(e).__name__}: {e}", Msg("an unexpected error inside this check")))

    # A daemon thread: a check stuck in a driver call cannot keep the doctor from answering (or exiting).
    worker = threading.Thread(target=target, name=f"doctor-{name}", daemon=True)
    worker.start()
    worker.join(CHECK_TIMEOUT_S)
    if not box:
        return Check(name, "fail", Msg("no result within %(s)g s", s=CHECK_TIMEOUT_S), Msg("something hangs here"))
    return replace(box[0], name=name)


def run(path: str) -> list[Check]:
    ctx = Context(path)
    return [_run_one(name, fn, ctx) if ctx.cfg is not None or not needs_config
            else Check(name, "skip", Msg("config invalid")) for name, fn, needs_config in CHECKS]


def exit_code(checks: list[Check]) -> int:
    if any(c.name == "config" and c.status == "fail" for c in checks):
        return 2
    return 1 if any(c.status == "fail" for c in checks) else 0


STATUSES = {"pass": C_("doctor status", "PASS"), "warn": C_("doctor status", "WARN"),
            "fail": C_("doctor status", "FAIL"), "skip": C_("doctor status", "SKIP")}


def human(checks: list[Check]) -> str:
    from .i18n import _, n_, p_, render

    statuses = {s: p_("doctor status", word) for s, word in STATUSES.items()}
    names = [p_("doctor check", c.name) for c in checks]
    width, sw = max(map(len, names)) + 1, max(map(len, statuses.values())) + 1
    out = []
    for c, name in zip(checks, names, strict=True):
        first, *more = render(c.detail).splitlines() or [""]
        hint = _("hint: %(hint)s", hint=render(c.hint)) if c.hint and c.status in ("fail", "warn") else ""
        if hint and not more:
            first, hint = f"{first} — {hint}", ""
        out.append(f"{statuses[c.status]:<{sw}} {name:<{width}} {first}")
        out += [f"{'':<{sw + 1 + width}} {line}" for line in [*more, *([hint] if hint else [])]]
    counts = {s: sum(c.status == s for c in checks) for s in STATUSES}
    out.append(", ".join([n_("%(n)d passed", "%(n)d passed", counts["pass"]),
                          n_("%(n)d warning", "%(n)d warnings", counts["warn"]),
                          n_("%(n)d failed", "%(n)d failed", counts["fail"]),
                          n_("%(n)d skipped", "%(n)d skipped", counts["skip"])]))
    return "\n".join(out)


def cli(args: argparse.Namespace, path: str) -> int:
    checks = run(path)
    if args.json:  # the English of the checks (str of a Msg), whatever the CLI's language
        data = [{"name": str(c.name), "status": c.status, "detail": str(c.detail), "hint": str(c.hint)}
                for c in checks]
        print(json.dumps({"ok": not any(c.status == "fail" for c in checks), "checks": data},
                         ensure_ascii=False, indent=2))
    else:
        print(human(checks))
    return exit_code(checks)
