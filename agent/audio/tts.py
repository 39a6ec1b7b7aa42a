"""Text to speech behind one small interface; espeak-ng's Vietnamese voice renders it today.

Vietnamese text is first read into words by `reading.Reader` (numbers, dates, abbreviations: what a news
reader would say), then rendered to a WAV once, cached by a hash of (engine, voice, those words), and
loaded as PCM, so a bulletin repeated three times is synthesised once and a lexicon change re-renders it.
A better engine (e.g. a neural Vietnamese voice) fits behind `Engine`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from drivers.audio import Pcm
from drivers.audio.base import CHANNELS, RATE

if TYPE_CHECKING:
    from .reading import Reader

MAX_TEXT = 5000


class TtsError(RuntimeError):
    pass


class Engine:
    name = "base"

    def render(self, text: str, lang: str, out: Path) -> None:
        """Write speech for `text` to the WAV file `out`."""
        raise NotImplementedError


class EspeakNg(Engine):
    name = "espeak-ng"
    VOICES = {"vi": "vi", "vi-vn": "vi", "en": "en"}

    def __init__(self, rate_wpm: int = 150):
        self.rate = rate_wpm

    def render(self, text: str, lang: str, out: Path) -> None:
        import shutil
        import subprocess

        exe = shutil.which("espeak-ng")
        if not exe:
            raise TtsError("espeak-ng is not installed (apt-get install espeak-ng)")
        voice = self.VOICES.get(lang.lower(), lang)
        proc = subprocess.run([exe, "-v", voice, "-s", str(self.rate), "-w", str(out), "--stdin"],
                              input=text.encode(), capture_output=True, timeout=120)
        if proc.returncode != 0 or not out.exists():
            raise TtsError(f"espeak-ng failed: {proc.stderr.decode(errors='replace').strip()[:200]}")


class Speaker:
    def __init__(self, cache_dir: Path, engine: Engine | None = None,
                 reader: Reader | Callable[[], Reader] | None = None):
        self.dir = Path(cache_dir)
        self.engine = engine or EspeakNg()
        # A Reader, or how to get one when speech is needed (the daemon's: the idle agent carries no lexicon);
        # None: the built-in lexicon alone.
        self.reader = reader

    def words(self, text: str, lang: str = "vi") -> str:
        """What the engine is given: Vietnamese read into words by the Reader; other languages as they are."""
        from .reading import reader_for, reads

        if not reads(lang):
            return text
        if self.reader is None:
            self.reader = reader_for({})
        reader = self.reader() if callable(self.reader) else self.reader
        return reader.read(text)

    def key(self, text: str, lang: str) -> str:
        return hashlib.sha256(f"{self.engine.name}\0{lang}\0{text}".encode()).hexdigest()

    def speak(self, text: str, lang: str = "vi") -> Pcm:
        """PCM for the text (rendered on a miss). Slow on a miss: call it off the core thread."""
        if not text.strip():
            raise TtsError("nothing to say: the text is empty")
        if len(text) > MAX_TEXT:
            raise TtsError(f"text longer than {MAX_TEXT} characters")
        words = self.words(text, lang)
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{self.key(words, lang)}.wav"
        if not path.exists():
            import tempfile  # speech is rendered rarely: keep these out of the idle agent (RSS)

            fd, tmp = tempfile.mkstemp(dir=self.dir, suffix=".tmp")
            os.close(fd)
            try:
                self.engine.render(words, lang, Path(tmp))
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        return load_wav(path)


def load_wav(path: Path) -> Pcm:
    """A WAV as S16LE stereo 48 kHz, converted with pydub when it is not already."""
    import wave

    with wave.open(str(path), "rb") as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, CHANNELS, 2):
            return Pcm(w.readframes(w.getnframes()), origin=str(path))
    from pydub import AudioSegment

    seg = AudioSegment.from_wav(path).set_frame_rate(RATE).set_channels(CHANNELS).set_sample_width(2)
    return Pcm(seg.raw_data, origin=str(path))  # origin: its loudness is kept beside it (audio/loudness.py)
