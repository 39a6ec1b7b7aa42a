"""The real output: one PortAudio (PyAudio) stream on the ALSA device, opened ahead and kept open."""

from __future__ import annotations

import logging
import os

from .base import CHANNELS, RATE, Output

log = logging.getLogger("drivers.audio")


class PortAudioOutput(Output):
    def __init__(self, device: str = "default", frames_per_buffer: int = 480):
        self.device = device
        self.frames = frames_per_buffer
        self.pa = None
        self.stream = None
        self.running = False

    def _device_index(self) -> int | None:
        if self.device == "default":
            return None
        for i in range(self.pa.get_device_count()):
            if self.pa.get_device_info_by_index(i)["name"] == self.device:
                return i
        raise OSError(f"no audio device named {self.device!r}")

    def open(self) -> None:
        if self.stream is not None:
            return
        import pyaudio

        if self.pa is None:
            # PortAudio probes every ALSA plugin and prints its complaints to fd 2: keep the journal clean.
            with _quiet_stderr():
                self.pa = pyaudio.PyAudio()
        try:
            self.stream = self.pa.open(format=pyaudio.paInt16, channels=CHANNELS, rate=RATE, output=True,
                                       frames_per_buffer=self.frames, output_device_index=self._device_index(),
                                       start=False)
        except (OSError, ValueError) as e:  # PyAudio raises OSError for ALSA errors
            raise OSError(str(e)) from None
        self.running = False

    def write(self, chunk: bytes) -> None:
        if self.stream is None:
            raise OSError("audio output is not open")
        if not self.running:
            self.stream.start_stream()
            self.running = True
        self.stream.write(chunk, exception_on_underflow=False)

    def idle(self) -> None:
        if self.stream is not None and self.running:
            self.stream.stop_stream()  # drains what is buffered; the device stays open for the next urgent play
            self.running = False

    def close(self) -> None:
        if self.stream is not None:
            try:
                self.stream.close()
            except OSError:
                pass
            self.stream = None
        self.running = False


def probe(device: str) -> None:
    """Open and close `device` as the agent will (`loa doctor`); OSError says why it cannot."""
    out = PortAudioOutput(device)
    try:
        out.open()
    finally:
        out.close()
        if out.pa is not None:
            out.pa.terminate()


class _quiet_stderr:
    def __enter__(self) -> None:
        self.saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)

    def __exit__(self, *exc: object) -> None:
        os.dup2(self.saved, 2)
        os.close(self.saved)
