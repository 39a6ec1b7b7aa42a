"""`pyaudio` backend: PortAudio output; files and streams decoded by ffmpeg (what pydub uses too)."""

from __future__ import annotations

from .base import Audio, File, Output, Stream, Track
from .ffmpeg import FfmpegTrack, stream_leveller
from .portaudio import PortAudioOutput


class Backend(Audio):
    name = "pyaudio"

    def make_output(self) -> Output:
        return PortAudioOutput(self.cfg["device"])

    def decode(self, media: File | Stream, start_s: float) -> Track:
        if isinstance(media, Stream):
            return FfmpegTrack(media.url, start_s, stream=True, timeout_s=self.cfg["stall_s"],
                               filters=stream_leveller(self.cfg["loudness_target_lufs"], self.cfg["true_peak_db"]))
        return FfmpegTrack(media.path, start_s)
