"""The on-air check (docs/sound.md) on the real agent: programmes through the ALSA tap, a microphone fed by ALSA's
`file` capture (tests/support/mic.py) with what the tap recorded (sound), with a quiet room (silence), and with
the box's own speech cut by long pauses; the fault `speaker_silent` over a real Mosquitto."""

from __future__ import annotations

import numpy as np
from support.mic import RATE, Mic, noise, tone

from agent.audio.onair import FAULT

TEXT = "Thông báo. Chiều nay họp tổ dân phố."


def programme(province, tap) -> np.ndarray:
    """Play the spoken bulletin; what the tap heard of it, as the microphone's mono float samples."""
    mark = tap.mark()
    jti = province.send("play", {"source": {"kind": "tts", "text": TEXT, "lang": "vi"}})
    assert province.done(jti, timeout=60)["result"]["completed"] is True
    left = tap.left(mark).astype(np.float64) / 32768.0
    loud = np.flatnonzero(np.abs(left) > 0.01)
    return left[loud[0]:loud[-1] + 1]


def faults(province, after: int) -> list[tuple[str, str]]:
    with province.cond:
        return [(r.payload["kind"], r.payload["data"]["code"]) for r in province.received[after:]
                if r.kind == "event" and r.payload["kind"] in ("fault.raised", "fault.cleared")
                and r.payload["data"]["code"] == FAULT]


def test_silent_horn_raises_speaker_silent_after_two_programmes_and_sound_clears_it(start_audio_agent, province,
                                                                                     tap):
    mic = Mic(tap)
    mic.feed(tone(-20.0))
    agent = start_audio_agent("pyaudio", selftest={"tone_s": 1.0, "mic_device": "mic"})
    out = agent.cli("selftest", "--calibrate", timeout=90)
    assert out.returncode == 0, out.stdout + out.stderr
    mark = province.mark()

    # A quiet room: one silent programme is not enough to raise.
    mic.feed(noise())
    speech = programme(province, tap)
    assert len(speech) > RATE  # the box's bulletin as the tap heard it

    # The same bulletin heard 10 dB quieter, after 1.5 s of room noise and with 1 s pauses between its parts:
    # quiet passages of a real programme are not silence (and the silent count starts over).
    gap = noise(seconds=1.0)
    half = len(speech) // 2
    paused = np.concatenate([noise(seconds=1.5), 0.3 * speech[:half], gap, 0.3 * speech[half:], gap,
                             noise(seconds=4.0)])
    mic.feed(paused)
    programme(province, tap)
    mic.feed(noise())
    programme(province, tap)
    assert faults(province, mark) == [], "a pause-filled programme and one silent one: no fault"
    programme(province, tap)
    raised = province.event("fault.raised", after=mark, pred=lambda e: e["data"]["code"] == FAULT)
    assert raised["data"]["message"].startswith("zone main: no sound heard"), raised
    status = province.done(province.send("status.get"))["result"]
    assert FAULT in [f["code"] if isinstance(f, dict) else f for f in status.get("faults", [])], status

    # Sound again (what the tap recorded, as the microphone would hear the horn): cleared by one programme.
    mic.feed(np.concatenate([speech, speech]))
    programme(province, tap)
    province.event("fault.cleared", after=mark, pred=lambda e: e["data"]["code"] == FAULT)
    assert faults(province, mark) == [("fault.raised", FAULT), ("fault.cleared", FAULT)]
    verdicts = [line.split("on-air ", 1)[1] for line in agent.log().splitlines() if "on-air " in line]
    print("\n".join(verdicts))
    assert [v.endswith("SILENT") for v in verdicts] == [True, False, True, True, False], verdicts
