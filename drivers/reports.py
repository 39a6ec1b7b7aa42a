"""What drivers tell the core. A driver reports upward only by posting one of these (`Report`), never by
calling into the core; the core's handler map (agent/core.py) routes each type to its owner.
A leaf module: importing it loads no backend."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class TrackStarted:
    token: int
    t_first: float  # monotonic time of the first sample handed to the device


@dataclass(frozen=True)
class TrackEnded:
    token: int
    position_s: float
    error: str | None


@dataclass(frozen=True)
class TrackStalled:
    token: int
    position_s: float


@dataclass(frozen=True)
class AudioDevice:
    ok: bool
    message: str


@dataclass(frozen=True)
class FrameShown:
    token: int
    error: str | None
    at: float  # wall clock


@dataclass(frozen=True)
class VideoEnded:
    token: int
    error: str | None


@dataclass(frozen=True)
class DisplayDevice:
    ok: bool
    message: str


DriverReport = TrackStarted | TrackEnded | TrackStalled | AudioDevice | FrameShown | VideoEnded | DisplayDevice
Report = Callable[[DriverReport], None]
