"""Background work runs at a lower CPU priority than the urgent path (docs/reliability.md, "A Pi-class CPU
budget"): the Screen worker that renders frames, the ffmpeg that decodes a programme, and a decoder that is
left for a siren is killed without the caller waiting for it to die."""

from __future__ import annotations

import os
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from support.media_files import sine_file

from drivers.audio.ffmpeg import FfmpegTrack
from drivers.display import render
from drivers.display.png import Backend as Png
from drivers.display.screen import Screen
from drivers.priority import NICE


def nice_of(stat: Path) -> int:
    """Field 19 of /proc/.../stat (after the command name, which may hold spaces)."""
    return int(stat.read_text().rsplit(")", 1)[1].split()[16])


def test_the_screen_worker_renders_at_a_lower_priority(tmp_path):
    screen = Screen(Png({"png_dir": str(tmp_path)}), render.Style(), clock=time.time, tz=ZoneInfo("UTC"),
                    report=lambda r: None)
    screen.start()
    try:
        stat = Path(f"/proc/self/task/{screen._thread.native_id}/stat")
        deadline = time.monotonic() + 5
        while nice_of(stat) != NICE and time.monotonic() < deadline:
            time.sleep(0.01)  # the thread lowers itself first thing: nothing to wait on
        assert nice_of(stat) == NICE
        assert nice_of(Path(f"/proc/self/task/{os.getpid()}/stat")) == 0  # the caller (the core) is untouched
    finally:
        screen.close()


def test_a_decoder_runs_at_a_lower_priority_and_is_left_without_waiting(tmp_path):
    track = FfmpegTrack(str(sine_file(tmp_path / "a.mp3", (440, 30))))
    assert track.proc is not None
    assert nice_of(Path(f"/proc/{track.proc.pid}/stat")) == NICE
    assert track.read(3840, 5.0)  # it decodes
    t = time.monotonic()
    track.close()
    assert track.read(3840, 5.0) is None  # the sink moves on at once: no waiting for the decoder to die
    assert time.monotonic() - t < 0.5  # killed, not waited for (a loose bound: a loaded test box)
    deadline = time.monotonic() + 5
    while track.proc.returncode is None and time.monotonic() < deadline:
        time.sleep(0.01)  # reaped by its own thread
    assert track.proc.returncode == -9
