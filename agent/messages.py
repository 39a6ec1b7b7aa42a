"""What frontends and workers post to the core: small frozen dataclasses, routed by type through the
core's one handler map (agent/core.py), so a misspelt message is an unknown name at import, not a
silently ignored string at run time. Drivers post theirs from drivers/reports.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from drivers.reports import DriverReport

if TYPE_CHECKING:
    from .ipc import Reply


@dataclass(frozen=True)
class Call:
    """Run `fn` on the core thread: how a worker hands its result back."""

    fn: Callable[[], None]


@dataclass(frozen=True)
class Wake:
    """Nothing to do but look at `running` again (posted by a signal handler)."""


@dataclass(frozen=True)
class LinkConnected:
    generation: int
    session_present: bool


@dataclass(frozen=True)
class LinkDisconnected:
    reason: str


@dataclass(frozen=True)
class LinkRefused:
    reason: str
    auth: bool


@dataclass(frozen=True)
class LinkPublished:
    mid: int
    error: str | None


@dataclass(frozen=True)
class LinkMessage:
    topic: str
    kind: str | None  # "cmd" or "schedule" (agent/topics.py), None for a topic we did not subscribe to
    payload: bytes
    mid: int
    qos: int
    dup: bool
    generation: int
    at: float = 0.0  # monotonic time paho handed it over (the urgent path's first debug stage stamp)


@dataclass(frozen=True)
class IpcRequest:
    """A technician's request from the local socket; answered through `reply`."""

    op: str
    args: dict[str, Any]
    reply: Reply


Posted = Call | Wake | LinkConnected | LinkDisconnected | LinkRefused | LinkPublished | LinkMessage | IpcRequest \
    | DriverReport
Post = Callable[[Posted], None]
