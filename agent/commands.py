"""The command registry: type -> params schema and handler. Later work adds types here, not in the intake.

A handler runs on the core thread. It returns a Result (the final ack), or
None when it will finish later through `core.complete(msg, result)`; those
registered `long=True` get an `accepted` ack first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import config as config_mod
from .schema import Field, Int, Obj

if TYPE_CHECKING:
    from .core import Core
    from .envelope import Message


@dataclass
class Result:
    status: str = "done"
    code: str = "ok"
    message: str = ""
    result: dict = field(default_factory=dict)


Handler = Callable[["Core", "Message", Any], "Result | None"]


@dataclass
class Command:
    type: str
    params: Any  # a schema Field, or a callable(params) -> checked params raising SchemaError
    run: Handler
    long: bool = False

    def check(self, params: dict) -> Any:
        if isinstance(self.params, Field):
            return self.params.check(params, "params")
        return self.params(params)


class Registry:
    def __init__(self) -> None:
        self.commands: dict[str, Command] = {}

    def command(self, type_: str, params: Any = None, *, long: bool = False) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.commands[type_] = Command(type_, params if params is not None else Obj({}), fn, long)
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


@REGISTRY.command("restart")
def restart(core: Core, msg: Message, params: dict) -> None:
    core.restart(msg)
    return None
