"""The core: the one owner of the agent's state, run by one thread (agent/loop.py) fed by typed messages.

Here: intake (verify, record, PUBACK, execute: docs/architecture.md, flow 1), execution of commands and
of local operations through the same registry, recovery after a restart, the heartbeat and remote
config changes. The outbox (agent/outbox.py) sends what the core writes; the components in `Parts`
own sound, schedules, alerts, the e-board and health, and talk back only through the Runtime.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from drivers.reports import AudioDevice, DisplayDevice, FrameShown, TrackEnded, TrackStalled, TrackStarted, VideoEnded

from . import __version__
from . import config as config_mod
from .commands import REGISTRY, Command, Registry
from .envelope import Envelope, Message, Policy
from .errors import Rejection, SchemaError
from .i18n import Msg
from .messages import (
    IpcRequest,
    LinkConnected,
    LinkDisconnected,
    LinkMessage,
    LinkPublished,
    LinkRefused,
    Posted,
)
from .runtime import Result
from .timeutil import rfc3339

if TYPE_CHECKING:
    from .alerting import Alerts
    from .asrun import AsRun
    from .audio.player import Player
    from .display.board import Board
    from .health import Health
    from .link import Link
    from .logbuffer import RingHandler
    from .maintenance import Maintenance
    from .monitor import Monitor
    from .prefetch import Prefetcher
    from .scheduler import Scheduler
    from .sdnotify import Notifier
    from .selftest import SelfTest
    from .sensors import Sensors
    from .services import Services
    from .store import Store
    from .updater import Updater

log = logging.getLogger("agent.core")


def self_check(store: Store, link: Link | None) -> bool:
    """The agent's own checks, which feed the watchdog and an update's health gate: SQLite answers and the
    MQTT link's thread lives."""
    return store.check() and (link is None or link.alive())


@dataclass(frozen=True)
class Parts:
    """The components, made and wired by `agent.daemon.build`."""

    player: Player
    scheduler: Scheduler
    prefetcher: Prefetcher
    alerts: Alerts
    asrun: AsRun
    selftest: SelfTest
    sensors: Sensors
    monitor: Monitor
    maintenance: Maintenance
    updater: Updater
    board: Board | None  # on a box with the display capability


