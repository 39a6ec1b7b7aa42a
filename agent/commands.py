"""The command registry: type -> params schema and handler. Later work adds types here, not in the intake.

A handler runs on the core thread. It returns a Result (the final ack), or
None when it will finish later through `core.complete(msg, result)`; those
registered `long=True` get an `accepted` ack first. The `loa` CLI's local operations run the same
handlers (`Core.local`), so both are checked by one schema.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import config as config_mod
from .audio.arbiter import LEVELS, Play
from .audio.player import PlayError
from .audio.sources import Source
from .display.scenes import Scene
from .errors import Rejection, SchemaError
from .i18n import Msg
from .runtime import Result
from .schema import Bool, Field, Int, List, Num, Obj, Str
from .updater import UPDATE

if TYPE_CHECKING:
    from .core import Core
    from .envelope import Message


Handler = Callable[["Core", "Message", Any], "Result | None"]


@dataclass
class Command:
    type: str
    params: Any  # a schema Field, or a callable(params) -> checked params raising SchemaError
    run: Handler
    long: bool = False
    # Runs before the durable record and the PUBACK (the record follows at once): an emergency's first
    # sample must not wait for an fsync.
    urgent: Callable[[Any], bool] | None = None
    # Still finished after a restart past its `exp`: an update restarts the agent on purpose, mid-command.
    outlives_exp: bool = False

    def check(self, params: dict) -> Any:
        if isinstance(self.params, Field):
            return self.params.check(params, "params")
        return self.params(params)


class Registry:
    def __init__(self) -> None:
        self.commands: dict[str, Command] = {}

    def command(self, type_: str, params: Any = None, *, long: bool = False,
                urgent: Callable[[Any], bool] | None = None,
                outlives_exp: bool = False) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.commands[type_] = Command(type_, params if params is not None else Obj({}), fn, long, urgent,
                                           outlives_exp)
            return fn
        return register

    def get(self, type_: str) -> Command | None:
        return self.commands.get(type_)

    def types(self) -> list[str]:
        return sorted(self.commands)


REGISTRY = Registry()


@REGISTRY.command("status.get")
def status_get(core: Core, msg: Message, params: dict) -> Result:
    return Result(result=core.heartbeat(advance=False))


@REGISTRY.command("config.set", config_mod.check_remote)
def config_set(core: Core, msg: Message, changes: dict) -> Result:
    core.apply_config(changes)
    return Result(message=f"set {', '.join(sorted(changes))}", result={"applied": changes})


@REGISTRY.command("logs.get", Obj({"lines": Int(min=1, max=5000, default=200)}))
def logs_get(core: Core, msg: Message, params: dict) -> Result:
    lines = core.log_tail(params["lines"])
    return Result(result={"lines": lines, "count": len(lines)})


@REGISTRY.command("report.get", Obj({"date": Str(pattern=r"\d{4}-\d{2}-\d{2}", optional=True)}))
def report_get(core: Core, msg: Message, params: dict) -> Result:
    return Result(result=core.parts.asrun.report(params.get("date")))


@REGISTRY.command("restart")
def restart(core: Core, msg: Message, params: dict) -> None:
    core.restart(msg)
    return None


# --- audio ---------------------------------------------------------------------------------
ZONES = List(Str(min_len=1, max_len=32), min_len=1, max_len=16, optional=True)
PLAY = Obj({
    "source": Source(),
    "level": Str(choices=LEVELS, default="normal"),
    "volume": Int(min=0, max=100, optional=True),
    "zones": ZONES,
    "repeat": Int(min=1, max=100, default=1),
    "duration_s": Num(min=0.1, max=86400, optional=True),
    "title": Str(max_len=200, optional=True),
})


def _zones(cfg: dict, zones: list[str] | None) -> list[str]:
    known = [z["name"] for z in cfg["zones"]]
    for i, z in enumerate(zones or []):
        if z not in known:
            raise Rejection("bad_schema", SchemaError(f"params.zones[{i}]", Msg("unknown zone %(zone)r (zones: "
                                                                                "%(known)s)", zone=z,
                                                                                known=", ".join(known))).msg)
    return zones or []


def make_play(cfg: dict, play_id: str, params: dict, *, origin: str, context: Any = None) -> Play:
    return Play(id=play_id, source=params["source"], level=params["level"], volume=params.get("volume"),
                zones=_zones(cfg, params.get("zones")), repeat=params["repeat"],
                duration_s=params.get("duration_s"), title=params.get("title"), origin=origin, context=context)


@REGISTRY.command("play", PLAY, long=True, urgent=lambda p: p["level"] == "emergency")
def play(core: Core, msg: Message, params: dict) -> None:
    try:
        core.parts.player.submit(make_play(core.cfg, msg.jti, params, origin="cli" if msg.reply else "command",
                                           context=msg))
    except PlayError as e:
        raise Rejection(e.code, str(e)) from None
    return None


def _one_of_cap_or_headline(params: dict, path: str) -> None:
    if ("cap" in params) == ("headline" in params):
        raise SchemaError(path or "params", "needs either cap (CAP 1.2 XML) or headline")


ALERT = Obj({
    "cap": Str(min_len=1, max_len=128 * 1024, optional=True),
    "headline": Str(min_len=1, max_len=500, optional=True),
    "description": Str(max_len=5000, optional=True),
    "instruction": Str(max_len=5000, optional=True),
    "audio": Source(optional=True),
    "siren": Bool(default=True),
    "repeat": Int(min=1, max=20, default=3),
    "expires": Str(min_len=10, max_len=40, optional=True),
    "status": Str(choices=("actual", "test", "exercise"), default="actual"),
    # Pre-recorded announcements (config `announcements`) played instead of the spoken text; with `cap`, these
    # take the place of the CAP's own LOA_ANNOUNCEMENT parameters.
    "announcements": List(Str(pattern=config_mod.ANNOUNCEMENT_NAME), min_len=1, max_len=8, optional=True),
}, validate=_one_of_cap_or_headline)


@REGISTRY.command("alert", ALERT, long=True, urgent=lambda p: True)
def alert(core: Core, msg: Message, params: dict) -> Result | None:
    return core.parts.alerts.handle(msg, params)


@REGISTRY.command("alert.cancel", Obj({"id": Str(min_len=1, max_len=256)}))
def alert_cancel(core: Core, msg: Message, params: dict) -> Result:
    n = core.parts.alerts.cancel([params["id"]], "stopped")
    return Result(message=f"cancelled {n} alert(s)", result={"cancelled": n})


@REGISTRY.command("schedule", Obj({}, extra=True))
def schedule(core: Core, msg: Message, params: dict) -> Result:
    return core.parts.scheduler.apply(msg)


@REGISTRY.command("stop", Obj({"id": Str(min_len=1, max_len=128, optional=True),
                              "level": Str(choices=LEVELS, optional=True)}))
def stop(core: Core, msg: Message, params: dict) -> Result:
    n = core.parts.player.stop(id=params.get("id"), level=params.get("level"))
    return Result(message=f"stopped {n} play(s)", result={"stopped": n})


@REGISTRY.command("volume", Obj({"volume": Int(min=0, max=100), "zones": ZONES}))
def volume(core: Core, msg: Message, params: dict) -> Result:
    core.parts.player.set_volume(params["volume"], _zones(core.cfg, params.get("zones")))
    return Result(result=core.parts.player.state()["volume"])


# --- e-board ----------------------------------------------------------------------------------
def _board(core: Core) -> Any:
    if core.parts.board is None:
        raise Rejection("not_for_me", Msg("this box has no display (capabilities: %(capabilities)s)",
                                          capabilities=", ".join(core.cfg["device"]["capabilities"])))
    return core.parts.board


@REGISTRY.command("display.show", Obj({"scene": Scene(), "duration_s": Num(min=0.1, max=86400, optional=True),
                                       "level": Str(choices=LEVELS, default="normal")}), long=True)
def display_show(core: Core, msg: Message, params: dict) -> Result | None:
    return _board(core).show(msg, params)


@REGISTRY.command("display.clear")
def display_clear(core: Core, msg: Message, params: dict) -> Result:
    n = _board(core).clear()
    return Result(message=f"cleared {n} scene(s)", result={"cleared": n})


@REGISTRY.command("display.power", Obj({"on": Bool()}), long=True)
def display_power(core: Core, msg: Message, params: dict) -> None:
    _board(core).set_power(params["on"], msg)


@REGISTRY.command("display.screenshot", long=True)
def display_screenshot(core: Core, msg: Message, params: dict) -> None:
    _board(core).screenshot(msg)


@REGISTRY.command("selftest", Obj({"calibrate": Bool(default=False)}), long=True)
def selftest(core: Core, msg: Message, params: dict) -> None:
    core.parts.selftest.start(calibrate=params["calibrate"], done=lambda result: core.complete(msg, result))


@REGISTRY.command("amp", Obj({"on": Bool(), "zones": ZONES}))
def amp(core: Core, msg: Message, params: dict) -> Result:
    zones = core.parts.player.amp.force(params["on"], _zones(core.cfg, params.get("zones")))
    return Result(result={"zones": zones, **core.parts.player.amp.state()})


# --- software updates (agent/updater.py) -----------------------------------------------------------
@REGISTRY.command("update", UPDATE, long=True, outlives_exp=True)
def update(core: Core, msg: Message, params: dict) -> Result | None:
    return core.parts.updater.handle(msg, params)


@REGISTRY.command("update.rollback")
def update_rollback(core: Core, msg: Message, params: dict) -> Result:
    return core.parts.updater.rollback(msg)
