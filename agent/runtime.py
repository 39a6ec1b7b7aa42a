"""What a component may ask of the core: the `Runtime` protocol, and the `Result` a command ends with.

A leaf module (nothing of the agent imported at run time). Components (player, scheduler, alerts, board,
sensors, monitor, prefetcher, maintenance, self-test) take a Runtime and the parts they use in their
constructors, and never reach a sibling through the core. agent/services.py implements it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .envelope import Message
    from .faults import Faults
    from .messages import Posted


@dataclass
class Result:
    """A command's final ack (docs/protocol.md, "Acks"): status, code, message and a result object."""

    status: str = "done"
    code: str = "ok"
    message: str = ""
    result: dict = field(default_factory=dict)


class Runtime(Protocol):
    cfg: dict  # the config in force (config.set changes it in place, on the core thread)
    device_id: str
    faults: Faults

    def clock(self) -> float:
        """Wall time (injected in tests)."""
        ...

    def post(self, msg: Posted) -> None:
        """From any thread: hand a message (agent/messages.py) to the core thread."""
        ...

    def call_later(self, delay: float, fn: Callable[[], None]) -> Any:
        """Run `fn` on the core thread after `delay` s; returns a handle for `cancel`."""
        ...

    def cancel(self, timer: Any) -> None:
        """Cancel a `call_later` (None is fine)."""
        ...

    def every(self, interval: Callable[[], float], fn: Callable[[], None]) -> None:
        """Run `fn` every `interval()` s on the core thread."""
        ...

    def emit_event(self, kind: str, data: dict, kv: dict[str, Any] | None = None) -> None:
        """A durable event to the province (docs/protocol.md, "Events"); `kv` is stored with it, atomically."""
        ...

    def complete(self, msg: Message, result: Result) -> None:
        """The final ack of a long command."""
        ...

    def restart(self) -> None:
        """Stop the core so the daemon restarts the agent."""
        ...
