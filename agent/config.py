"""The agent's YAML configuration: schema, validation (every problem at once), secrets checks.

A few keys can also be set remotely (`config.set`); those overrides live in the
state store and are laid over the file here, so the file stays the operator's.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import stat
from pathlib import Path
from typing import Any

from drivers import BACKENDS

from . import brokers
from .errors import ConfigError, SchemaError
from .schema import Bool, Clock, Int, List, Map, Num, Obj, Str, did_you_mean

DEFAULT_PATH = "/etc/loa-agent/agent.yaml"
DEVICE_ID = r"[A-Za-z0-9_-]{1,64}"
AREA = r"[A-Za-z0-9._-]{1,64}"

CAPABILITIES = ("speaker", "display")

QUIET_WINDOW = Obj({"from": Clock(), "to": Clock(), "max_volume": Int(min=0, max=100, default=0)})


SENSOR_NAMES = ("door_open", "mains_power", "amp_ok")
SENSOR = Obj({
    "name": Str(choices=SENSOR_NAMES),
    "pin": Int(min=0, max=1023),
    "active_high": Bool(default=True),  # active = the door is open / mains is present / the amplifier is OK
    "pull": Str(choices=("up", "down", "none"), default="none"),
    "debounce_ms": Int(min=0, max=60000, default=200),
})

ZONE = Obj({
    "name": Str(pattern=r"[A-Za-z0-9_-]{1,32}"),
    "relay_pin": Int(min=0, max=1023),
    "active_high": Bool(default=True),
    "feedback_pin": Int(min=0, max=1023, optional=True),
    "feedback_active_high": Bool(default=True),
    "volume": Int(min=0, max=100, default=100),
})


def _areas(**kw: Any) -> List:
    return List(Str(pattern=AREA), max_len=32, **kw)


def _quiet_hours(**kw: Any) -> List:
    return List(QUIET_WINDOW, max_len=8, **kw)


# A recording the province made (e.g. an evacuation call in Ê Đê or Gia Rai) that an alert may name instead of
# speaking its text: fetched ahead of time and kept in the media cache, so it plays with no network.
ANNOUNCEMENT = Obj({
    "url": Str(min_len=1, max_len=2048),
    "sha256": Str(pattern=r"[0-9a-f]{64}"),
    "size": Int(min=1, optional=True),
    "lang": Str(max_len=16, optional=True),
    "title": Str(max_len=200, optional=True),
})
ANNOUNCEMENT_NAME = r"[A-Za-z0-9._-]{1,64}"


def _announcements(**kw: Any) -> Map:
    return Map(ANNOUNCEMENT, key=Str(pattern=ANNOUNCEMENT_NAME), **kw)


# Keys the provincial server may change with `config.set` (persisted in the state store).
REMOTE_KEYS: dict[str, Any] = {
    "device.heartbeat_s": Int(min=5, max=3600),
    "device.areas": _areas(),
    "quiet_hours": _quiet_hours(),
    "display.power_schedule": Obj({"on": Clock(), "off": Clock()}),
    "announcements": _announcements(),
}

SCHEMA = Obj({
    "device": Obj({
        "id": Str(pattern=DEVICE_ID),
        "name": Str(max_len=200, optional=True),
        "areas": _areas(default=list),
        "location": Obj({"lat": Num(min=-90, max=90), "lon": Num(min=-180, max=180)}, optional=True),
        "capabilities": List(Str(choices=CAPABILITIES), default=lambda: ["speaker"]),
        "heartbeat_s": Int(min=5, max=3600, default=60),
        "tz": Str(default="Asia/Ho_Chi_Minh"),
    }),
    "mqtt": Obj({
        "host": Str(min_len=1, optional=True),  # one broker (default 127.0.0.1), or:
        "hosts": List(brokers.HOST, min_len=1, max_len=brokers.MAX_HOSTS, optional=True),  # tried in order
        "port": Int(min=1, max=65535, default=1883),  # mqtt.host's, and that of a host in mqtt.hosts without one
        "protocol": brokers.Protocol(default="5"),
        "topic_prefix": Str(pattern=r"[A-Za-z0-9_/.-]{1,100}", default="ttcs/v1"),
        "tls": Obj({"ca": Str(min_len=1), "cert": Str(optional=True), "key": Str(optional=True, secret=True),
                    "server_name": Str(min_len=1, optional=True)}, optional=True),  # every host's TLS
        "allow_plain": Bool(default=False),
        "username": Str(optional=True),
        "password_file": Str(optional=True, secret=True),
        "keepalive_s": Int(min=5, max=3600, default=60),
        "session_expiry_s": Int(min=0, max=4294967295, default=7 * 24 * 3600),
        "boot_jitter_s": Num(min=0, max=3600, default=10.0),
        "reconnect": Obj({
            "base_s": Num(min=0.01, max=600, default=1.0),
            "cap_s": Num(min=0.1, max=3600, default=300.0),
            "stable_s": Num(min=0, max=3600, default=60.0),
            "auth_retry_s": Num(min=1, max=86400, default=600.0),
            "jitter": Bool(default=True),  # false only to measure what jitter buys (scripts/bench_storm)
        }, default=lambda: {"base_s": 1.0, "cap_s": 300.0, "stable_s": 60.0, "auth_retry_s": 600.0, "jitter": True}),
    }, validate=brokers.normalise),
    "security": Obj({
        "require_signed": Bool(default=True),
        "keys": Map(Str(min_len=1), key=Str(pattern=r"[A-Za-z0-9._-]{1,64}"), default=dict),
        # Release keys sign software bundles (agent/bundle.py): never the keys that sign commands.
        "release_keys": Map(Str(min_len=1), key=Str(pattern=r"[A-Za-z0-9._-]{1,64}"), default=dict),
        "max_clock_skew_s": Int(min=0, max=86400, default=300),
        "max_lifetime_s": Int(min=1, max=30 * 86400, default=86400),
        "max_payload_bytes": Int(min=1024, max=16 * 1024 * 1024, default=256 * 1024),
    }),
    "paths": Obj({
        "state_dir": Str(min_len=1, default="/var/lib/loa-agent"),
        "socket": Str(min_len=1, default="/run/loa-agent/agent.sock"),
    }),
    "audio": Obj({
        "backend": Str(choices=BACKENDS["audio"], default="vlc"),
        "device": Str(default="default"),
        "default_volume": Int(min=0, max=100, default=80),
        "max_volume": Int(min=0, max=100, default=100),
        "stall_s": Num(min=0.5, max=600, default=8.0),
        "retry_s": Num(min=0.1, max=600, default=2.0),
        "stream_rounds": Int(min=1, max=100, default=3),
    }),
    "amp": Obj({
        "warmup_s": Num(min=0, max=30, default=1.0),
        "hold_s": Num(min=0, max=3600, default=10.0),
        "feedback_s": Num(min=0.05, max=30, default=0.5),
    }),
    "zones": List(ZONE, min_len=1, max_len=16,
                  default=lambda: [ZONE.check({"name": "main", "relay_pin": 17}, "zones[0]")]),
    "gpio": Obj({
        "backend": Str(choices=BACKENDS["gpio"], default="sim"),
        "chip": Str(default="/dev/gpiochip0"),
        "sim_log": Str(optional=True),
    }),
    "display": Obj({
        "backend": Str(choices=BACKENDS["display"], default="none"),
        "png_dir": Str(optional=True),
        "width": Int(min=16, max=8192, default=1920),
        "height": Int(min=16, max=8192, default=1080),
        "rotation": Int(min=0, max=270, default=0),
        "fb_device": Str(min_len=1, default="/dev/fb0"),
        "fb_sysfs": Str(optional=True),
        "vlc_args": List(Str(min_len=1, max_len=200), max_len=32, default=list),
        "fonts": List(Str(min_len=1), max_len=8, default=list),
        "header": Bool(default=True),
        "slide_s": Num(min=1, max=86400, default=10.0),
        "fps": Num(min=1, max=60, default=25.0),
        "ticker_px_s": Num(min=10, max=2000, default=120.0),
        "power_method": Str(choices=("auto", "vcgencmd", "dpms", "blank", "sim", "none"), default="auto"),
        "power_schedule": Obj({"on": Clock(), "off": Clock()}, optional=True),
        "screenshot_max_kb": Int(min=8, max=4096, default=192),
    }),
    "quiet_hours": _quiet_hours(default=list),
    "announcements": _announcements(default=dict),
    "schedule": Obj({
        "late_grace_s": Num(min=0, max=86400, default=300.0),
        "clock_check_s": Num(min=0.05, max=3600, default=60.0),  # how soon a clock jump is noticed
    }),
    "cache": Obj({
        "max_mb": Int(min=1, max=1024 * 1024, default=2048),
        "prefetch_hours": Num(min=0, max=24 * 30, default=48.0),
    }),
    "sensors": List(SENSOR, max_len=16, default=list),
    "health": Obj({
        "check_s": Num(min=0.05, max=3600, default=30.0),  # how often sys/disk/storage are checked
        "raise_after": Int(min=1, max=100, default=2),  # consecutive bad checks before a fault is raised
        "clear_after": Int(min=1, max=100, default=2),  # consecutive good checks before it clears
        "overheat_c": Num(min=30, max=150, default=80.0),
        "overheat_clear_c": Num(min=20, max=150, default=75.0),
        "disk_low_mb": Num(min=0, max=10**7, default=200.0),
        "disk_clear_mb": Num(min=0, max=10**7, default=300.0),
        "proc": Str(min_len=1, default="/proc"),  # roots, so tests can point at a fake tree
        "sys": Str(min_len=1, default="/sys"),
    }),
    "selftest": Obj({
        "mic_device": Str(optional=True),  # ALSA capture device that hears the horn; none = no acoustic check
        "tone_s": Num(min=0.5, max=30, default=2.0),
        "tolerance_db": Num(min=0.5, max=60, default=6.0),  # allowed drop of the 1 kHz level from calibration
        "daily": Clock(optional=True),  # a daily self-test at this local time (never in quiet hours)
    }),
    "maintenance": Obj({
        "restart_window": Obj({"from": Clock(), "to": Clock()}, optional=True),  # nightly restart, e.g. 02:00-04:00
    }),
    "update": Obj({
        "health_timeout_s": Num(min=1, max=86400, default=300.0),  # the new version must stay healthy this long
        "max_boots": Int(min=1, max=20, default=3),  # starts of a new version before loa-boot rolls it back
        "retry_s": Num(min=0.05, max=3600, default=10.0),  # waiting for an alert or a programme to end
        "download_retries": Int(min=0, max=20, default=3),
    }),
    "log": Obj({
        "level": Str(choices=("debug", "info", "warning", "error"), default="info"),
        "buffer_lines": Int(min=10, max=100000, default=2000),
    }),
})


def load(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> dict:
    """Read, validate and return the effective config; raise ConfigError listing every problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([f"{p}: cannot read: {e.strerror or e}"]) from None
    return parse(text, base_dir=p.parent, source=str(p), overrides=overrides)