class Core:
    def __init__(self, rt: Services, store: Store, parts: Parts, health: Health, *, link: Link | None = None,
                 boot_id: str | None = None, notifier: Notifier | None = None, ring: RingHandler | None = None,
                 registry: Registry = REGISTRY):
        self.rt = rt
        self.cfg = rt.cfg
        self.clock = rt.clock
        self.loop = rt.loop
        self.outbox = rt.outbox
        self.faults = rt.faults
        self.store = store
        self.parts = parts
        self.health = health
        self.link = link
        self.boot_id = boot_id or str(uuid.uuid4())
        self.notifier = notifier
        self.ring = ring
        self.registry = registry
        self.device_id: str = rt.device_id
        self.envelope = Envelope(Policy.from_config(self.cfg["security"]), self.device_id)
        self.hb_seq = 0
        self.last_heartbeat_at: str | None = None
        self.started = time.monotonic()
        self._hb_timer: object | None = None
        from .local import LocalOps

        self.local_ops = LocalOps(self)
        player, board = parts.player, parts.board
        # Every message the core thread handles, by type (Call and Wake are the loop's own).
        self.handlers: dict[type, Callable[[Any], None]] = {
            LinkConnected: self._on_link_connected,
            LinkDisconnected: lambda m: parts.asrun.link_changed(False),  # the link reconnects on its own
            LinkRefused: self._on_link_refused,
            LinkPublished: self.outbox.published,
            LinkMessage: self._on_link_message,
            IpcRequest: self.local_ops.handle,
            TrackStarted: player.on_started,
            TrackEnded: player.on_ended,
            TrackStalled: player.on_stalled,
            AudioDevice: player.on_device,
            FrameShown: board.rendered if board is not None else lambda m: None,
            VideoEnded: board.video_ended if board is not None else lambda m: None,
            DisplayDevice: lambda m: self.faults.set("display_device", None if m.ok else m.message),
        }

    # --- running --------------------------------------------------------------------------
    def post(self, msg: Posted) -> None:
        """Thread-safe: the only way other threads talk to the core."""
        self.loop.post(msg)

    @property
    def running(self) -> bool:
        return self.loop.running

    @property
    def restart_requested(self) -> bool:
        return self.loop.restart_requested

    def run(self) -> None:
        """The core loop; returns after `stop()`."""
        self.loop.running = True
        self._start()
        self.loop.run(self.handlers, after_batch=self.outbox.flush_delivered)
        self.notify("STOPPING=1")  # from here no sound starts: a restart's silent time begins
        self.parts.player.close()  # relays off; final acks and proof of play for what was playing
        if self.parts.board is not None:
            self.parts.board.close()
        self.parts.asrun.close()
        self.outbox.drain(self.loop, timeout=3.0)

    def stop(self) -> None:
        self.loop.stop()

    def notify(self, *lines: str) -> None:
        if self.notifier:
            self.notifier.notify(*lines)

    def _start(self) -> None:
        # READY once config is loaded and this loop runs, not when the broker answers: the box works offline.
        self.notify("READY=1", f"STATUS=running as {self.device_id}")
        if self.store.recovered:  # the province learns that this box lost its state database (and why)
            self.rt.emit_event("store.recovered", self.store.recovered)
        self.loop.call_later(0, self.envelope.warm_up)
        p = self.parts
        for part in (p.player, p.scheduler, p.prefetcher, p.board, p.sensors, p.monitor, p.updater, p.asrun):
            if part is not None:
                part.start()
        interval = self.notifier.watchdog_interval() if self.notifier else None
        if interval:
            # At once, then every half WatchdogSec: a restart into a new release (an exec, the same service)
            # must not find the watchdog's time already spent by the old process's shutdown.
            self.loop.call_later(0, self._watchdog)
            self.loop.every(lambda: interval, self._watchdog)
        self._schedule_heartbeat()
        # Forget a jti only once the trusted floor proves it expired: a clock that ran ahead (or a reset) must not
        # let a recorded command through again.
        self.loop.every(lambda: 3600.0, lambda: self.store.prune_seen(min(self.clock(), self.store.time_floor())))
        self._resume()

    def _watchdog(self) -> None:
        # WATCHDOG=1 only while our own checks pass: this loop runs, SQLite answers, the link thread lives.
        if self_check(self.store, self.link):
            self.notify("WATCHDOG=1")
        else:
            log.error("self-check failed; withholding the watchdog ping so systemd restarts the agent")

    # --- link events --------------------------------------------------------------------
    def _on_link_connected(self, m: LinkConnected) -> None:
        self.faults.clear("mqtt_auth")
        self.parts.asrun.link_changed(True)
        self.outbox.connected()

    def _on_link_refused(self, m: LinkRefused) -> None:
        if m.auth:
            self.faults.raise_("mqtt_auth", Msg("broker refused our credentials: %(reason)s", reason=m.reason))

    def _on_link_message(self, m: LinkMessage) -> None:
        link = self.link
        assert link is not None  # only a link posts these
        self.intake(m.topic, m.kind, m.payload, ack=lambda: link.ack(m.mid, m.qos, m.generation), dup=m.dup,
                    received=m.at)

    # --- intake -------------------------------------------------------------------------
    def intake(self, topic: str, kind: str | None, payload: bytes, *, ack: Callable[[], None],
               dup: bool = False, received: float = 0.0) -> None:
        """Verify, record durably, PUBACK, execute: flow 1 of docs/architecture.md."""
        t_core = time.monotonic()  # stage stamps of the urgent path, logged at debug level (scripts/bench_alert)
        try:
            msg = self.envelope.open(payload, now=self.clock(), floor=self.store.time_floor(),
                                     areas=self.cfg["device"]["areas"], schedule=kind == "schedule")
            t_verified = time.monotonic()
            msg.topic = topic
            if (kind == "schedule") != (msg.type == "schedule"):
                raise Rejection("bad_schema", "type: schedule documents go on schedule topics, commands on cmd "
                                "topics", jti=msg.jti, type_=msg.type)
            if kind == "schedule":
                # Retained and redelivered by design: `version` is the replay guard here, not the jti.
                self._execute(self.registry.commands["schedule"], msg, msg.params)
                ack()
                return
            if self.store.seen(msg.jti):
                if dup and self.store.in_inbox(msg.jti):
                    log.info("[%s] redelivered by the broker; already recorded", msg.jti)
                    ack()
                    return
                raise Rejection("replayed", f"jti {msg.jti!r} was already received", jti=msg.jti, type_=msg.type)
            command = self._command(msg.type, msg.jti)
            params = self._check(command, msg.params, msg.jti)
        except Rejection as r:
            log.warning("[%s] rejected %s on %s: %s", r.jti or "-", r.code, topic, r.message)
            self.outbox.finish(r.jti, r.type, Result("rejected", r.code, r.message))
            self.rt.emit_event("command.rejected", {"id": r.jti, "type": r.type, "topic": topic, "code": r.code,
                                                    "message": r.message})
            ack()
            return
        if command.urgent and command.urgent(params):
            t_checked = time.monotonic()
            status = self._execute(command, msg, params)  # the first sample goes out before the fsync below
            t_handler = time.monotonic()
            if status != "rejected":  # refused outright: nothing to remember, as for any rejection
                # still running: kept in the inbox so a restart resumes it; finished already: only the guard
                self.store.record(msg.jti, msg.exp or 0, msg.iat, topic, msg.claims if status is None else None)
            ack()
            log.debug("[%s] urgent path: recv=%.6f core=%.6f verified=%.6f checked=%.6f handler=%.6f recorded=%.6f",
                      msg.jti, received, t_core, t_verified, t_checked, t_handler, time.monotonic())
            log.info("[%s] urgent %s from %s", msg.jti, msg.type, topic)
            return
        self.store.record(msg.jti, msg.exp or 0, msg.iat, topic, msg.claims)
        ack()
        log.info("[%s] accepted %s from %s", msg.jti, msg.type, topic)
        self._execute(command, msg, params)

    def _command(self, type_: str, jti: str | None) -> Command:
        command = self.registry.get(type_)
        if command is None:
            raise Rejection("unknown_type", f"type {type_!r} is not supported by this agent (supported: "
                            f"{', '.join(self.registry.types())})", jti=jti, type_=type_)
        return command

    @staticmethod
    def _check(command: Command, params: dict, jti: str | None) -> Any:
        try:
            return command.check(params)
        except SchemaError as e:
            raise Rejection("bad_schema", e.msg, jti=jti, type_=command.type) from None

    def _execute(self, command: Command, msg: Message, params: Any) -> str | None:
        """Run a handler; the final status if it finished at once, None if it goes on."""
        if command.long:
            self.outbox.expect_accept(msg)
        try:
            result = command.run(self, msg, params)
        except Rejection as r:
            self.outbox.refused(msg)
            result = Result("rejected", r.code, r.message)
        except Exception as e:
            log.exception("[%s] %s failed", msg.jti, msg.type)
            result = Result("failed", "internal", f"{type(e).__name__}: {e}")
        if result is not None:
            self.outbox.complete(msg, result)
            return result.status
        self.outbox.accept(msg)
        return None

    def complete(self, msg: Message, result: Result) -> None:
        """The final ack of a command (long-running handlers call this when they end)."""
        self.outbox.complete(msg, result)

    def local(self, type_: str, params: dict, reply: Callable[[str, Result], None]) -> tuple[str, Result | None]:
        """A technician's operation (`loa volume 50`): the MQTT command of the same name, with its schema and
        handler, answered to `reply` instead of the province. Raises Rejection (the code and message its ack
        would carry) where it is refused; returns its id and its result if it finished at once, or None if it
        goes on (then `reply(id, result)` gets it)."""
        command = self._command(type_, None)
        checked = self._check(command, params, None)
        out: list[Result] = []
        jti = f"cli-{uuid.uuid4().hex[:12]}"
        msg = Message(jti=jti, type=type_, iat=int(self.clock()), exp=None, params=params, claims={},
                      topic="local", reply=out.append)
        self._execute(command, msg, checked)
        if not out:  # goes on: its end goes to the caller's `reply`
            msg.reply = lambda result: reply(jti, result)
            return jti, None
        if out[0].status == "rejected":
            raise Rejection(out[0].code, out[0].message, type_=type_)
        return jti, out[0]

    def _resume(self) -> None:
        """After a crash: finish what was recorded and PUBACKed but not acked; close a pending restart."""
        pending = self.store.get_json("restart_pending")
        if pending:
            self.outbox.finish(None, pending["type"], Result(message="agent restarted",
                                                             result={"boot_id": self.boot_id}),
                               jti_echo=pending["jti"], kv={"restart_pending": None})
        for jti, topic, claims in self.store.unfinished():
            command = self.registry.get(claims.get("type"))
            if command is None:
                self.outbox.finish(jti, claims.get("type"), Result("failed", "internal",
                                                                   "command type no longer known"))
                continue
            msg = Message(jti=jti, type=claims["type"], iat=claims["iat"], exp=claims.get("exp"),
                          params=claims.get("params", {}), claims=claims, topic=topic)
            if msg.exp is not None and msg.exp < self.clock() and not command.outlives_exp:
                self.complete(msg, Result("failed", "expired", "expired while the agent was down"))
                continue
            log.info("[%s] resuming %s recorded before a restart", jti, msg.type)
            try:
                params = command.check(msg.params)
            except SchemaError as e:
                self.complete(msg, Result("rejected", "bad_schema", str(e)))
                continue
            self._execute(command, msg, params)

    # --- heartbeat ----------------------------------------------------------------------
    def heartbeat(self, *, advance: bool = True) -> dict:
        if advance:
            self.hb_seq += 1
        dev, p = self.cfg["device"], self.parts
        audio = p.player.state()
        return {
            "device_id": self.device_id, "seq": self.hb_seq, "at": rfc3339(self.clock()), "boot_id": self.boot_id,
            "uptime_s": round(time.monotonic() - self.started, 1), "agent_version": __version__,
            **{k: audio[k] for k in ("state", "playing", "volume", "amp")},
            **p.scheduler.state(),
            "cache": p.prefetcher.stats(), "outbox_pending": self.store.outbox_count(),
            "sys": self.health.sys_sample(), "clock_synced": self.health.clock_synced(),
            "net": {**self.health.net(), "broker": self.link.in_use if self.link else None},  # host:port in use
            "sensors": p.sensors.state(), "faults": self.faults.codes(),
            "capabilities": list(dev["capabilities"]),
            "areas": list(dev["areas"]), "display": p.board.state() if p.board is not None else None,
        }

    def _schedule_heartbeat(self) -> None:
        self.loop.cancel(self._hb_timer)  # type: ignore[arg-type]
        self._hb_timer = self.loop.call_later(self.cfg["device"]["heartbeat_s"], self._heartbeat_tick)

    def _heartbeat_tick(self) -> None:
        self._schedule_heartbeat()
        link = self.link
        if link is None or not link.connected:
            return  # QoS 0 and never queued: a stale heartbeat says nothing
        hb = self.heartbeat()
        link.publish(self.outbox.topics.heartbeat, json.dumps(hb).encode(), qos=0)
        self.last_heartbeat_at = hb["at"]

    # --- remote config, logs, restart ------------------------------------------------------
    def apply_config(self, changes: dict[str, Any]) -> None:
        overrides = self.store.get_json("config_overrides", {})
        overrides.update(changes)
        self.store.put_json("config_overrides", overrides)
        for key, value in changes.items():
            config_mod.set_key(self.cfg, key, value)
            log.info("config %s set remotely to %s", key, json.dumps(value, ensure_ascii=False))
        if "device.areas" in changes:
            if self.link is not None:
                self.link.set_areas(self.cfg["device"]["areas"])
            self.parts.scheduler.areas_changed()
        if "display.power_schedule" in changes and self.parts.board is not None:
            self.parts.board.power_schedule_changed()
        if "device.heartbeat_s" in changes:
            self._schedule_heartbeat()
        if "announcements" in changes:
            self.parts.prefetcher.run()  # have the new recordings before an alert names them

    def log_tail(self, n: int) -> list[str]:
        return self.ring.tail(n) if self.ring else []

    def restart(self, msg: Message) -> None:
        if msg.reply is None:
            # `accepted` now, atomically with a note that makes the final `done` go out after the restart.
            self.outbox.finish(msg.jti, msg.type, Result("accepted", message="restarting"),
                               kv={"restart_pending": {"jti": msg.jti, "type": msg.type}})
        self.loop.stop(restart=True)
