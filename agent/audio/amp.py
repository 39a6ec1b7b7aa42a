"""Amplifier relays, one per zone: on before the first sample (after a warm-up), off after `hold_s` of
silence, never cut mid-programme, off at shutdown; relay feedback checked where it is wired."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from drivers.gpio import Gpio

from ..i18n import Msg

log = logging.getLogger("agent.amp")


class Amp:
    def __init__(self, gpio: Gpio, zones: list[dict], cfg: dict, *, call_later: Callable[[float, Callable], Any],
                 cancel: Callable[[Any], None], fault: Callable[[str, str | None], None],
                 clock: Callable[[], float] = time.monotonic):
        self.gpio = gpio
        self.zones = {z["name"]: z for z in zones}
        self.cfg = cfg
        self.call_later, self.cancel, self.fault, self.clock = call_later, cancel, fault, clock
        self.on_since: dict[str, float] = {}
        self.busy: dict[str, int] = {}  # zone -> plays holding it (a suspended play still holds its zones)
        self.forced: set[str] = set()
        self._off_timers: dict[str, Any] = {}
        for z in zones:
            gpio.setup_output(z["relay_pin"], active_high=z["active_high"], initial=False)
            if z.get("feedback_pin") is not None:
                gpio.setup_input(z["feedback_pin"], active_high=z["feedback_active_high"])

    def names(self, zones: list[str] | None) -> list[str]:
        return list(self.zones) if not zones else [z for z in zones if z in self.zones]

    def engage(self, zones: list[str] | None, *, hold: bool = True) -> float:
        """Relays on for a programme; seconds until every one of them has warmed up. `hold=False` when the
        play already holds them (a preempted play starting again): one `release` per holding `engage`."""
        wait = 0.0
        now = self.clock()
        for name in self.names(zones):
            self.cancel(self._off_timers.pop(name, None))
            if hold:
                self.busy[name] = self.busy.get(name, 0) + 1
            if name not in self.on_since:
                self._switch(name, True)
            wait = max(wait, self.on_since[name] + self.cfg["warmup_s"] - now)
        return max(0.0, wait)

    def release(self, zones: list[str] | None) -> None:
        """The programme on these zones ended: off after hold_s unless something else needs them."""
        for name in self.names(zones):
            left = self.busy.get(name, 0) - 1
            if left > 0:
                self.busy[name] = left
                continue  # another play (sounding or preempted) still holds this zone
            self.busy.pop(name, None)
            if name in self.on_since and name not in self.forced and name not in self._off_timers:
                self._off_timers[name] = self.call_later(self.cfg["hold_s"], lambda n=name: self._hold_over(n))

    def _hold_over(self, name: str) -> None:
        self._off_timers.pop(name, None)
        if name not in self.busy and name not in self.forced:
            self._switch(name, False)

    def force(self, on: bool, zones: list[str] | None) -> list[str]:
        """The `amp` command: on stays on until `amp off`; off never cuts a programme in progress."""
        names = self.names(zones)
        for name in names:
            if on:
                self.forced.add(name)
                self.cancel(self._off_timers.pop(name, None))
                if name not in self.on_since:
                    self._switch(name, True)
            else:
                self.forced.discard(name)
                if name not in self.busy and name in self.on_since:
                    self.cancel(self._off_timers.pop(name, None))
                    self._switch(name, False)
        return names

    def all_off(self) -> None:
        for name in list(self.on_since):
            self._switch(name, False)

    def _switch(self, name: str, on: bool) -> None:
        zone = self.zones[name]
        self.gpio.write(zone["relay_pin"], on)
        log.info("amplifier %s %s", name, "on" if on else "off")
        if on:
            self.on_since[name] = self.clock()
            if zone.get("feedback_pin") is not None:
                self.call_later(self.cfg["feedback_s"], lambda: self._check_feedback(name))
        else:
            self.on_since.pop(name, None)

    def _check_feedback(self, name: str) -> None:
        zone = self.zones[name]
        if name not in self.on_since:
            return
        if self.gpio.read(zone["feedback_pin"]):
            self.fault("amp_no_feedback", None)
        else:
            self.fault("amp_no_feedback", Msg("zone %(zone)s: relay on GPIO %(relay)s switched on but its feedback "
                                              "on GPIO %(feedback)s stayed off", zone=name, relay=zone["relay_pin"],
                                              feedback=zone["feedback_pin"]))

    def state(self) -> dict:
        return {"on": bool(self.on_since), "zones": {n: n in self.on_since for n in self.zones}}
