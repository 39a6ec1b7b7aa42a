"""Simulated GPIO for machines without pins: records a timestamped state history.

Like gpiozero's MockPin, it keeps every state change with its time, and tests
drive inputs through hooks. Because tests run the agent as another process,
the history is also appended as JSON lines to `gpio.sim_log` when set
(timestamps are CLOCK_MONOTONIC, which is system-wide on Linux), and inputs can
be driven through the agent's local socket (`sim_drive`).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from .base import EdgeCallback, Gpio


class Backend(Gpio):
    name = "sim"

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.states: dict[int, bool] = {}
        self.outputs: set[int] = set()
        self.callbacks: dict[int, EdgeCallback | None] = {}
        self.history: list[tuple[float, int, bool]] = []
        self._lock = threading.Lock()
        self._log_path = cfg.get("sim_log")

    def _set(self, pin: int, active: bool) -> bool:
        with self._lock:
            changed = self.states.get(pin) != active
            self.states[pin] = active
            if changed:
                t = time.monotonic()
                self.history.append((t, pin, active))
                if self._log_path:
                    with open(self._log_path, "a") as f:
                        f.write(json.dumps({"t": t, "wall": time.time(), "pin": pin, "active": active}) + "\n")
        return changed

    def setup_output(self, pin: int, *, active_high: bool = True, initial: bool = False) -> None:
        self.outputs.add(pin)
        self._set(pin, initial)

    def write(self, pin: int, active: bool) -> None:
        if pin not in self.outputs:
            raise ValueError(f"GPIO {pin} is not set up as an output")
        self._set(pin, active)

    def setup_input(self, pin: int, *, active_high: bool = True, pull: str | None = None,
                    on_change: EdgeCallback | None = None, debounce_ms: int = 50) -> None:
        self.callbacks[pin] = on_change
        self._set(pin, self.states.get(pin, False))

    def read(self, pin: int) -> bool:
        return self.states.get(pin, False)

    # --- test hooks ---------------------------------------------------------------------
    def drive(self, pin: int, active: bool) -> None:
        """Set an input as the outside world would, firing its edge callback."""
        if pin in self.outputs:
            raise ValueError(f"GPIO {pin} is an output")
        if self._set(pin, active) and self.callbacks.get(pin):
            self.callbacks[pin](pin, active)  # type: ignore[misc]

    def states_since(self, t: float) -> list[tuple[float, int, bool]]:
        return [h for h in self.history if h[0] >= t]

    def close(self) -> None:
        for pin in sorted(self.outputs):
            self._set(pin, False)

    def snapshot(self) -> dict[str, Any]:
        return {str(p): v for p, v in sorted(self.states.items())}
