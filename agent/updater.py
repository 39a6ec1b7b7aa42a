"""Software updates over the air (PROTOCOL.md, "`update`"; docs/updates.md).

One update at a time, as a chain of steps on the core thread with the slow parts on a worker:

    wait for `at` -> (no emergency) download into the media cache -> verify the release signature
    (agent/bundle.py) -> unpack and install side by side (agent/releases.py) -> wait until the box is idle
    -> note `pending` in update.json, switch `current`, restart through loa-boot

The new version finds `pending` naming itself and runs the health gate: it must keep its own checks
passing (those that feed the watchdog) for `update.health_timeout_s`, and reach the broker if the old
version had. Then it commits; else it marks the attempt failed and restarts, and loa-boot rolls back.
A crash loop never reaches the gate: loa-boot's boot counter rolls back. Whichever version runs after
the attempt reports it (`update.committed` / `update.rolled_back`) and gives the command its final ack,
which the command's inbox record (resumed after every restart) makes possible.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from . import __version__
from .errors import Rejection, SchemaError
from .i18n import Msg
from .maintenance import idle
from .media import Downloader, MediaError
from .messages import Call
from .runtime import Result, Runtime
from .schema import Bool, Int, Obj, Str

if TYPE_CHECKING:
    from .alerting import Alerts
    from .audio.player import Player
    from .envelope import Message
    from .media import MediaCache
    from .releases import Layout

log = logging.getLogger("agent.updater")

PEP440 = r"[0-9]+(\.[0-9]+)*((a|b|rc)[0-9]+)?(\.post[0-9]+)?(\.dev[0-9]+)?"
UNPACK_FACTOR = 4  # free space needed to unpack and install a bundle, in bundle sizes (wheels + the venv)


def _at(params: dict, path: str) -> None:
    if "at" in params:
        try:
            when = datetime.fromisoformat(params["at"])
        except ValueError:
            raise SchemaError(f"{path}.at", "must be an RFC 3339 date-time") from None
        if when.tzinfo is None:
            raise SchemaError(f"{path}.at", "needs a time zone (e.g. Z or +07:00)")


UPDATE = Obj({
    "version": Str(pattern=PEP440, max_len=64),
    "url": Str(min_len=1, max_len=2048),
    "sha256": Str(pattern=r"[0-9a-f]{64}"),
    "size": Int(min=1, max=2**31, optional=True),
    "allow_downgrade": Bool(default=False),
    "at": Str(min_len=10, max_len=40, optional=True),
}, validate=_at)


@dataclass
class Job:
    """The update in progress (one at a time): what `loa update status` shows."""

    msg: Message
    params: dict
    phase: str = "waiting"  # waiting | downloading | installing | ready | switching
    detail: str = ""
    have: int = 0  # bytes downloaded
    size: int | None = None
    attempts: int = 0
    timer: Any = None
    worker: threading.Thread | None = field(default=None, repr=False)

    @property
    def version(self) -> str:
        return self.params["version"]


class Updater:
    def __init__(self, rt: Runtime, *, layout: Layout | None, cache: MediaCache, player: Player, alerts: Alerts,
                 healthy: Callable[[], bool], online: Callable[[], bool]):
        """`layout` is None when this agent was not started by loa-boot from a release layout (a checkout, a
        test): then it cannot update itself. `healthy` is the agent's own check (the watchdog's); `online`
        says whether the broker has answered since this process started."""
        self.rt, self.layout, self.cache, self.player, self.alerts = rt, layout, cache, player, alerts
        self.healthy, self.online = healthy, online
        self.downloader = Downloader(cache)
        self.job: Job | None = None
        self.gate_msg: Message | None = None  # the resumed update command this version's gate will answer
        self.gate_timer: Any = None

    @property
    def cfg(self) -> dict:
        return self.rt.cfg["update"]

    # --- start-up: report an attempt that ended, or run the health gate ----------------------------
    def start(self) -> None:
        if self.layout is None:
            return
        state = self.layout.read_state()
        last, pending = state.get("last"), state.get("pending")
        if last and not last.get("reported"):
            kind = "update.committed" if last["outcome"] == "committed" else "update.rolled_back"
            self.rt.emit_event(kind, _event(last))
            last["reported"] = True
            self.layout.write_state(state)
        if pending and pending.get("version") == __version__:
            log.warning("running %s after an update from %s: health gate of %g s", __version__,
                        pending.get("previous"), self.cfg["health_timeout_s"])
            self.gate_timer = self.rt.call_later(self.cfg["health_timeout_s"], self._gate)

    def _gate(self) -> None:
        from .bundle import compare_versions  # bundle.py (tarfile, packaging) only when updates are at work

        assert self.layout is not None
        state = self.layout.read_state()
        pending = state.get("pending")
        if not pending or pending.get("version") != __version__:
            return
        why = None
        if not self.healthy():
            why = "its own checks failed (state database or MQTT link thread)"
        elif pending.get("online_before") and not self.online():
            why = f"did not reach the broker within {self.cfg['health_timeout_s']:g} s (the previous version had)"
        if why:
            log.error("update to %s failed its health gate: %s; restarting into %s", __version__, why,
                      pending.get("previous"))
            pending["fail"] = why
            self.layout.write_state(state)
            self.rt.restart()  # loa-boot sees `fail` and switches back
            return
        previous = pending.get("previous")
        highest = state.get("highest") or __version__
        state.update(committed=__version__, pending=None,
                     highest=__version__ if compare_versions(__version__, highest) > 0 else highest,
                     last={"jti": pending.get("jti"), "version": __version__, "previous": previous,
                           "outcome": "committed", "reason": "passed its health gate", "at": self.rt.clock(),
                           "reported": True})
        self.layout.write_state(state)
        log.warning("update to %s committed (previous %s)", __version__, previous)
        self.rt.emit_event("update.committed", {"version": __version__, "previous": previous})
        if self.gate_msg is not None:
            self.rt.complete(self.gate_msg, Result(message=f"running {__version__}",
                                                   result={"version": __version__, "previous": previous}))
            self.gate_msg = None
        removed = self.layout.gc()
        if removed:
            log.info("removed old releases: %s", ", ".join(removed))

    # --- the command --------------------------------------------------------------------------------
    def handle(self, msg: Message, params: dict) -> Result | None:
        from .bundle import compare_versions

        if self.layout is None:
            raise Rejection("not_for_me", Msg("this agent does not run from a release layout (scripts/install.sh, "
                                              "started by loa-boot): it cannot update itself"))
        state = self.layout.read_state()
        pending, last = state.get("pending"), state.get("last")
        if pending and pending.get("jti") == msg.jti and pending.get("version") == __version__:
            self.gate_msg = msg  # resumed after the switch: the gate answers
            return None
        if last and last.get("jti") == msg.jti:  # resumed after the attempt ended: answer from its record
            return _final(last)
        if pending:
            raise Rejection("device_fault", Msg("the update to %(version)s is still in its health gate",
                                                version=pending["version"]))
        version = params["version"]
        if compare_versions(version, __version__) == 0:
            return Result(message=f"{version} is already running", result={"version": version, "previous": None})
        highest = state.get("highest") or __version__
        floor = highest if compare_versions(highest, __version__) > 0 else __version__
        if compare_versions(version, floor) < 0 and not params["allow_downgrade"]:
            raise Rejection("downgrade", Msg("%(version)s is older than %(floor)s (the running or highest committed "
                                             "version); set allow_downgrade to install it", version=version,
                                             floor=floor))
        if self.job is not None:
            if self.job.phase in ("installing", "switching"):
                raise Rejection("device_fault", Msg("the update to %(version)s is being installed",
                                                    version=self.job.version))
            self._end(Result("failed", "cancelled", f"superseded by the update to {version}"))
        self.job = Job(msg, params)
        self._step()
        return None

    def rollback(self, msg: Message) -> Result:
        """`update.rollback`: back to the previous release now (a technician's or the province's decision)."""
        layout = self.layout
        if layout is None:
            raise Rejection("not_for_me", "this agent does not run from a release layout")
        previous = layout.previous_version()
        if not previous or not layout.complete(previous) or previous == __version__:
            raise Rejection("device_fault", "there is no previous release to go back to")
        last = layout.read_state().get("last") or {}
        if last.get("outcome") == "rolled_back" and last.get("version") == previous:
            raise Rejection("device_fault", f"the previous release, {previous}, was rolled back: "
                            f"{last.get('reason', '')}")
        if self.job is not None:
            self._end(Result("failed", "cancelled", "cancelled by a rollback"))
        state = layout.read_state()
        state.update(pending=None, committed=previous,
                     last={"jti": msg.jti, "version": __version__, "previous": previous, "outcome": "rolled_back",
                           "reason": "rollback requested", "at": self.rt.clock(), "reported": False})
        layout.write_state(state)
        layout.switch(previous)
        log.warning("rolling back from %s to %s on request", __version__, previous)
        self.rt.restart()
        return Result(message=f"rolling back to {previous}", result={"version": previous, "previous": __version__})

    def status(self) -> dict:
        out: dict[str, Any] = {"running": __version__, "layout": str(self.layout.root) if self.layout else None}
        if self.layout is not None:
            out.update(current=self.layout.current_version(), previous=self.layout.previous_version(),
                       installed=self.layout.installed(), **{k: v for k, v in self.layout.read_state().items()
                                                             if k in ("committed", "highest", "pending", "last")})
        job = self.job
        out["job"] = None if job is None else {
            "id": job.msg.jti, "version": job.version, "phase": job.phase, "detail": job.detail,
            "bytes": job.have, "size": job.size}
        return out

    # --- the steps -----------------------------------------------------------------------------------
    def _later(self, delay: float, detail: str) -> None:
        job = self.job
        assert job is not None
        job.phase, job.detail = "waiting", detail
        job.timer = self.rt.call_later(delay, self._step)

    def _step(self) -> None:
        job = self.job
        if job is None:
            return
        job.timer = None
        if "at" in job.params:
            wait = datetime.fromisoformat(job.params["at"]).timestamp() - self.rt.clock()
            if wait > 0:
                self._later(wait, f"not before {job.params['at']}")
                return
        if job.phase == "ready":
            self._switch()
            return
        if self.player.state()["state"] == "alert" or self.alerts.active:
            self._later(self.cfg["retry_s"], "an alert is on air")
            return
        job.phase, job.detail = "downloading", job.params["url"]
        job.worker = threading.Thread(target=self._work, args=(job,), name="update", daemon=True)
        job.worker.start()

    def _work(self, job: Job) -> None:
        """Worker thread: download, verify, unpack and install; the outcome goes back to the core thread."""
        from .bundle import BundleError, check_compatible, extract, load_release_keys, open_bundle

        try:
            bundle = self._download(job)
            manifest = open_bundle(bundle, load_release_keys(self.rt.cfg["security"]["release_keys"]))
            if manifest.version != job.version:
                raise BundleError("bad_schema", f"the bundle holds version {manifest.version}, the command names "
                                                f"{job.version}")
            check_compatible(manifest)
            self.rt.post(Call(lambda: self._downloaded(job, bundle)))
            assert self.layout is not None
            need = UNPACK_FACTOR * bundle.stat().st_size
            if shutil.disk_usage(self.layout.root).free < need:
                raise MediaError("disk_full", f"{need // 2**20} MiB free needed to install {job.version}")
            job.phase, job.detail = "installing", f"releases/{job.version}"
            if not self.layout.complete(job.version):
                incoming = self.layout.root / "incoming" / job.version
                shutil.rmtree(incoming, ignore_errors=True)  # a killed attempt's leftovers
                try:
                    wheels = extract(bundle, manifest, incoming)
                    self.layout.install(job.version, wheels, manifest.requirement, manifest.raw)
                finally:
                    shutil.rmtree(incoming, ignore_errors=True)
            result = None
        except (BundleError, MediaError) as e:
            status = "failed" if e.code in ("media_unavailable", "disk_full") else "rejected"
            result = Result(status, e.code, str(e))
        except Exception as e:  # pip, venv, a full disk: the box keeps its version and says why
            log.exception("installing %s failed", job.version)
            result = Result("failed", "device_fault", f"installing {job.version} failed: {e}")
        self.rt.post(Call(lambda: self._installed(job, result)))

    def _download(self, job: Job) -> Path:
        p = job.params
        url = urlparse(p["url"])
        if url.scheme == "file":  # `loa update FILE` (a USB stick): the same checks as a download
            digest = self.cache.add_file(Path(unquote(url.path)))
            if digest != p["sha256"]:
                raise MediaError("media_unavailable", f"{url.path} hashes to {digest[:12]}…, not {p['sha256'][:12]}…")
            return self.cache.verified(digest)
        if url.scheme not in ("http", "https"):
            raise MediaError("media_unavailable", f"cannot fetch a {url.scheme!r} URL")
        job.size = p.get("size")
        retries, delay = self.cfg["download_retries"], self.cfg["retry_s"]
        for attempt in range(retries + 1):
            try:
                return self.downloader.fetch(p["url"], p["sha256"], p.get("size"), progress=lambda have, size: (
                    setattr(job, "have", have), setattr(job, "size", size)))
            except MediaError as e:
                if e.code != "media_unavailable" or attempt == retries or self.job is not job:
                    raise
                log.warning("downloading %s failed (%s); retrying in %g s", job.version, e, delay)
                threading.Event().wait(delay)  # resumable: the next attempt asks for the rest (HTTP Range)
                delay *= 3
        raise AssertionError("unreachable")

    def _downloaded(self, job: Job, bundle: Path) -> None:
        self.rt.emit_event("update.downloaded", {"version": job.version, "sha256": job.params["sha256"],
                                                 "bytes": bundle.stat().st_size})

    def _installed(self, job: Job, result: Result | None) -> None:
        if self.job is not job:
            return  # superseded or rolled back meanwhile
        if result is not None:
            log.error("update to %s: %s %s", job.version, result.code, result.message)
            self._end(result)
            return
        self.rt.emit_event("update.installed", {"version": job.version, "previous": __version__})
        job.phase = "ready"
        self._switch()

    def _switch(self) -> None:
        job, layout = self.job, self.layout
        assert job is not None and layout is not None
        if not idle(self.player, self.alerts):
            job.phase = "ready"
            job.timer = self.rt.call_later(self.cfg["retry_s"], self._step)
            job.detail = "installed; waiting for the programme or alert on air to end"
            return
        job.phase, job.detail = "switching", f"to {job.version}"
        state = layout.read_state()
        # `pending` first, then the link: killed in between, loa-boot sees a switch that never happened.
        state["pending"] = {"version": job.version, "previous": __version__, "jti": job.msg.jti, "boots": 0,
                            "switched_at": self.rt.clock(), "max_boots": self.cfg["max_boots"],
                            "health_timeout_s": self.cfg["health_timeout_s"], "online_before": self.online(),
                            "fail": None}
        state.setdefault("committed", __version__)
        state.setdefault("highest", __version__)
        layout.write_state(state)
        layout.switch(job.version)
        log.warning("switched to %s; restarting into it (previous %s)", job.version, __version__)
        self.rt.restart()

    def _end(self, result: Result) -> None:
        job = self.job
        assert job is not None
        self.rt.cancel(job.timer)
        self.job = None
        self.rt.complete(job.msg, Result(result.status, result.code, result.message,
                                         {"version": job.version, "previous": __version__, **result.result}))


def _event(last: dict) -> dict:
    return {"version": last.get("version"), "previous": last.get("previous"), "reason": last.get("reason", "")}


def _final(last: dict) -> Result:
    if last["outcome"] == "committed":
        return Result(message=f"running {last['version']}", result={"version": last["version"],
                                                                     "previous": last.get("previous")})
    return Result("failed", "rolled_back", f"{last['version']} was rolled back: {last.get('reason', '')}; "
                                           f"{last.get('previous')} runs again", _event(last))

