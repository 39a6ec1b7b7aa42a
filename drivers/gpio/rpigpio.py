"""GPIO on a Raspberry Pi through RPi.GPIO (BCM numbering)."""

from __future__ import annotations

from RPi import GPIO  # only importable on a Pi: this module is loaded only when the config names it

from .base import EdgeCallback, Gpio

PULL = {"up": GPIO.PUD_UP, "down": GPIO.PUD_DOWN, None: GPIO.PUD_OFF}


class Backend(Gpio):
    name = "rpigpio"

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        GPIO.setwarnings(False)
        GPIO.setmode(GPIO.BCM)
        self.active_high: dict[int, bool] = {}
        self.outputs: set[int] = set()

    def _level(self, pin: int, active: bool) -> int:
        return GPIO.HIGH if active == self.active_high[pin] else GPIO.LOW

    def setup_output(self, pin: int, *, active_high: bool = True, initial: bool = False) -> None:
        self.active_high[pin] = active_high
        self.outputs.add(pin)
        GPIO.setup(pin, GPIO.OUT, initial=self._level(pin, initial))

    def write(self, pin: int, active: bool) -> None:
        GPIO.output(pin, self._level(pin, active))

    def setup_input(self, pin: int, *, active_high: bool = True, pull: str | None = None,
                    on_change: EdgeCallback | None = None, debounce_ms: int = 50) -> None:
        self.active_high[pin] = active_high
        GPIO.setup(pin, GPIO.IN, pull_up_down=PULL[pull])
        if on_change:
            GPIO.add_event_detect(pin, GPIO.BOTH, callback=lambda ch: on_change(ch, self.read(ch)),
                                  bouncetime=debounce_ms)

    def read(self, pin: int) -> bool:
        return bool(GPIO.input(pin)) == self.active_high[pin]

    def close(self) -> None:
        for pin in self.outputs:
            GPIO.output(pin, self._level(pin, False))
        GPIO.cleanup(list(self.active_high))
