"""The core's services as components see them: the `Runtime` (agent/runtime.py) over the event loop, the
outbox and the faults. Made first by the daemon's build (agent/daemon.py), before any component."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .envelope import Message
    from .faults import Faults
    from .loop import Loop
    from .messages import Posted
    from .outbox import Outbox
    from .runtime import Result


class Services:
    def __init__(self, cfg: dict, clock: Callable[[], float], loop: Loop, outbox: Outbox, faults: Faults):
        self.cfg = cfg
        self.device_id: str = cfg["device"]["id"]
        self.clock = clock
        self.loop = loop
        self.outbox = outbox
        self.faults = faults

    def post(self, msg: Posted) -> None:
        self.loop.post(msg)

    def call_later(self, delay: float, fn: Callable[[], None]) -> Any:
        return self.loop.call_later(delay, fn)

    def cancel(self, timer: Any) -> None:
        self.loop.cancel(timer)

    def every(self, interval: Callable[[], float], fn: Callable[[], None]) -> None:
        self.loop.every(interval, fn)

    def emit_event(self, kind: str, data: dict, kv: dict[str, Any] | None = None) -> None:
        self.outbox.event(kind, data, kv)

    def complete(self, msg: Message, result: Result) -> None:
        self.outbox.complete(msg, result)

    def restart(self) -> None:
        self.loop.stop(restart=True)
