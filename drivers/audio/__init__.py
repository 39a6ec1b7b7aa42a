"""Audio backends: vlc (libVLC decodes), pyaudio (ffmpeg decodes), null (no sound card, keeps time).

All of them play through one Sink that owns the output (PortAudio, or nothing
for `null`), so preemption, volume and the "first sample" moment are the same
whichever decoder is used.
"""

from .base import Audio, File, Media, Pcm, Stream

__all__ = ["Audio", "File", "Media", "Pcm", "Stream"]
