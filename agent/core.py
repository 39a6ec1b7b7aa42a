"""The core: the one owner of the agent's state, run by one thread fed by a queue.

Frontends (the MQTT link, the local socket) and drivers post tuples to
`Core.post`; only this thread touches the store, the config in force, faults
and (later) playback. Timers (heartbeat, watchdog, housekeeping) run here too.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import queue
import sqlite3
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from . import config as config_mod
from .commands import REGISTRY, Registry, Result
from .envelope import Envelope, Message, Policy
from .errors import Rejection, SchemaError
from .faults import Faults
from .health import Health
from .timeutil import rfc3339

if TYPE_CHECKING:
    from .alerting import Alerts
    from .audio.player import Player
    from .display.board import Board
    from .ipc import Reply
    from .link import Link
    from .logbuffer import RingHandler
    from .maintenance import Maintenance
    from .monitor import Monitor
    from .prefetch import Prefetcher
    from .scheduler import Scheduler
    from .sdnotify import Notifier
    from .selftest import SelfTest
    from .sensors import Sensors
    from .store import Store

log = logging.getLogger("agent.core")

OUTBOX_WINDOW = 50  # QoS 1 publishes in flight at once; the rest wait in SQLite, not in memory
BATCH = 500  # queue items handled per wake-up before timers get their turn


class Core:
    def __init__(self, cfg: dict, store: Store, *, boot_id: str | None = None, clock: Callable[[], float] = time.time,
                 notifier: Notifier | None = None, ring: RingHandler | None = None, registry: Registry = REGISTRY):
        self.cfg = cfg
        self.store = store
        self.clock = clock
        self.notifier = notifier
        self.ring = ring
        self.registry = registry
        self.boot_id = boot_id or str(uuid.uuid4())
        self.device_id: str = cfg["device"]["id"]
        self.envelope = Envelope(Policy.from_config(cfg["security"]), self.device_id)
        self.health = Health(cfg["paths"]["state_dir"], proc=cfg["health"]["proc"], sys=cfg["health"]["sys"])
        self.faults = Faults(self.emit_event, clock, raise_after=cfg["health"]["raise_after"],
                             clear_after=cfg["health"]["clear_after"])
        self.link: Link | None = None
        self.player: Player = None  # type: ignore[assignment]  # set by the daemon (drivers load there)
        self.scheduler: Scheduler = None  # type: ignore[assignment]
        self.prefetcher: Prefetcher = None  # type: ignore[assignment]
        self.alerts: Alerts = None  # type: ignore[assignment]
        self.board: Board | None = None  # on a box with the display capability
        self.selftest: SelfTest = None  # type: ignore[assignment]
        self.sensors: Sensors | None = None
        self.monitor: Monitor | None = None
        self.maintenance: Maintenance | None = None
        self._awaiting_accept: set[str] = set()  # long commands whose `accepted` is not written yet
        self.q: queue.SimpleQueue[tuple] = queue.SimpleQueue()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_seq = itertools.count()
        self._inflight: dict[int, int] = {}  # paho mid -> outbox seq
        self._last_submitted = 0
        self._delivered: list[int] = []
        self._unwritten: deque[dict] = deque(maxlen=10_000)  # events the disk could not take yet
        self.hb_seq = 0
        self.last_heartbeat_at: str | None = None
        self.started = time.monotonic()
        self.running = False
        self.restart_requested = False
        self._hb_timer: object | None = None

    # --- plumbing ---------------------------------------------------------------------
    def post(self, item: tuple) -> None:
        """Thread-safe: the only way other threads talk to the core."""
        self.q.put(item)

    def call_later(self, delay: float, fn: Callable[[], None]) -> object:
        entry = [time.monotonic() + delay, next(self._timer_seq), fn]
        heapq.heappush(self._timers, entry)  # type: ignore[arg-type]
        return entry

    def cancel(self, timer: object | None) -> None:
        if timer is not None:
            timer[2] = None  # type: ignore[index]

    def every(self, interval: Callable[[], float], fn: Callable[[], None]) -> None:
        def tick() -> None:
            try:
                fn()
            finally:
                self.call_later(interval(), tick)
        self.call_later(interval(), tick)

    def run(self) -> None:
        """The core loop; returns after `stop()`."""
        self.running = True
        self._start()
        while self.running:
            timeout = max(0.0, min(1.0, self._timers[0][0] - time.monotonic())) if self._timers else 1.0
            batch = []
            try:
                batch.append(self.q.get(timeout=timeout))
                while len(batch) < BATCH:
                    batch.append(self.q.get_nowait())
            except queue.Empty:
                pass
            for item in batch:
                self._dispatch(item)
            self._flush_delivered()
            self._run_timers()
        if self.player is not None:
            self.player.close()  # relays off; final acks and proof of play for what was playing
        if self.board is not None:
            self.board.close()
        self._shutdown()

    def _dispatch(self, item: tuple) -> None:
        try:
            handler = getattr(self, "_on_" + item[0].replace(".", "_"))
            handler(*item[1:])
        except Exception:
            log.exception("error handling %s", item[0])

    def _run_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, fn = heapq.heappop(self._timers)
            if fn is None:
                continue
            try:
                fn()
            except Exception:
                log.exception("error in timer %s", getattr(fn, "__name__", fn))

    def notify(self, *lines: str) -> None:
        if self.notifier:
            self.notifier.notify(*lines)

    def _on_noop(self) -> None:
        pass

    def _on_call(self, fn: Callable[[], None]) -> None:
        fn()

    def _on_audio_started(self, token: int, t_first: float) -> None:
        self.player.on_started(token, t_first)

    def _on_audio_ended(self, token: int, position_s: float, error: str | None) -> None:
        self.player.on_ended(token, position_s, error)

    def _on_audio_stalled(self, token: int, position_s: float) -> None:
        self.player.on_stalled(token, position_s)

    def _on_audio_device(self, ok: bool, message: str) -> None:
        self.player.on_device(ok, message)

    def _on_display_rendered(self, token: int, error: str | None, at: float) -> None:
        if self.board is not None:
            self.board.rendered(token, error, at)

    def _on_display_video_ended(self, token: int, error: str | None) -> None:
        if self.board is not None:
            self.board.video_ended(token, error)

    def _on_display_device(self, ok: bool, message: str) -> None:
        self.faults.set("display_device", None if ok else message)

    def _start(self) -> None:
        # READY once config is loaded and this loop runs, not when the broker answers: the box works offline.
        self.notify("READY=1", f"STATUS=running as {self.device_id}")
        if self.store.recovered:  # the province learns that this box lost its state database (and why)
            self.emit_event("store.recovered", self.store.recovered)
        self.call_later(0, self.envelope.warm_up)
        for part in (self.player, self.scheduler, self.prefetcher, self.board, self.sensors, self.monitor):
            if part is not None:  # a test's core may have only some of them
                part.start()
        interval = self.notifier.watchdog_interval() if self.notifier else None
        if interval:
            self.every(lambda: interval, self._watchdog)
        self._schedule_heartbeat()
        # Forget a jti only once the trusted floor proves it expired: a clock that ran ahead (or a reset) must not
        # let a recorded command through again.
        self.every(lambda: 3600.0, lambda: self.store.prune_seen(min(self.clock(), self.store.time_floor())))
        self._resume()

    def _watchdog(self) -> None:
        # WATCHDOG=1 only while our own checks pass: this loop runs, SQLite answers, the link thread lives.
        if self.store.check() and (self.link is None or self.link.alive()):
            self.notify("WATCHDOG=1")
        else:
            log.error("self-check failed; withholding the watchdog ping so systemd restarts the agent")

    # --- link events --------------------------------------------------------------------
    def _on_link_connected(self, generation: int, session_present: bool) -> None:
        self.faults.clear("mqtt_auth")
        # paho retransmits what it had in flight; start the window from what it does not hold.
        self._pump()

    def _on_link_disconnected(self, reason: str) -> None:
        pass  # the link reconnects on its own; the outbox simply waits

    def _on_link_refused(self, reason: str, auth: bool) -> None:
        if auth:
            self.faults.raise_("mqtt_auth", f"broker refused our credentials: {reason}")

    def _on_link_published(self, mid: int, error: str | None) -> None:
        seq = self._inflight.pop(mid, None)
        if seq is None:
            return
        if error:
            log.error("broker refused outbox message %d: %s (dropped: a retry would be refused too)", seq, error)
        self._delivered.append(seq)

    def _flush_delivered(self) -> None:
        if self._delivered:
            self.store.delivered(self._delivered)
            self._delivered = []
            self._pump()

    def _pump(self) -> None:
        """Publish outbox rows in order, keeping at most OUTBOX_WINDOW in flight."""
        link = self.link
        if link is None or not link.connected:
            return
        room = OUTBOX_WINDOW - len(self._inflight)
        if room <= 0:
            return
        for seq, topic, payload in self.store.pending(after=self._last_submitted, limit=room):
            mid = link.publish(topic, payload, qos=1)
            if mid is None:
                break
            self._inflight[mid] = seq
            self._last_submitted = seq

    def _on_link_message(self, topic: str, kind: str | None, payload: bytes, mid: int, qos: int, dup: bool,
                         generation: int) -> None:
        self.intake(topic, kind, payload, ack=lambda: self.link.ack(mid, qos, generation), dup=dup)  # type: ignore

    # --- intake -------------------------------------------------------------------------
    def intake(self, topic: str, kind: str | None, payload: bytes, *, ack: Callable[[], None],
               dup: bool = False) -> None:
        """Verify, record durably, PUBACK, execute: flow 1 of ARCHITECTURE.md."""
        try:
            msg = self.envelope.open(payload, now=self.clock(), floor=self.store.time_floor(),
                                     areas=self.cfg["device"]["areas"], schedule=kind == "schedule")
            msg.topic = topic
            if (kind == "schedule") != (msg.type == "schedule"):
                raise Rejection("bad_schema", "type: schedule documents go on schedule topics, commands on cmd "
                                "topics", jti=msg.jti, type_=msg.type)
            if kind == "schedule":
                # Retained and redelivered by design: `version` is the replay guard here, not the jti.
                self._execute(self.registry.get("schedule"), msg, msg.params)
                ack()
                return
            if self.store.seen(msg.jti):
                if dup and self.store.in_inbox(msg.jti):
                    log.info("[%s] redelivered by the broker; already recorded", msg.jti)
                    ack()
                    return
                raise Rejection("replayed", f"jti {msg.jti!r} was already received", jti=msg.jti, type_=msg.type)
            command = self.registry.get(msg.type)
            if command is None:
                raise Rejection("unknown_type", f"type {msg.type!r} is not supported by this agent (supported: "
                                f"{', '.join(self.registry.types())})", jti=msg.jti, type_=msg.type)
            try:
                params = command.check(msg.params)
            except SchemaError as e:
                raise Rejection("bad_schema", str(e), jti=msg.jti, type_=msg.type) from None
        except Rejection as r:
            log.warning("[%s] rejected %s on %s: %s", r.jti or "-", r.code, topic, r.message)
            self._finish(r.jti, r.type, Result("rejected", r.code, r.message))
            self.emit_event("command.rejected", {"id": r.jti, "type": r.type, "topic": topic, "code": r.code,
                                                 "message": r.message})
            ack()
            return
        if command.urgent and command.urgent(params):
            status = self._execute(command, msg, params)  # the first sample goes out before the fsync below
            if status != "rejected":  # refused outright: nothing to remember, as for any rejection
                # still running: kept in the inbox so a restart resumes it; finished already: only the guard
                self.store.record(msg.jti, msg.exp or 0, msg.iat, topic, msg.claims if status is None else None)
            ack()
            log.info("[%s] urgent %s from %s", msg.jti, msg.type, topic)
            return
        self.store.record(msg.jti, msg.exp or 0, msg.iat, topic, msg.claims)
        ack()
        log.info("[%s] accepted %s from %s", msg.jti, msg.type, topic)
        self._execute(command, msg, params)

    def _execute(self, command: Any, msg: Message, params: Any) -> str | None:
        """Run a handler; the final status if it finished at once, None if it goes on."""
        if command.long:
            self._awaiting_accept.add(msg.jti)
        try:
            result = command.run(self, msg, params)
        except Rejection as r:
            self._awaiting_accept.discard(msg.jti)  # refused outright: only the final ack
            result = Result("rejected", r.code, r.message)
        except Exception as e:
            log.exception("[%s] %s failed", msg.jti, msg.type)
            result = Result("failed", "internal", f"{type(e).__name__}: {e}")
        if result is not None:
            self.complete(msg, result)
            return result.status
        self._accept(msg)
        return None

    def _accept(self, msg: Message) -> None:
        if msg.jti in self._awaiting_accept:
            self._awaiting_accept.discard(msg.jti)
            self._send_ack(msg.jti, msg.type, Result("accepted"))

    def complete(self, msg: Message, result: Result) -> None:
        """The final ack of a command (long-running handlers call this when they end)."""
        self._accept(msg)  # a long command's `accepted` always comes first
        log.info("[%s] %s %s %s", msg.jti, msg.type, result.status, result.code)
        self._finish(msg.jti, msg.type, result)

    def _resume(self) -> None:
        """After a crash: finish what was recorded and PUBACKed but not acked; close a pending restart."""
        pending = self.store.get_json("restart_pending")
        if pending:
            self._finish(None, pending["type"], Result(message="agent restarted", result={"boot_id": self.boot_id}),
                         jti_echo=pending["jti"], kv={"restart_pending": None})
        for jti, topic, claims in self.store.unfinished():
            command = self.registry.get(claims.get("type"))
            if command is None:
                self._finish(jti, claims.get("type"), Result("failed", "internal", "command type no longer known"))
                continue
            msg = Message(jti=jti, type=claims["type"], iat=claims["iat"], exp=claims.get("exp"),
                          params=claims.get("params", {}), claims=claims, topic=topic)
            if msg.exp is not None and msg.exp < self.clock():
                self.complete(msg, Result("failed", "expired", "expired while the agent was down"))
                continue
            log.info("[%s] resuming %s recorded before a restart", jti, msg.type)
            try:
                params = command.check(msg.params)
            except SchemaError as e:
                self.complete(msg, Result("rejected", "bad_schema", str(e)))
                continue
            self._execute(command, msg, params)

    # --- acks and events -----------------------------------------------------------------
    def _ack_payload(self, jti: str | None, type_: str | None, r: Result) -> dict:
        return {"id": jti, "device_id": self.device_id, "type": type_, "status": r.status, "code": r.code,
                "message": r.message, "at": rfc3339(self.clock()), "result": r.result}

    def _send_ack(self, jti: str | None, type_: str | None, r: Result) -> None:
        self.store.enqueue(self.link_topics("ack"), self._ack_payload(jti, type_, r))
        self._pump()

    def _finish(self, jti: str | None, type_: str | None, r: Result, *, jti_echo: str | None = None,
                kv: dict | None = None) -> None:
        payload = self._ack_payload(jti_echo or jti, type_, r)
        self.store.finish(jti, self.link_topics("ack"), payload, kv=kv)
        self._pump()

    def emit_event(self, kind: str, data: dict) -> None:
        """A durable event: written to the outbox first, published when connected, dropped on PUBACK.

        When the state directory cannot take it (a full or failing disk), it waits in memory, in order,
        and is written by the next event or health check that finds room (`flush_unwritten`)."""
        self._unwritten.append({"id": str(uuid.uuid4()), "device_id": self.device_id, "at": rfc3339(self.clock()),
                                "kind": kind, "data": data})
        self.flush_unwritten()

    def flush_unwritten(self) -> None:
        if not self._unwritten:
            return
        while self._unwritten:
            try:
                self.store.enqueue(self.link_topics("event"), self._unwritten[0])
            except sqlite3.OperationalError as e:  # "database or disk is full", "disk I/O error"
                if len(self._unwritten) == 1 or len(self._unwritten) % 100 == 0:
                    log.error("cannot write events to the state database (%s): %d waiting in memory", e,
                              len(self._unwritten))
                return
            self._unwritten.popleft()
        self._pump()

    def link_topics(self, kind: str) -> str:
        return f"{self.cfg['mqtt']['topic_prefix']}/dev/{self.device_id}/{kind}"

    # --- heartbeat ----------------------------------------------------------------------
    def heartbeat(self, *, advance: bool = True) -> dict:
        if advance:
            self.hb_seq += 1
        dev = self.cfg["device"]
        return {
            "device_id": self.device_id, "seq": self.hb_seq, "at": rfc3339(self.clock()), "boot_id": self.boot_id,
            "uptime_s": round(time.monotonic() - self.started, 1), "agent_version": __version__,
            **self._audio_state(),
            **(self.scheduler.state() if self.scheduler else {"schedule_versions": {}, "next_item": None}),
            "cache": self.prefetcher.stats() if self.prefetcher else None, "outbox_pending": self.store.outbox_count(),
            "sys": self.health.sys_sample(), "net": self.health.net(), "clock_synced": self.health.clock_synced(),
            "sensors": self.sensors.state() if self.sensors else {}, "faults": self.faults.codes(),
            "capabilities": list(dev["capabilities"]),
            "areas": list(dev["areas"]), "display": self.board.state() if self.board is not None else None,
        }

    def _audio_state(self) -> dict:
        if self.player is None:
            return {"state": "idle", "playing": None, "volume": None, "amp": None}
        st = self.player.state()
        return {k: st[k] for k in ("state", "playing", "volume", "amp")}

    def _schedule_heartbeat(self) -> None:
        self.cancel(self._hb_timer)
        self._hb_timer = self.call_later(self.cfg["device"]["heartbeat_s"], self._heartbeat_tick)

    def _heartbeat_tick(self) -> None:
        self._schedule_heartbeat()
        link = self.link
        if link is None or not link.connected:
            return  # QoS 0 and never queued: a stale heartbeat says nothing
        hb = self.heartbeat()
        link.publish(self.link_topics("heartbeat"), json.dumps(hb).encode(), qos=0)
        self.last_heartbeat_at = hb["at"]

    # --- remote config, logs, restart ------------------------------------------------------
    def apply_config(self, changes: dict[str, Any]) -> None:
        overrides = self.store.get_json("config_overrides", {})
        overrides.update(changes)
        self.store.put_json("config_overrides", overrides)
        for key, value in changes.items():
            config_mod.set_key(self.cfg, key, value)
            log.info("config %s set remotely to %s", key, json.dumps(value, ensure_ascii=False))
        if "device.areas" in changes and self.link is not None:
            self.link.set_areas(self.cfg["device"]["areas"])
        if "device.areas" in changes and self.scheduler is not None:
            self.scheduler.areas_changed()
        if "display.power_schedule" in changes and self.board is not None:
            self.board.power_schedule_changed()
        if "device.heartbeat_s" in changes:
            self._schedule_heartbeat()

    def log_tail(self, n: int) -> list[str]:
        return self.ring.tail(n) if self.ring else []

    def restart(self, msg: Message | None) -> None:
        if msg is not None:
            # `accepted` now, atomically with a note that makes the final `done` go out after the restart.
            self._finish(msg.jti, msg.type, Result("accepted", message="restarting"),
                         kv={"restart_pending": {"jti": msg.jti, "type": msg.type}})
        self.restart_requested = True
        self.stop()

    def stop(self) -> None:
        self.running = False

    def _shutdown(self, timeout: float = 3.0) -> None:
        """Give the outbox a moment to drain (e.g. the `accepted` of a restart) before the link goes.

        Incoming messages are left un-PUBACKed here, so the broker redelivers them after the restart.
        """
        deadline = time.monotonic() + timeout
        while self.link and self.link.connected and self.store.outbox_count():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                item = self.q.get(timeout=left)
            except queue.Empty:
                break
            if item[0] == "link.published":
                self._dispatch(item)
            self._flush_delivered()

    # --- local socket (technician CLI) ----------------------------------------------------
    def _on_ipc(self, op: str, args: dict, future: Reply) -> None:
        try:
            value = getattr(self, "ipc_" + op)(**args)
            if callable(value):
                value(future)  # answered later, from a worker (e.g. a screenshot being encoded)
            else:
                future.set_result(value)
        except Exception as e:
            future.set_exception(e)

    def ipc_status(self) -> dict:
        link = self.link
        return {
            "device_id": self.device_id, "boot_id": self.boot_id, "agent_version": __version__,
            "connected": bool(link and link.connected), "broker": link.broker if link else None,
            "link_error": link.last_error if link else None, "auth_failed": bool(link and link.auth_failed),
            "connect_attempts": link.attempts if link else 0, "last_heartbeat_at": self.last_heartbeat_at,
            "outbox_pending": self.store.outbox_count(), "faults": self.faults.active(),
            "heartbeat": self.heartbeat(advance=False),
            "audio": self.player.state() if self.player else None,
        }

    def ipc_logs(self, lines: int = 200) -> dict:
        return {"lines": self.log_tail(lines)}

    def ipc_play(self, source: dict, level: str = "priority", **params: Any) -> dict:
        """A technician's play: priority by default, never emergency (it cannot override an alert)."""
        from .commands import PLAY, make_play

        if level == "emergency":
            raise ValueError("a technician's play runs at normal or priority, never emergency")
        checked = PLAY.check({"source": source, "level": level, **params}, "play")
        play_id = f"cli-{uuid.uuid4().hex[:12]}"
        self.player.submit(make_play(self, play_id, checked, origin="cli"))
        return {"id": play_id, "level": level}

    def ipc_play_file(self, path: str, **params: Any) -> dict:
        """Copy a local file into the media cache (on a worker), then play it."""
        import threading

        play_id = f"cli-{uuid.uuid4().hex[:12]}"

        def work() -> None:
            try:
                digest = self.player.cache.add_file(Path(path))
            except OSError as e:
                log.error("cannot play %s: %s", path, e)
                return
            source = {"kind": "file", "url": Path(path).resolve().as_uri(), "sha256": digest}
            self.post(("call", lambda: self.ipc_play(source, **params)))

        Path(path).stat()  # a missing or unreadable file is the technician's error now, not later
        threading.Thread(target=work, daemon=True).start()
        return {"id": play_id, "queued": path}

    def ipc_schedule(self, hours: float = 24) -> dict:
        return {"upcoming": self.scheduler.upcoming(float(hours)), **self.scheduler.state()}

    def ipc_cache(self, action: str = "status") -> dict:
        pf = self.prefetcher
        if action == "prefetch":
            pf.run()
        elif action == "purge":
            removed = pf.cache.evict(0, keep=set(pf.needed()))
            return {"removed": len(removed), **pf.stats()}
        needed = pf.needed()
        return {**pf.stats(), "needed": len(needed), "due_not_cached": sum(
            1 for d in needed if not pf.cache.path(d).exists()), "fetching": pf.busy,
            "failures": {d[:12]: m["error"] for d, m in pf.missing.items()}}

    def ipc_stop(self, level: str | None = None) -> dict:
        return {"stopped": self.player.stop(level=level)}

    def ipc_volume(self, volume: int, zones: list[str] | None = None) -> dict:
        from .commands import _zones

        self.player.set_volume(int(volume), _zones(self, zones))
        return self.player.state()["volume"]

    def ipc_amp(self, on: bool, zones: list[str] | None = None) -> dict:
        from .commands import _zones

        self.player.amp.force(bool(on), _zones(self, zones))
        return self.player.amp.state()

    def ipc_test(self) -> dict:
        """A chime then a 1 kHz test tone through each zone in turn, relay included."""
        ids = []
        for zone in self.cfg["zones"]:
            for source in ({"kind": "tone", "name": "chime"}, {"kind": "tone", "name": "test", "duration_s": 2}):
                ids.append(self.ipc_play(source, zones=[zone["name"]], title=f"loa test {zone['name']}")["id"])
        return {"ids": ids, "zones": [z["name"] for z in self.cfg["zones"]]}

    def ipc_display(self, action: str = "status") -> Any:
        """The e-board for a technician: status, screenshot (PNG as base64), on, off, clear."""
        board = self.board
        if board is None:
            raise ValueError("this box has no display (capabilities: "
                             f"{', '.join(self.cfg['device']['capabilities'])})")
        if action in ("on", "off"):
            board.set_power(action == "on")
        elif action == "clear":
            board.clear()
        elif action == "screenshot":
            import base64

            def answer(future: Reply) -> None:
                board.screen.screenshot(16 * 2**20, lambda png, size: future.set_result(
                    {"png_b64": base64.b64encode(png).decode() if png else None, "size": size}))
            return answer
        return {**board.state(), **board.screen.state()}

    def ipc_selftest(self, calibrate: bool = False) -> Any:
        """`loa selftest`: answered when every check has run (a worker-side wait, never the core's)."""
        def answer(future: Reply) -> None:
            self.selftest.start(calibrate=calibrate, done=lambda r: future.set_result(
                {"status": r.status, "code": r.code, "message": r.message, **r.result}))
        return answer

    def ipc_sim_drive(self, pin: int, active: bool) -> dict:
        """Drive a simulated GPIO input as the outside world would (labs and tests; `gpio.backend: sim`)."""
        gpio = self.player.gpio
        if gpio.name != "sim":
            raise ValueError("sim_drive works only with gpio.backend sim")
        gpio.drive(int(pin), bool(active))  # type: ignore[attr-defined]
        return {"pin": pin, "active": active}

    def ipc_restart(self) -> dict:
        log.warning("restart requested from the local CLI")
        self.restart(None)
        return {"restarting": True}
