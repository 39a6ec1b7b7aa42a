"""GPIO through the Linux character device with libgpiod v2 (boards other than the Raspberry Pi)."""

from __future__ import annotations

import threading
from datetime import timedelta

import gpiod  # libgpiod v2 Python bindings (PyPI `gpiod>=2`)
from gpiod.line import Bias, Direction, Edge, Value

from .base import EdgeCallback, Gpio

BIAS = {"up": Bias.PULL_UP, "down": Bias.PULL_DOWN, None: Bias.AS_IS}


class Backend(Gpio):
    name = "gpiod"

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.chip = cfg.get("chip", "/dev/gpiochip0")
        self.requests: dict[int, gpiod.LineRequest] = {}
        self.outputs: set[int] = set()
        self._stop = threading.Event()

    def setup_output(self, pin: int, *, active_high: bool = True, initial: bool = False) -> None:
        self.outputs.add(pin)
        self.requests[pin] = gpiod.request_lines(self.chip, consumer="loa-agent", config={
            pin: gpiod.LineSettings(direction=Direction.OUTPUT, active_low=not active_high,
                                    output_value=Value.ACTIVE if initial else Value.INACTIVE)})

    def write(self, pin: int, active: bool) -> None:
        self.requests[pin].set_value(pin, Value.ACTIVE if active else Value.INACTIVE)

    def setup_input(self, pin: int, *, active_high: bool = True, pull: str | None = None,
                    on_change: EdgeCallback | None = None, debounce_ms: int = 50) -> None:
        req = gpiod.request_lines(self.chip, consumer="loa-agent", config={
            pin: gpiod.LineSettings(direction=Direction.INPUT, active_low=not active_high, bias=BIAS[pull],
                                    edge_detection=Edge.BOTH if on_change else Edge.NONE,
                                    debounce_period=timedelta(milliseconds=debounce_ms))})
        self.requests[pin] = req
        if on_change:
            threading.Thread(target=self._watch, args=(pin, req, on_change), name=f"gpio-{pin}", daemon=True).start()

    def _watch(self, pin: int, req: gpiod.LineRequest, on_change: EdgeCallback) -> None:
        while not self._stop.is_set():
            if req.wait_edge_events(timedelta(seconds=1)):
                req.read_edge_events()
                on_change(pin, self.read(pin))  # the settled level, not each bounce

    def read(self, pin: int) -> bool:
        return self.requests[pin].get_value(pin) == Value.ACTIVE

    def close(self) -> None:
        self._stop.set()
        for pin in self.outputs:
            self.requests[pin].set_value(pin, Value.INACTIVE)
        for req in self.requests.values():
            req.release()
        self.requests.clear()
