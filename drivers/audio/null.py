"""`null` backend: no sound card. Plays nothing, keeps real time (files and streams are still decoded)."""

from __future__ import annotations

from .base import Audio, NullOutput, Output
from .pyaudio import Backend as _Decoding


class Backend(_Decoding, Audio):
    name = "null"

    def make_output(self) -> Output:
        return NullOutput()