def parse(text: str, *, base_dir: Path = Path("."), source: str = "config",
          overrides: dict[str, Any] | None = None) -> dict:
    import yaml  # only at load time: keeps `import agent.config` cheap for the CLI

    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError([f"{source}: not valid YAML{where}: {getattr(e, 'problem', e)}"]) from None
    if raw is None:
        raw = {}
    if isinstance(raw, dict):  # a section left empty (`sensors:` over commented-out entries) reads as null: absent
        raw = {k: v for k, v in raw.items() if v is not None}
    cfg, errors = SCHEMA.collect(raw)
    problems = [str(e) if e.field else f"{source}: the file {e.what}" for e in errors]
    if not errors:
        for key, value in (overrides or {}).items():
            set_key(cfg, key, value)
        _resolve_paths(cfg, base_dir)
        problems += _cross_checks(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


def _resolve_paths(cfg: dict, base_dir: Path) -> None:
    """Relative file paths are relative to the config file, as an operator would expect."""
    def fix(v: str | None) -> str | None:
        return None if v is None else str((base_dir / Path(v).expanduser()).resolve())

    for keys in ("keys", "release_keys"):
        cfg["security"][keys] = {k: fix(v) for k, v in cfg["security"][keys].items()}
    mq = cfg["mqtt"]
    mq["password_file"] = fix(mq.get("password_file"))
    if mq.get("tls"):
        mq["tls"] = {k: v if k == "server_name" else fix(v) for k, v in mq["tls"].items()}
    for h in mq["hosts"]:
        if (h.get("tls") or {}).get("ca"):
            h["tls"]["ca"] = fix(h["tls"]["ca"])
    for key in ("state_dir", "socket"):
        cfg["paths"][key] = fix(cfg["paths"][key])
    for section, key in (("display", "png_dir"), ("display", "fb_sysfs"), ("gpio", "sim_log")):
        if cfg[section].get(key):
            cfg[section][key] = fix(cfg[section][key])


def _read_or_none(path: str) -> bytes | None:
    try:
        return Path(path).read_bytes().strip()
    except OSError:
        return None


def _cross_checks(cfg: dict) -> list[str]:
    problems: list[str] = []
    sec, mq = cfg["security"], cfg["mqtt"]
    if sec["require_signed"] and not sec["keys"]:
        problems.append("security.keys: at least one provincial public key is required when require_signed is true")
    for keys in ("keys", "release_keys"):
        for kid, path in sec[keys].items():
            problems += _file_problems(f"security.{keys}.{kid}", path, secret=False)
    commands = {_read_or_none(path) for path in sec["keys"].values()} - {None}
    for kid, path in sec["release_keys"].items():
        if _read_or_none(path) in commands:
            problems.append(f"security.release_keys.{kid}: the same key signs commands; a release key must be "
                            "its own, so that a stolen command key cannot install software")
    if mq.get("password_file"):
        problems += _file_problems("mqtt.password_file", mq["password_file"], secret=True)
        if not mq.get("username"):
            problems.append("mqtt.username: is required with mqtt.password_file")
    disp = cfg["display"]
    if disp["rotation"] not in (0, 90, 180, 270):
        problems.append(f"display.rotation: must be 0, 90, 180 or 270, got {disp['rotation']}")
    if disp["backend"] == "png" and not disp.get("png_dir"):
        problems.append("display.png_dir: is required by the png backend")
    tls = mq.get("tls")
    if tls:
        problems += _file_problems("mqtt.tls.ca", tls["ca"], secret=False)
        if bool(tls.get("cert")) != bool(tls.get("key")):
            problems.append("mqtt.tls: cert and key go together")
        if tls.get("cert"):
            problems += _file_problems("mqtt.tls.cert", tls["cert"], secret=False)
            problems += _file_problems("mqtt.tls.key", tls["key"], secret=True)
        for i, h in enumerate(mq["hosts"]):
            if (h.get("tls") or {}).get("ca"):
                problems += _file_problems(f"mqtt.hosts[{i}].tls.ca", h["tls"]["ca"], secret=False)
    elif not mq["allow_plain"]:
        for h in mq["hosts"]:
            if not _is_loopback(h["host"]):
                problems.append(f"mqtt.tls: required for a broker that is not on loopback ({h['host']}); "
                                "set mqtt.allow_plain: true only on a trusted network")
                break
    problems += brokers.problems(mq)
    if mq["reconnect"]["base_s"] > mq["reconnect"]["cap_s"]:
        problems.append("mqtt.reconnect.base_s: must not exceed mqtt.reconnect.cap_s")
    names = [z["name"] for z in cfg["zones"]]
    if len(set(names)) != len(names):
        problems.append("zones: zone names must be unique")
    try:
        import zoneinfo

        zoneinfo.ZoneInfo(cfg["device"]["tz"])
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        problems.append(f"device.tz: unknown time zone {cfg['device']['tz']!r} (e.g. Asia/Ho_Chi_Minh)")
    if cfg["audio"]["default_volume"] > cfg["audio"]["max_volume"]:
        problems.append("audio.default_volume: must not exceed audio.max_volume")
    if cfg["display"]["backend"] == "png" and not cfg["display"].get("png_dir"):
        problems.append("display.png_dir: is required with display.backend: png")
    return problems


def _file_problems(key: str, path: str, *, secret: bool) -> list[str]:
    try:
        st = os.stat(path)
    except OSError as e:
        return [f"{key}: cannot read {path}: {e.strerror}"]
    if not stat.S_ISREG(st.st_mode):
        return [f"{key}: {path} is not a regular file"]
    if secret and st.st_mode & 0o077:
        mode = stat.S_IMODE(st.st_mode)
        return [f"{key}: {path} is readable by group or others (mode {mode:04o}); run chmod 600 {path}"]
    if not secret and st.st_mode & 0o022:  # a trust anchor (signing key, CA) that others may replace
        problem = (f"{key}: {path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o}): whoever "
                   f"can write it can replace it; run chmod go-w {path}")
        return [problem]
    if not os.access(path, os.R_OK):
        return [f"{key}: cannot read {path}: permission denied"]
    return []


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_remote(changes: Any) -> dict[str, Any]:
    """Validate a `config.set` params object: only REMOTE_KEYS, each well-typed."""
    if not isinstance(changes, dict) or not changes:
        raise SchemaError("params", "must name at least one of " + ", ".join(REMOTE_KEYS))
    out = {}
    for key, value in changes.items():
        field = REMOTE_KEYS.get(key)
        if field is None:
            raise SchemaError(f"params.{key}", "is not remotely settable (settable: "
                              f"{', '.join(REMOTE_KEYS)}){did_you_mean(key, REMOTE_KEYS)}")
        out[key] = field.check(value, f"params.{key}")
    return out


def get_key(cfg: dict, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def set_key(cfg: dict, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = cfg
    for part in parents:
        node = node[part]
    node[last] = copy.deepcopy(value)


def masked(cfg: dict) -> dict:
    """A copy fit to print: secrets replaced by a mark saying only whether they are set."""
    out = copy.deepcopy(cfg)

    def walk(schema: Obj, node: dict) -> None:
        for key, field in schema.fields.items():
            if key not in node or node[key] is None:
                continue
            if isinstance(field, Obj) and isinstance(node[key], dict):
                walk(field, node[key])
            elif field.secret:
                node[key] = "***"
    walk(SCHEMA, out)
    return out
