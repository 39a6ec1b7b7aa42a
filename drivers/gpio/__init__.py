"""GPIO backends: rpigpio (RPi.GPIO), gpiod (libgpiod v2, non-Pi boards), sim (no hardware)."""

from .base import Gpio

__all__ = ["Gpio"]
