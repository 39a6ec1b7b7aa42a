"""Named sensor inputs on GPIO (`sensors` in config): `door_open` (tamper), `mains_power` (from the PSU or
UPS), `amp_ok` (the amplifier's own OK output). Debounced here, on core timers, whatever the backend does:
an edge only counts once the input has held its new level for `debounce_ms`, so a loose contact or a
door banging in the wind gives one change, not fifty. Each settled change is a `sensor` event and
raises or clears its fault."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .i18n import Msg
from .messages import Call
from .runtime import Runtime

if TYPE_CHECKING:
    from drivers.gpio.base import Gpio

    from .audio.amp import Amp

log = logging.getLogger("agent.sensors")

# name -> (fault code, whether the active level is the bad one, what the fault says)
FAULTS = {
    "door_open": ("door_open", True, Msg("the cabinet door is open")),
    "mains_power": ("mains_lost", False, Msg("mains power is lost (running on battery)")),
}


class Sensors:
    def __init__(self, rt: Runtime, gpio: Gpio, amp: Amp):
        self.rt, self.gpio, self.amp = rt, gpio, amp
        self.cfg = {s["name"]: s for s in rt.cfg["sensors"]}
        self.values: dict[str, bool] = {}
        self._timers: dict[str, Any] = {}
        for name, s in self.cfg.items():
            pull = None if s["pull"] == "none" else s["pull"]
            self.gpio.setup_input(s["pin"], active_high=s["active_high"], pull=pull,
                                  debounce_ms=min(s["debounce_ms"], 50),
                                  on_change=lambda pin, active, n=name: rt.post(Call(lambda: self._edge(n))))

    def start(self) -> None:
        for name in self.cfg:
            self._settle(name, initial=True)

    def _edge(self, name: str) -> None:
        """Any edge (re)starts the wait; only the level still there after debounce_ms counts."""
        self.rt.cancel(self._timers.pop(name, None))
        self._timers[name] = self.rt.call_later(self.cfg[name]["debounce_ms"] / 1000, lambda: self._settle(name))

    def _settle(self, name: str, *, initial: bool = False) -> None:
        self._timers.pop(name, None)
        value = self.gpio.read(self.cfg[name]["pin"])
        if self.values.get(name) == value:
            return
        self.values[name] = value
        log.info("sensor %s: %s", name, value)
        if not initial:
            self.rt.emit_event("sensor", {"name": name, "value": value})
        if name in FAULTS:
            code, bad_when_active, message = FAULTS[name]
            self.rt.faults.set(code, message if value == bad_when_active else None)
        elif name == "amp_ok":
            self.check_amp()

    def check_amp(self) -> None:
        """`amp_ok` means something only while a relay is on (and past its feedback delay)."""
        if "amp_ok" not in self.values:
            return
        amp = self.amp
        settled = any(amp.clock() - t >= amp.cfg["feedback_s"] for t in amp.on_since.values())
        if not amp.on_since:
            return  # relays off: an amplifier without power says nothing about its health
        if not self.values["amp_ok"] and settled:
            self.rt.faults.raise_("amp_no_feedback", Msg("the amplifier's OK input is off while it is switched on"))
        elif self.values["amp_ok"]:
            self.rt.faults.clear("amp_no_feedback")

    def state(self) -> dict[str, bool]:
        return dict(self.values)
