"""Self-test: a 1 kHz test tone through each zone in turn with the relay sequence, relay feedback where it is
wired, and, with a microphone (`selftest.mic_device`), the tone's level heard at 1 kHz against a calibration
reference taken once at install (`loa selftest --calibrate`), like the speaker test of professional IP speakers.

Everything here runs on the core thread except the microphone: a worker thread records with PyAudio while a
zone's tone plays, measures it (a Goertzel filter at 1 kHz, and the power of everything else) and posts its
figures back. A zone's step ends when its play has ended (the player calls the play's `context` when it is a
callable) and the microphone's figures are in; then the next zone starts. Nothing waits on the core thread.

Checks per zone: `relay` (its relay was on while the tone played), `feedback` (only with a `feedback_pin`: the
input answered), `played` (the tone ended `finished`, not failed, stopped or held up by an alert) and, with a
microphone, `acoustic`. The result goes into the final ack and into a `selftest` event.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import threading
import time
import uuid
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import mul
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers.audio.capture import record

from .audio.arbiter import Play
from .i18n import C_, Msg
from .messages import Call
from .runtime import Result, Runtime
from .timeutil import active_window, next_daily, rfc3339

if TYPE_CHECKING:
    from drivers.gpio.base import Gpio

    from .audio.amp import Amp
    from .audio.player import Player

log = logging.getLogger("agent.selftest")

TONE_HZ = 1000.0
BLOCK_S = 0.1  # Goertzel blocks: 1 kHz is exactly bin 100 at 48 kHz (and a whole bin at 44.1 or 16 kHz)
HEARD_SNR_DB = 12.0  # the 1 kHz level must stand this far above the noise expected in its bin
FLOOR_DB = -120.0  # what digital silence reads as
CAPTURE_TAIL_S = 2.0  # the microphone records warm-up + tone + this, at most (it stops when the tone ends)
STEP_SLACK_S = 30.0  # a tone that has not ended this long after it should have is stopped and failed
MIC_GRACE_S = 10.0  # the microphone's figures must come this soon after its tone ended
HELD_S = 2.0  # a tone that took this much longer than warm-up + tone was held up by an alert: test the zone again
DAILY_LATE_S = 600.0  # a daily run found this late (the clock jumped) is skipped, not run at a wrong time
DAILY_RETRY_S = 300.0  # the box was busy (a programme, an alert): try again this much later ...
DAILY_RETRIES = 12  # ... this many times, then skip the day
CALIBRATION_FILE = "selftest_calibration.json"


# --- measuring (pure: the worker thread and the tests use it) ------------------------------------------
def measure(samples: array | list[int], rate: int) -> dict:
    """The 1 kHz level and the level of the rest, in dBFS (a full-scale sine is 0 dBFS), of a mono S16 recording.

    Goertzel (Hann-windowed) over 100 ms blocks; the tone's blocks are those within 3 dB of the loudest at
    1 kHz (the recording also holds the relay warm-up and what follows the tone). `snr_db` compares the 1 kHz
    level with the noise the rest would put in the filter's bin, so silence and noise both read as "not
    heard"; digital silence reads -120 dBFS.
    """
    n = int(rate * BLOCK_S)
    if len(samples) < n:
        raise ValueError(f"the recording is too short ({len(samples)} samples at {rate} Hz)")
    k = round(TONE_HZ * n / rate)
    coeff = 2.0 * math.cos(2.0 * math.pi * k / n)
    window = [0.5 - 0.5 * math.cos(2.0 * math.pi * i / n) for i in range(n)]  # Hann: a mic's clock may drift
    blocks: list[tuple[float, float]] = []  # (1 kHz power, rest power), mean square in full-scale units
    norm = 1.0 / (32768.0 * 32768.0)
    for start in range(0, len(samples) - n + 1, n):
        seg = samples[start:start + n]
        s1 = s2 = 0.0
        for x, w in zip(seg, window, strict=True):
            s1, s2 = x * w + coeff * s1 - s2, s1
        mag2 = s1 * s1 + s2 * s2 - coeff * s1 * s2  # |X(k)|^2 of the windowed block
        tone = 8.0 * mag2 / (n * n) * norm  # A^2 / 2 for a sine of amplitude A = 4 |X| / n (Hann's sum is n / 2)
        total = sum(map(mul, seg, seg)) / n * norm
        blocks.append((tone, max(total - tone, 0.0)))
    loudest = max(b[0] for b in blocks)
    top = [b for b in blocks if b[0] >= loudest / 2]  # the tone's blocks: within 3 dB of the loudest at 1 kHz
    tone_p = sum(b[0] for b in top) / len(top)
    rest_p = sum(b[1] for b in top) / len(top)
    level, rest = _db(2 * tone_p), _db(2 * rest_p)
    in_bin = rest + 10 * math.log10(3 / n)  # white noise of this power puts this much in the Hann bin
    return {"level_dbfs": round(level, 1), "rest_dbfs": round(rest, 1), "snr_db": round(level - in_bin, 1),
            "seconds": round(len(samples) / rate, 2), "rate": rate}


def heard(fig: dict) -> bool:
    return fig["snr_db"] >= HEARD_SNR_DB and fig["level_dbfs"] > FLOOR_DB + 10


def _db(power: float) -> float:
    return max(FLOOR_DB, 10 * math.log10(power)) if power > 0 else FLOOR_DB


# --- the daily run's time (pure) ---------------------------------------------------------------------
def daily_skip_reason(quiet_hours: list[dict], at: float, tz: str) -> str | None:
    """Why a daily self-test due at `at` must not run: it falls in quiet hours."""
    window = active_window(quiet_hours, at, tz)
    return Msg("quiet hours %(start)s-%(end)s", start=window["from"], end=window["to"]) if window else None


# --- the run ---------------------------------------------------------------------------------------------
@dataclass(eq=False)
class _Step:
    zone: dict
    play: Play
    attempt: int = 0  # 1 when the zone is tested again after an alert held its tone up
    submitted: float = 0.0  # monotonic
    warmup: float = 0.0  # the relay's warm-up before the first sample
    held: float = 0.0  # seconds the tone was held up (an alert preempted it, before or while it sounded)
    volume: int = 0  # the tone's effective volume (the acoustic reference is scaled by it)
    stop: threading.Event = field(default_factory=threading.Event)  # tells the microphone the tone is over
    mic: bool = False
    ended: Result | None = None
    heard: dict | None = None  # the microphone's figures, or {"error": ...}
    checks: list[dict] = field(default_factory=list)
    overdue: bool = False
    timer: Any = None
    mic_timer: Any = None


@dataclass(eq=False)
class _Run:
    calibrate: bool
    done: Callable[[Result], None]
    zones: list[dict]
    mic: str | None
    reference: dict = field(default_factory=dict)
    checks: list[dict] = field(default_factory=list)
    measured: dict = field(default_factory=dict)
    index: int = 0
    attempt: int = 0
    step: _Step | None = None


class SelfTest:
    def __init__(self, rt: Runtime, *, player: Player, amp: Amp, gpio: Gpio):
        self.rt, self.player, self.amp, self.gpio = rt, player, amp, gpio
        self.run: _Run | None = None
        self._daily_at: float | None = None
        self._daily_timer: Any = None
        self._daily_tries = 0
        self._arm_daily()

    @property
    def cfg(self) -> dict:
        return self.rt.cfg["selftest"]

    @property
    def calibration_path(self) -> Path:
        return Path(self.rt.cfg["paths"]["state_dir"]) / CALIBRATION_FILE

    # --- starting ----------------------------------------------------------------------------------
    def start(self, *, calibrate: bool, done: Callable[[Result], None]) -> None:
        """Begin a self-test (core thread; returns at once). `done(Result)` is called once, on the core thread."""
        mic = self.cfg.get("mic_device")
        if self.run is not None:
            done(Result("failed", "device_fault", Msg("a self-test is already running"), _result(False, [])))
            return
        if calibrate and not mic:
            done(Result("failed", "device_fault", Msg("no microphone configured (selftest.mic_device): nothing to "
                                                      "calibrate"), _result(False, [])))
            return
        if self._alert() is not None:
            done(Result("failed", "device_fault", Msg("an alert is playing: the self-test does not interrupt it"),
                        _result(False, [])))
            return
        run = _Run(calibrate, done, list(self.rt.cfg["zones"]), mic)
        if mic and not calibrate:
            run.reference = self._load_calibration()
        self.run = run
        log.info("self-test%s of %d zone(s) begins", " with calibration" if calibrate else "", len(run.zones))
        self._next(run)

    def _alert(self) -> Play | None:
        return next((p for p in self.player.arbiter.all() if p.level == "emergency"), None)

    def _next(self, run: _Run) -> None:
        if self.run is not run:
            return
        if run.index >= len(run.zones):
            self._conclude(run)
            return
        player, tone_s = self.player, float(self.cfg["tone_s"])
        zone = run.zones[run.index]
        name = zone["name"]
        current = player.arbiter.current
        if current is not None and current.level != "normal":  # never over an alert nor another priority play
            why = Msg("an alert is playing") if current.level == "emergency" else \
                Msg("busy: %(play)s is playing at priority", play=current.title or current.id)
            self._abort(run, Msg("%(why)s: the self-test stopped before zone %(zone)s", why=why, zone=name))
            return
        play = Play(id=f"selftest-{uuid.uuid4().hex[:8]}-{name}", level="priority", zones=[name],
                    source={"kind": "tone", "name": "test", "duration_s": tone_s}, title=f"self-test {name}",
                    origin="selftest")
        step = _Step(zone, play, mic=bool(run.mic), attempt=run.attempt)
        play.context = lambda r: self._ended(run, step, r)  # the player calls it as the play ends
        run.step = step
        warmup = step.warmup = 0.0 if name in self.amp.on_since else float(self.amp.cfg["warmup_s"])
        step.submitted = time.monotonic()
        if step.mic:
            threading.Thread(target=self._listen, args=(run, step, run.mic, warmup + tone_s + CAPTURE_TAIL_S),
                             name="selftest-mic", daemon=True).start()
        try:
            player.submit(play)  # a tone goes to the arbiter at once: it starts now, over a normal programme
        except Exception as e:  # a PlayError or a driver's: the run cannot go on
            self._abort(run, Msg("cannot play the test tone on zone %(zone)s: %(error)s", zone=name, error=str(e)))
            return
        step.volume = player.effective_volume(play)
        step.timer = self.rt.call_later(warmup + tone_s + STEP_SLACK_S, lambda: self._overdue(run, step))

    def _listen(self, run: _Run, step: _Step, device: str, max_s: float) -> None:
        """Worker thread: record while the tone plays, measure, post the figures back."""
        try:
            samples, rate = record(device, step.stop, max_s)
            fig: dict = measure(samples, rate)
        except Exception as e:  # whatever the microphone does, the run gets an answer
            fig = {"error": Msg("microphone %(device)r: %(error)s", device=device, error=str(e))}
        self.rt.post(Call(lambda: self._heard(run, step, fig)))

    # --- a zone's answers ------------------------------------------------------------------------------
    def _ended(self, run: _Run, step: _Step, result: Result) -> None:
        """Called by the player inside its end of the play: the relays are read now, before a `hold_s` of 0
        lets them go; what follows (the next zone's tone) is posted, not run inside the player."""
        if self.run is not run or run.step is not step or step.ended is not None:
            return
        self.rt.cancel(step.timer)
        step.ended = result
        step.stop.set()  # the microphone stops listening
        step.checks = self._zone_checks(step, result)
        if step.mic and step.heard is None:
            step.mic_timer = self.rt.call_later(MIC_GRACE_S, lambda: self._heard(run, step, {
                "error": Msg("microphone %(device)r gave no recording within %(s)g s of the tone's end",
                             device=run.mic, s=MIC_GRACE_S)}))
        self.rt.post(Call(lambda: self._step_over(run, step)))

    def _heard(self, run: _Run, step: _Step, fig: dict) -> None:
        if self.run is not run or run.step is not step or step.heard is not None:
            return
        step.heard = fig
        self._step_over(run, step)

    def _overdue(self, run: _Run, step: _Step) -> None:
        if self.run is run and run.step is step and step.ended is None:
            step.overdue = True
            self.player.stop(id=step.play.id)  # its end comes back through _ended

    def _step_over(self, run: _Run, step: _Step) -> None:
        if self.run is not run or run.step is not step or step.ended is None or (step.mic and step.heard is None):
            return
        self.rt.cancel(step.mic_timer)
        checks = step.checks
        if step.mic:
            checks.append(self._acoustic(run, step))
        run.step = None
        if step.held > HELD_S and step.attempt == 0:  # what it measured is not the zone's: test it again
            log.info("self-test: an alert held zone %s's tone up %.1f s; testing it again", step.zone["name"],
                     step.held)
            run.attempt = 1
        else:
            for c in checks:
                log.info("self-test %s %s %s: %s", "PASS" if c["ok"] else "FAIL", c["zone"], c["name"], c["figure"])
            run.checks += checks
            run.index += 1
            run.attempt = 0
        self._next(run)

    def _zone_checks(self, step: _Step, result: Result) -> list[dict]:
        amp, gpio = self.amp, self.gpio
        zone, name = step.zone, step.zone["name"]
        checks = []
        pin = zone["relay_pin"]
        since = amp.on_since.get(name)
        on = since is not None and gpio.read(pin)
        on_s = round(time.monotonic() - since, 1) if since is not None else 0.0
        checks.append(_check(name, C_("selftest check", "relay"), bool(on),
                             Msg("GPIO %(pin)s on for %(s)g s", pin=pin, s=on_s) if on else
                             Msg("GPIO %(pin)s was not on at the end of the tone", pin=pin), pin=pin, on_s=on_s))
        if zone.get("feedback_pin") is not None:
            fb = zone["feedback_pin"]
            active = bool(gpio.read(fb))
            fault = next((f for f in self.rt.faults.active() if f["code"] == "amp_no_feedback"
                          and f["message"].startswith(f"zone {name}:")), None)
            ok = active and fault is None
            figure = Msg("feedback GPIO %(pin)s answered with the relay on for %(s)g s", pin=fb, s=on_s) if ok else \
                Msg("feedback GPIO %(pin)s stayed inactive with relay GPIO %(relay)s on for %(s)g s", pin=fb,
                    relay=pin, s=on_s) if not active else \
                f"amp_no_feedback: {fault['message']}"  # type: ignore[index]
            checks.append(_check(name, C_("selftest check", "feedback"), ok, figure, pin=fb, active=active))
        tone_s = float(self.cfg["tone_s"])
        seconds = float(result.result.get("seconds") or 0.0)
        reason = result.result.get("reason")
        held = step.held = max(0.0, time.monotonic() - step.submitted - step.warmup - seconds)
        figure: str
        if step.overdue:
            ok, figure = False, Msg("did not end within %(s)g s: stopped", s=tone_s + STEP_SLACK_S)
        elif result.status != "done":
            ok, figure = False, Msg("failed (%(code)s): %(message)s", code=result.code, message=result.message)
        elif reason != "finished":
            ok, figure = False, Msg("%(reason)s after %(s)g s of %(tone)g s", reason=reason, s=seconds, tone=tone_s)
        elif held > HELD_S:
            ok, figure = False, Msg("%(s)g s of %(tone)g s, but held up %(held).1f s by an alert, twice", s=seconds,
                                    tone=tone_s, held=held)
        else:
            ok, figure = True, Msg("%(s)g s of %(tone)g s at volume %(volume)s", s=seconds, tone=tone_s,
                                   volume=step.volume)
        checks.append(_check(name, C_("selftest check", "played"), ok, figure, seconds=seconds,
                             reason=reason or result.code, volume=step.volume))
        return checks

    def _acoustic(self, run: _Run, step: _Step) -> dict:
        name, fig = step.zone["name"], step.heard or {}
        acoustic = C_("selftest check", "acoustic")
        if "error" in fig:
            return _check(name, acoustic, False, fig["error"])
        if not step.checks[-1]["ok"]:  # the tone did not play as it should: the figure says nothing
            return _check(name, acoustic, False, Msg("not measured: the tone did not play as it should "
                                                     "(1 kHz at %(level).1f dBFS)", level=fig["level_dbfs"]), **fig)
        tol = float(self.cfg["tolerance_db"])
        level, rest = fig["level_dbfs"], fig["rest_dbfs"]
        heard_it = heard(fig)
        if step.volume <= 0:
            return _check(name, acoustic, False, Msg("the tone played at volume 0 (quiet hours?): nothing to hear"),
                          **fig)
        if run.calibrate:
            if not heard_it:
                return _check(name, acoustic, False, Msg("no 1 kHz tone heard: %(level).1f dBFS (rest %(rest).1f "
                                                         "dBFS, SNR %(snr).1f dB): not calibrated", level=level,
                                                         rest=rest, snr=fig["snr_db"]), **fig)
            run.measured[name] = {"level_dbfs": level, "rest_dbfs": rest, "snr_db": fig["snr_db"],
                                  "volume": step.volume, "tone_s": float(self.cfg["tone_s"]),
                                  "at": rfc3339(self.rt.clock())}
            return _check(name, acoustic, True, Msg("reference taken: 1 kHz at %(level).1f dBFS (rest %(rest).1f "
                                                    "dBFS, SNR %(snr).1f dB) at volume %(volume)s", level=level,
                                                    rest=rest, snr=fig["snr_db"], volume=step.volume), **fig)
        ref = run.reference.get("zones", {}).get(name)
        if ref is None:
            return _check(name, acoustic, False, Msg("1 kHz at %(level).1f dBFS (rest %(rest).1f dBFS) but no "
                                                     "calibration reference for this zone: run `loa selftest "
                                                     "--calibrate` once", level=level, rest=rest), **fig)
        if run.reference.get("mic_device") != run.mic:
            return _check(name, acoustic, False, Msg("the reference was taken with microphone %(then)r, not "
                                                     "%(now)r: calibrate again",
                                                     then=run.reference.get("mic_device"), now=run.mic), **fig)
        # The tone's gain is (volume/100)^2: a volume changed since calibration moves the reference with it.
        expected = ref["level_dbfs"] + 40 * math.log10(step.volume / ref["volume"])
        delta = level - expected
        ok = delta >= -tol
        figure = Msg("1 kHz at %(level).1f dBFS, reference %(expected).1f dBFS (%(delta)+.1f dB, tolerance %(tol)g "
                     "dB); rest %(rest).1f dBFS%(unheard)s", level=level, expected=expected, delta=delta, tol=tol,
                     rest=rest, unheard="" if heard_it else Msg(", no tone heard"))
        return _check(name, acoustic, ok, figure, reference_dbfs=round(expected, 1), delta_db=round(delta, 1),
                      tolerance_db=tol, **fig)

    # --- the end ---------------------------------------------------------------------------------------
    def _conclude(self, run: _Run) -> None:
        self.run = None
        calibrated = False
        if run.calibrate and run.measured:
            try:
                self._save_calibration(run)
                calibrated = True
            except OSError as e:
                run.checks.append(_check("-", C_("selftest check", "calibration"), False,
                                         Msg("cannot save %(path)s: %(error)s", path=str(self.calibration_path),
                                             error=str(e))))
        ok = bool(run.checks) and all(c["ok"] for c in run.checks)
        failed = ", ".join(f"{c['zone']} {c['name']}" for c in run.checks if not c["ok"])
        message = Msg("self-test passed: %(checks)d check(s) on %(zones)d zone(s)", checks=len(run.checks),
                      zones=len(run.zones)) if ok else Msg("self-test failed: %(failed)s", failed=failed)
        if run.calibrate:
            message = Msg("%(verdict)s; calibrated %(zones)s", verdict=message,
                          zones=", ".join(sorted(run.measured)) or Msg("no zone"))
        (log.info if ok else log.warning)("%s", message)
        self.rt.emit_event("selftest", {"ok": ok, "checks": run.checks, "calibrated": calibrated})
        run.done(Result("done", "ok", message, _result(ok, run.checks, calibrated)))

    def _abort(self, run: _Run, why: Msg) -> None:
        """The test itself could not go on (an alert, a busy player): failed, with the checks done so far."""
        self.run = None
        if run.step is not None:
            run.step.stop.set()
            self.rt.cancel(run.step.timer)
            self.rt.cancel(run.step.mic_timer)
        log.warning("self-test not completed: %s", why)
        if run.checks:
            self.rt.emit_event("selftest", {"ok": False, "checks": run.checks, "calibrated": False, "error": why})
        run.done(Result("failed", "device_fault", why, _result(False, run.checks)))

    def _load_calibration(self) -> dict:
        try:
            return json.loads(self.calibration_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            log.error("cannot read the self-test calibration %s: %s", self.calibration_path, e)
            return {}

    def _save_calibration(self, run: _Run) -> None:
        old = self._load_calibration()
        zones = old.get("zones", {}) if old.get("mic_device") == run.mic else {}
        zones.update(run.measured)
        path = self.calibration_path
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"mic_device": run.mic, "zones": zones}, indent=2))
        os.replace(tmp, path)
        log.info("self-test calibration saved for %s in %s", ", ".join(sorted(run.measured)), path)

    # --- daily --------------------------------------------------------------------------------------------
    def _arm_daily(self) -> None:
        hhmm = self.cfg.get("daily")
        if not hhmm:
            return
        self._daily_at = next_daily(hhmm, self.rt.clock(), self.rt.cfg["device"]["tz"])
        self._daily_tries = 0
        log.info("daily self-test at %s (%s)", hhmm, rfc3339(self._daily_at))
        self._daily_wait()

    def _daily_wait(self) -> None:
        """Sleep towards the due time in steps of at most an hour: a wall-clock jump is noticed in time."""
        assert self._daily_at is not None
        left = self._daily_at - self.rt.clock()
        if left > 0:
            self._daily_timer = self.rt.call_later(min(left, 3600.0), self._daily_wait)
            return
        if -left > DAILY_LATE_S:
            log.warning("daily self-test due at %s skipped: the clock moved past it", rfc3339(self._daily_at))
            self._arm_daily()
            return
        self._daily_due()

    def _daily_due(self) -> None:
        due = self._daily_at
        cfg = self.rt.cfg
        skip = daily_skip_reason(cfg["quiet_hours"], self.rt.clock(), cfg["device"]["tz"])
        if skip is None and (self.run is not None or self.player.arbiter.current is not None):
            if self._daily_tries < DAILY_RETRIES:
                self._daily_tries += 1
                log.info("daily self-test put off %g s: the box is busy", DAILY_RETRY_S)
                self._daily_timer = self.rt.call_later(DAILY_RETRY_S, self._daily_due)
                return
            skip = Msg("the box stayed busy")
        if skip is not None:
            log.info("daily self-test due at %s skipped: %s", rfc3339(due or 0), skip)
        else:
            log.info("daily self-test starts")
            self.start(calibrate=False, done=lambda r: log.log(
                logging.INFO if r.result.get("ok") else logging.WARNING, "daily self-test: %s", r.message))
        self._arm_daily()


