"""Microphone capture (PyAudio on an ALSA capture device), for the self-test's acoustic check."""

from __future__ import annotations

import threading
from array import array
from typing import Any

from .portaudio import _quiet_stderr

BLOCK_S = 0.1  # read in blocks this long, so a stop is noticed within one
RATES = ((48000, 1), (48000, 2), (44100, 1), (44100, 2))  # what the microphone is asked for, in order


def record(device: str, stop: threading.Event, max_s: float) -> tuple[array, int]:
    """Record mono S16 from an ALSA capture device (PyAudio) until `stop` is set or `max_s` have been read."""
    import pyaudio

    with _quiet_stderr():  # PortAudio's ALSA probing prints its complaints to fd 2
        pa = pyaudio.PyAudio()
    try:
        index = _input_index(pa, device)
        stream, error = None, None
        for rate, channels in RATES:
            try:
                stream = pa.open(format=pyaudio.paInt16, channels=channels, rate=rate, input=True,
                                 input_device_index=index, frames_per_buffer=int(rate * BLOCK_S))
                break
            except (OSError, ValueError) as e:
                error = e
        if stream is None:
            raise OSError(f"cannot open {device!r} for capture: {error}")
        samples, limit, block = array("h"), int(max_s * rate), int(rate * BLOCK_S)
        try:
            while len(samples) < limit and not stop.is_set():
                chunk = array("h", stream.read(block, exception_on_overflow=False))
                samples.extend(chunk[0::channels] if channels > 1 else chunk)
        finally:
            stream.close()
        return samples, rate
    finally:
        pa.terminate()


def _input_index(pa: Any, device: str) -> int | None:
    if device == "default":
        return None
    inputs = [(i, pa.get_device_info_by_index(i)) for i in range(pa.get_device_count())]
    inputs = [(i, d["name"]) for i, d in inputs if d.get("maxInputChannels", 0) > 0]
    for match in (lambda name: name == device, lambda name: f"({device})" in name, lambda name: device in name):
        for i, name in inputs:
            if match(name):
                return i
    raise OSError(f"no capture device named {device!r} (inputs: {', '.join(n for _, n in inputs) or 'none'})")
