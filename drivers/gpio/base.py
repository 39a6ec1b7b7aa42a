"""The GPIO interface the core uses for amplifier relays and sensor inputs.

Pins are logical: `on`/`active` already accounts for active-low wiring, so the
core never thinks about electrical levels.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

EdgeCallback = Callable[[int, bool], None]  # (pin, active) from the backend's own thread: post and return


class Gpio(ABC):
    name = "base"

    def __init__(self, cfg: dict):
        self.cfg = cfg

    @abstractmethod
    def setup_output(self, pin: int, *, active_high: bool = True, initial: bool = False) -> None:
        """Claim `pin` as an output, inactive unless `initial`."""

    @abstractmethod
    def write(self, pin: int, active: bool) -> None:
        """Drive an output pin active (relay engaged) or inactive."""

    @abstractmethod
    def setup_input(self, pin: int, *, active_high: bool = True, pull: str | None = None,
                    on_change: EdgeCallback | None = None, debounce_ms: int = 50) -> None:
        """Claim `pin` as an input; `on_change(pin, active)` on each debounced edge."""

    @abstractmethod
    def read(self, pin: int) -> bool:
        """The logical state of a pin (input or output)."""

    @abstractmethod
    def close(self) -> None:
        """Release every pin; outputs go inactive first (amplifier off at shutdown)."""
