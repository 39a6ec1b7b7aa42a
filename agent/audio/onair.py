"""The on-air check (docs/sound.md): where a microphone or a line-level monitor input is configured
(`selftest.mic_device`), the first seconds of every programme and of the siren are recorded and their level
compared with what the calibration (`loa selftest --calibrate`, the 1 kHz test tone heard per zone) says
this programme should give. A horn full of water, a cut cable or a dead amplifier leaves the box playing to
nobody: after RAISE_AFTER silent programmes in a row on a zone the fault `speaker_silent` is raised, and one
programme heard on every silent zone clears it.

Nothing records while nothing plays; the recording runs on a worker thread of its own (PyAudio, blocking
reads) and posts its figure to the core thread, which alone keeps the per-zone counts.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers.audio.base import audioop

from ..i18n import Msg
from ..messages import Call

if TYPE_CHECKING:
    from ..runtime import Runtime
    from .arbiter import Play

log = logging.getLogger("agent.onair")

FAULT = "speaker_silent"
LISTEN_S = 4.0  # the first seconds of a programme that are heard
MIN_HEARD_S = 1.0  # a shorter recording (a programme cut at once, a failing microphone) proves nothing
BLOCK_S = 0.1
PERCENTILE = 0.9  # the level of a recording: its 90th-percentile 100 ms block, so pauses in speech do not count
BELOW_EXPECTED_DB = 12.0  # heard when within this of what the calibration predicts ...
ABOVE_ROOM_DB = 6.0  # ... and this far over the room noise measured at calibration
RAISE_AFTER = 2  # silent programmes in a row to raise; one heard clears
# R128 loudness of what the calibration heard (tones.test, a -6 dBFS 1 kHz sine) and of the siren, measured
# with audio/loudness.py; a levelled programme sounds at audio.loudness_target_lufs.
TEST_TONE_LUFS = -6.0
SIREN_LUFS = -4.4


def level_dbfs(samples: array | list[int], rate: int) -> float:
    """The recording's level in dBFS (a full-scale sine is 0, as the calibration's): its loud blocks'."""
    n = int(rate * BLOCK_S)
    data = array("h", samples).tobytes()
    levels = []
    for start in range(0, len(data) - 2 * n + 1, 2 * n):
        rms = audioop.rms(data[start:start + 2 * n], 2)
        levels.append(20 * math.log10(math.sqrt(2) * rms / 32768.0) if rms > 0 else -120.0)
    if not levels:
        return -120.0
    levels.sort()
    return levels[min(len(levels) - 1, int(PERCENTILE * len(levels)))]


@dataclass(eq=False)
class _Listen:
    play_id: str
    zones: list[str]
    volume: int
    loudness: float  # LUFS the programme is expected to sound at
    stop: threading.Event = field(default_factory=threading.Event)
    cut: bool = False  # silenced before the window was heard: no verdict


class OnAir:
    def __init__(self, rt: Runtime, calibration: Path):
        self.rt = rt
        self.calibration = calibration
        self.silent: dict[str, int] = {}  # zone -> silent programmes in a row
        self.down: set[str] = set()  # zones judged silent (the fault is up while any is)
        self._listens: dict[int, _Listen] = {}  # id(play) -> its recording in progress

    @property
    def mic(self) -> str | None:
        return self.rt.cfg["selftest"].get("mic_device")

    def started(self, play: Play, zones: list[str], volume: int) -> None:
        """Core thread, at a programme's first sample: listen to its first seconds."""
        src = play.source
        siren = src.get("kind") == "tone" and src.get("name") == "siren"
        tone = src.get("kind") == "tone" or play.origin == "selftest"
        if not self.mic or (tone and not siren) or volume <= 0 or not zones or id(play) in self._listens:
            return
        target = float(self.rt.cfg["audio"]["loudness_target_lufs"])
        listen = _Listen(play.id, list(zones), volume, SIREN_LUFS if siren else target)
        self._listens[id(play)] = listen
        threading.Thread(target=self._record, args=(id(play), listen, self.mic), name="onair", daemon=True).start()

    def silenced(self, play: Play) -> None:
        """Core thread: the play stopped sounding (ended, preempted, stopped); its recording stops too."""
        listen = self._listens.pop(id(play), None)
        if listen is not None:
            listen.cut = True
            listen.stop.set()

    def _record(self, key: int, listen: _Listen, mic: str) -> None:
        from drivers.audio.capture import record

        try:
            samples, rate = record(mic, listen.stop, LISTEN_S)
            heard: Any = (level_dbfs(samples, rate), len(samples) / rate)
        except Exception as e:  # a microphone that fails says nothing about the horn
            heard = f"microphone {mic!r}: {e}"
        reference = self._reference()
        self.rt.post(Call(lambda: self._verdict(key, listen, heard, reference)))

    def _reference(self) -> dict:
        try:
            ref = json.loads(self.calibration.read_text())
        except (OSError, ValueError):
            return {}
        return ref.get("zones", {}) if ref.get("mic_device") == self.mic else {}

    def _verdict(self, key: int, listen: _Listen, heard: Any, reference: dict) -> None:
        if self._listens.get(key) is listen:
            del self._listens[key]
        if isinstance(heard, str):
            log.warning("on-air check of %s not made: %s", listen.play_id, heard)
            return
        lvl, seconds = heard
        if seconds < MIN_HEARD_S or (listen.cut and seconds < LISTEN_S - BLOCK_S):
            return  # it stopped before its first seconds were heard
        zones = [z for z in listen.zones if z in reference]
        if not zones:
            log.info("on-air check of %s: no calibration for %s (loa selftest --calibrate)", listen.play_id,
                     ", ".join(listen.zones))
            return
        # What the calibration predicts: the tone's level there, moved by the volume (the gain is
        # (volume/100)^2) and by how much louder or quieter this programme is than the test tone.
        expected = max(reference[z]["level_dbfs"] + 40 * math.log10(listen.volume / reference[z]["volume"])
                       for z in zones) + listen.loudness - TEST_TONE_LUFS
        room = max(reference[z].get("rest_dbfs", -120.0) for z in zones)
        ok = lvl >= expected - BELOW_EXPECTED_DB and lvl >= room + ABOVE_ROOM_DB
        log.info("on-air %s on %s: %.1f dBFS heard, about %.1f expected (room %.1f): %s", listen.play_id,
                 ", ".join(zones), lvl, expected, room, "sound" if ok else "SILENT")
        # One microphone hears the zones that play together as one: a silent programme counts against each,
        # a heard one for each (the zone-by-zone self-test tells them apart).
        for z in zones:
            if ok:
                self.silent[z] = 0
                self.down.discard(z)
            else:
                self.silent[z] = self.silent.get(z, 0) + 1
                if self.silent[z] >= RAISE_AFTER:
                    self.down.add(z)
        if self.down:
            self.rt.faults.raise_(FAULT, Msg("zone %(zones)s: no sound heard in the first %(s)g s of %(n)d programmes "
                                             "in a row (%(level).1f dBFS, about %(expected).1f expected)",
                                             zones=", ".join(sorted(self.down)), s=LISTEN_S, n=RAISE_AFTER, level=lvl,
                                             expected=expected))
        else:
            self.rt.faults.clear(FAULT)
