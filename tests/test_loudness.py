"""One loudness (docs/sound.md) heard at the ALSA tap: files of the same content recorded 20 dB apart, and
speech from espeak-ng, come out at `audio.loudness_target_lufs`; a file not measured yet plays at once (at
unity) and is measured meanwhile. What came out is measured with the same EBU R128 meter (ffmpeg's ebur128)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
from support.agentproc import eventually
from support.media_files import cache_file
from support.tap import BLOCK, blocks

from agent.audio.loudness import measure as r128
from agent.audio.loudness import read_sidecar, sidecar

TARGET = -16.0
HEARD_S = 5.0  # seconds of each play measured at the tap


def programme(path: Path, seconds: float, gain_db: float) -> Path:
    """Music-like content (a tone over pink noise, swelling twice a second), `gain_db` louder than the base."""
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"sine=frequency=440:duration={seconds}:sample_rate=44100", "-f", "lavfi", "-i",
                    f"anoisesrc=d={seconds}:c=pink:a=0.1:r=44100:seed=7", "-filter_complex",
                    f"[0][1]amix=inputs=2,tremolo=f=2:d=0.6,volume={gain_db}dB", "-ac", "2", "-b:a", "64k",
                    str(path)], check=True)
    return path


def heard(tap, mark: int, seconds: float = HEARD_S) -> tuple[float, int]:
    """(R128 loudness of `seconds` of what reached the tap from its first sound after `mark`, that offset)."""
    def onset() -> list[int]:  # the first 10 ms block over -60 dBFS (a quiet file is under the tap's ACTIVE_RMS)
        rms, _ = blocks(tap.left(mark))
        idx = np.flatnonzero(rms > 33)
        return [int(idx[0]) * BLOCK * 4] if len(idx) else []

    start = mark + eventually(onset, timeout=30, what="sound at the tap")[0]
    n = int(seconds * 48000) * 4
    eventually(lambda: tap.mark() >= start + n, timeout=30 + seconds, what=f"{seconds} s at the tap")
    with tap._cond:
        data = bytes(tap.data[start:start + n])
    return r128(data).lufs, start


def restart(agent, province, tap) -> None:
    agent.stop()
    mark = province.mark()
    agent.start(**tap.env)
    province.status("online", after=mark)


def play(province, src: dict, **params) -> str:
    return province.send("play", {"source": src, "volume": 100, "level": "priority", **params})


def test_files_20_db_apart_play_within_2_db_and_an_unmeasured_one_plays_at_once(start_audio_agent, province, tap,
                                                                                 tmp_path):
    agent = start_audio_agent("pyaudio")
    # Ten minutes each: measuring one takes seconds, which the first play must not wait for.
    quiet = cache_file(agent, programme(tmp_path / "quiet.mp3", 600, -2.0))
    loud = cache_file(agent, programme(tmp_path / "loud.mp3", 600, 18.0))
    cache = agent.state_dir / "cache"
    level: dict[str, list[float]] = {}
    for name, src in (("quiet", quiet), ("loud", loud)):
        path = cache / src["sha256"]
        assert read_sidecar(path) is None
        mark = tap.mark()
        jti = play(province, src)
        start = province.event("play.start", pred=lambda e, j=jti: e["data"]["id"] == j, timeout=30)
        # It started before its measurement was done: no sidecar yet when its first sample sounded.
        assert not sidecar(path).exists() or sidecar(path).stat().st_mtime > start["data"]["started"], name
        before, _ = heard(tap, mark)
        province.done(province.send("stop", {"id": jti}))
        province.done(jti)
        m = eventually(lambda p=path: read_sidecar(p), timeout=180, what=f"{name} measured in the background")
        assert abs(before - m.lufs) <= 1.0, (name, before, m)  # the unmeasured play was at unity gain
        mark = tap.mark()
        jti = play(province, src)
        after, _ = heard(tap, mark)
        province.done(province.send("stop", {"id": jti}))
        province.done(jti)
        level[name] = [before, after]
    (q0, q1), (l0, l1) = level["quiet"], level["loud"]
    print(f"at the tap (LUFS, unmeasured -> measured): quiet {q0:.1f} -> {q1:.1f}, loud {l0:.1f} -> {l1:.1f}")
    assert 19.0 <= l0 - q0 <= 21.0, level  # as recorded: 20 dB apart
    assert abs(l1 - q1) <= 2.0, level  # as played: within 2 dB (the MUST)
    assert abs(q1 - TARGET) <= 1.5 and abs(l1 - TARGET) <= 1.5, level
    stored = json.loads(sidecar(cache / quiet["sha256"]).read_text())
    assert set(stored) == {"v", "lufs", "true_peak_db"}

    # A corrupt measurement only means "measure again"; the play still starts at once.
    sidecar(cache / loud["sha256"]).write_text("{not json")
    restart(agent, province, tap)
    mark = tap.mark()
    jti = play(province, loud)
    again, _ = heard(tap, mark, 2.0)
    province.done(province.send("stop", {"id": jti}))
    assert abs(again - l0) <= 1.5, (again, level)  # unity until it is measured again
    assert eventually(lambda: read_sidecar(cache / loud["sha256"]), timeout=180)


def test_speech_plays_at_the_target_and_its_measurement_survives_a_restart(start_audio_agent, province, tap):
    agent = start_audio_agent("pyaudio")
    text = ("Thông báo của Ủy ban nhân dân xã. Ngày mai có lịch tiêm chủng cho trẻ em tại trạm y tế xã. "
            "Đề nghị các gia đình đưa trẻ đến đúng giờ.")
    src = {"kind": "tts", "text": text, "lang": "vi"}
    mark = tap.mark()
    jti = province.send("play", {"source": src, "volume": 100})  # a normal programme: measured before it plays
    lufs, _ = heard(tap, mark, 6.0)
    assert province.done(jti, timeout=60)["result"]["completed"] is True
    print(f"speech at the tap: {lufs:.1f} LUFS")
    assert abs(lufs - TARGET) <= 1.5, lufs
    wavs = list((agent.state_dir / "tts").glob("*.wav"))
    assert len(wavs) == 1 and read_sidecar(wavs[0]) is not None
    stored = sidecar(wavs[0]).stat().st_mtime

    restart(agent, province, tap)
    mark = tap.mark()
    t0 = time.time()
    jti = province.send("play", {"source": src, "volume": 100, "level": "priority"})
    again, _ = heard(tap, mark, 6.0)
    province.done(jti, timeout=60)
    assert abs(again - lufs) <= 0.5, (again, lufs)  # the stored measurement, not unity
    assert sidecar(wavs[0]).stat().st_mtime == stored < t0  # not measured again
