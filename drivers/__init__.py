"""Driver layer: hardware behind interfaces, one backend module per vendor library, chosen by name.

As with gpiozero's pin factories, a backend is imported only when the config
names it, and an unknown or unloadable name is one loud error, never a silent
fallback to another backend.
"""

from __future__ import annotations

import importlib
from typing import Any

from drivers.errors import DriverError

BACKENDS: dict[str, tuple[str, ...]] = {
    "audio": ("vlc", "pyaudio", "null"),
    "gpio": ("rpigpio", "gpiod", "sim"),
    "display": ("none", "png", "framebuffer", "vlc"),
}


def load(kind: str, name: str) -> Any:
    """The backend class of `drivers/<kind>/<name>.py` (its `Backend` attribute)."""
    choices = BACKENDS.get(kind, ())
    if name not in choices:
        raise DriverError(f"{kind}.backend: unknown backend {name!r} (choices: {', '.join(choices)})")
    try:
        module = importlib.import_module(f"drivers.{kind}.{name}")
    except ImportError as e:
        raise DriverError(f"{kind}.backend: {name} cannot be loaded on this machine: {e} "
                          f"(install the '{name}' extra, or choose another backend)") from e
    return module.Backend