def _check(zone: str, name: str, ok: bool, figure: str, **data: Any) -> dict:
    return {"zone": zone, "name": name, "ok": ok, "figure": figure, **data}


def _result(ok: bool, checks: list[dict], calibrated: bool = False) -> dict:
    return {"ok": ok, "checks": checks, "calibrated": calibrated}


def expected_duration(cfg: dict) -> float:
    """About how long a self-test of this config takes at most (every tone played and measured)."""
    per_zone = float(cfg["amp"]["warmup_s"]) + float(cfg["selftest"]["tone_s"]) + CAPTURE_TAIL_S + 3.0
    return len(cfg["zones"]) * per_zone + 10.0


# --- `loa selftest` -------------------------------------------------------------------------------------
def cli(args: argparse.Namespace, path: str) -> int:
    """Ask the running agent for a self-test and print one line per check; exit 0 only if every check passed."""
    from . import config
    from .ipc import request

    cfg = config.load(path)
    out = request(cfg["paths"]["socket"], "command", timeout=expected_duration(cfg) + 30, type="selftest",
                  params={"calibrate": bool(args.calibrate)})
    ok = out.get("status") == "done" and bool(out.get("ok"))
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0 if ok else 1
    from .i18n import _, p_, render

    checks = out.get("checks") or []
    verdicts = {True: _("PASS"), False: _("FAIL")}
    names = {id(c): p_("selftest check", c["name"]) for c in checks}
    vw = max(len(v) for v in verdicts.values())
    zw = max([len(c["zone"]) for c in checks] + [4])
    nw = max([len(n) for n in names.values()] + [6])
    for c in checks:
        print(f"{verdicts[c['ok']]:<{vw}}  {c['zone']:<{zw}}  {names[id(c)]:<{nw}}  {render(c['figure'])}")
    if out.get("status") != "done":
        print(_("loa: self-test %(status)s (%(code)s): %(message)s", status=out.get("status"), code=out.get("code"),
                message=render(out.get("message"))))
    else:
        print(render(out.get("message")) or (_("self-test passed") if ok else _("self-test failed")))
    return 0 if ok else 1
