"""Generated sounds, rendered once with pydub and kept in memory as PCM (the urgent path never waits).

- siren: a two-tone hi-lo (650/900 Hz, 0.45 s each), as fire and civil-defence sirens use: unmistakable;
- chime: a three-note descending chime that announces a bulletin;
- test: a steady 1 kHz tone for technicians and the self-test.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from drivers.audio import Pcm
from drivers.audio.base import CHANNELS, RATE

NAMES = ("siren", "chime", "test")
VERSION = 1  # bump when a tone's design changes, so cached renders are redone
_cycles: dict[str, bytes] = {}
_dir: Path | None = None


def use_cache(directory: Path) -> None:
    """Keep rendered cycles on disk too: later starts read them back without importing pydub (RSS)."""
    global _dir
    _dir = Path(directory)


def _segment(freq: float, ms: int, volume_db: float):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydub warns when ffmpeg is absent; generators do not need it
        from pydub.generators import Sine
    return Sine(freq, sample_rate=RATE, bit_depth=16).to_audio_segment(duration=ms, volume=volume_db)


def cycle(name: str) -> bytes:
    """One cycle of a tone as S16LE stereo 48 kHz; looped to any duration by the sink."""
    if name not in _cycles:
        path = _dir / f"{name}.v{VERSION}.pcm" if _dir else None
        if path and path.exists():
            _cycles[name] = path.read_bytes()
        else:
            _cycles[name] = render(name)
            if path:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(_cycles[name])
                os.replace(tmp, path)
    return _cycles[name]


def render(name: str) -> bytes:
    if name == "siren":
        seg = _segment(650, 450, -4).fade_in(5).fade_out(5) + _segment(900, 450, -4).fade_in(5).fade_out(5)
    elif name == "chime":
        seg = _segment(1046.5, 300, -8).fade_out(280) + _segment(880, 300, -8).fade_out(280) + \
            _segment(698.5, 600, -8).fade_out(580)
    elif name == "test":
        seg = _segment(1000, 1000, -6)
    else:
        raise ValueError(f"unknown tone {name!r} (one of {', '.join(NAMES)})")
    return seg.set_channels(CHANNELS).raw_data


def tone(name: str, duration_s: float | None = None) -> Pcm:
    """The tone as PCM; a chime plays once unless a duration is asked for."""
    data = cycle(name)
    if duration_s is None and name == "chime":
        return Pcm(data)
    return Pcm(data, loop_s=duration_s if duration_s is not None else 5.0)


def warm_up() -> None:
    """The alert tones (a drill opens with the chime) in memory; the test tone is read when a test plays."""
    for name in ("siren", "chime"):
        cycle(name)
