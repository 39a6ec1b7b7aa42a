"""A microphone for the agent in tests: ALSA's `file` plugin captures from a raw file (`infile`, a "virtual mic").

    pcm.mic { type file; slave.pcm "null"; file "/dev/null"; infile "HOME/mic.raw"; format "raw" }

The plugin reads `infile` as raw samples in whatever format the application opened the device with; the agent
asks for 48 kHz mono S16 first (drivers/audio/capture.py RATES), which `null` accepts, so the file holds 48 kHz mono
S16LE. The device is opened afresh for each zone, so every recording starts at the file's beginning. Reads
are not paced (`null` is not a clock): a recording returns at once, holding what the file holds.
`feed` replaces the file atomically, so the next recording hears the new sound.
"""

from __future__ import annotations

import os

import numpy as np

from .tap import Tap

RATE = 48000
FULL_SCALE = 32767


def tone(level_dbfs: float = -20.0, noise_dbfs: float = -50.0, seconds: float = 20.0, freq: float = 1000.0,
         seed: int = 1) -> np.ndarray:
    """A 1 kHz tone as a microphone hears it: a sine of `level_dbfs` (0 dBFS = a full-scale sine) over noise."""
    t = np.arange(int(seconds * RATE)) / RATE
    sine = 10 ** (level_dbfs / 20) * np.sin(2 * np.pi * freq * t)
    return sine + noise(noise_dbfs, seconds, seed)


def noise(level_dbfs: float = -50.0, seconds: float = 20.0, seed: int = 2) -> np.ndarray:
    """A quiet room: white noise whose RMS is `level_dbfs` below a full-scale sine's."""
    sigma = 10 ** (level_dbfs / 20) / np.sqrt(2)
    return np.random.default_rng(seed).normal(0.0, sigma, int(seconds * RATE))


class Mic:
    def __init__(self, tap: Tap, name: str = "mic"):
        """Add capture device `name` to the tap's .asoundrc (the agent's HOME); it starts out hearing a quiet room."""
        self.name = name
        self.raw = tap.home / f"{name}.raw"
        self.feed(noise())
        rc = tap.home / ".asoundrc"
        rc.write_text(rc.read_text() + f'pcm.{name} {{ type file; slave.pcm "null"; file "/dev/null"; '
                      f'infile "{self.raw}"; format "raw" }}\n')

    def feed(self, signal: np.ndarray) -> None:
        """What the microphone hears from now on (floats in full-scale units)."""
        pcm = np.clip(np.round(signal * FULL_SCALE), -32768, 32767).astype("<i2")
        tmp = self.raw.with_suffix(".tmp")
        tmp.write_bytes(pcm.tobytes())
        os.replace(tmp, self.raw)
