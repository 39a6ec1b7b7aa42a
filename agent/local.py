"""The technician's operations from the local socket (agent/ipc.py), run on the core thread.

Whatever changes state goes through `Core.local`: the MQTT command of the same name, its schema and its
handler (docs/protocol.md, "Local operations"), so `loa volume 500` is refused exactly as a `volume`
command with 500 would be. The rest only reads.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .errors import Rejection
from .i18n import Msg
from .messages import Call, IpcRequest
from .runtime import Result

if TYPE_CHECKING:
    from .core import Core
    from .ipc import Reply

log = logging.getLogger("agent.local")

# The commands a technician may run locally; those that answer only when they end are waited for.
COMMANDS = {"play", "stop", "volume", "amp", "restart", "selftest", "display.power", "display.clear", "update",
            "update.rollback"}
WAITED = {"selftest", "display.power"}


def answer(jti: str, result: Result) -> dict:
    return {"id": jti, "status": result.status, "code": result.code, "message": result.message, **result.result}


class LocalOps:
    def __init__(self, core: Core):
        self.core = core
        self.parts = core.parts

    def handle(self, req: IpcRequest) -> None:
        try:
            op: Callable[..., Any] = getattr(self, "op_" + req.op)
            value = op(**req.args)
            if callable(value):
                value(req.reply)  # answered later (a screenshot being encoded, a self-test running)
            else:
                req.reply.set_result(value)
        except Exception as e:
            req.reply.set_exception(e)

    # --- changes: the commands of the same name -----------------------------------------------
    def op_command(self, type: str, params: dict | None = None) -> Any:
        if type not in COMMANDS:
            raise ValueError(f"{type!r} cannot be run locally (local commands: {', '.join(sorted(COMMANDS))})")
        params = params or {}
        if type == "play" and params.get("level") == "emergency":
            raise Rejection("bad_schema", Msg("params.level: a technician's play runs at normal or priority, "
                                              "never emergency"))

        def waited(reply: Reply) -> None:
            try:
                jti, result = self.core.local(type, params, lambda jti, r: reply.set_result(answer(jti, r)))
            except Exception as e:
                reply.set_exception(e)
            else:
                if result is not None:
                    reply.set_result(answer(jti, result))
        if type in WAITED:
            return waited
        jti, result = self.core.local(type, params, lambda jti, r: log.info("[%s] local %s ended: %s %s", jti, type,
                                                                            r.status, r.message))
        return answer(jti, result if result is not None else Result("accepted"))

    def _play(self, source: dict, level: str = "priority", **params: Any) -> dict:
        return self.op_command("play", {"source": source, "level": level, **params})

    def op_report(self, date: str | None = None, days: int = 1) -> dict:
        if not 1 <= days <= 366:
            raise Rejection("bad_schema", Msg("days: must be between 1 and 366"))
        return {"reports": self.parts.asrun.reports(date, days)}

    def op_play_file(self, path: str, **params: Any) -> Callable[[Reply], None]:
        """Copy a local file into the media cache (on a worker), then play it; answered once it is submitted."""
        Path(path).stat()  # a missing or unreadable file is the technician's error now, not later
        cache = self.parts.player.cache

        def work(reply: Reply) -> None:
            try:
                digest = cache.add_file(Path(path))
            except OSError as e:
                reply.set_exception(e)
                return
            source = {"kind": "file", "url": Path(path).resolve().as_uri(), "sha256": digest}
            self.core.post(Call(lambda: self._answer(reply, lambda: self._play(source, **params))))

        return lambda reply: threading.Thread(target=work, args=(reply,), daemon=True).start()

    @staticmethod
    def _answer(reply: Reply, fn: Callable[[], Any]) -> None:
        try:
            reply.set_result(fn())
        except Exception as e:
            reply.set_exception(e)

    def op_test(self) -> dict:
        """A chime then a 1 kHz test tone through each zone in turn, relay included."""
        ids = []
        for zone in self.core.cfg["zones"]:
            for source in ({"kind": "tone", "name": "chime"}, {"kind": "tone", "name": "test", "duration_s": 2}):
                ids.append(self._play(source, zones=[zone["name"]], title=f"loa test {zone['name']}")["id"])
        return {"ids": ids, "zones": [z["name"] for z in self.core.cfg["zones"]]}

    # --- reads ------------------------------------------------------------------------------------
    def op_status(self) -> dict:
        core, link = self.core, self.core.link
        return {
            "device_id": core.device_id, "boot_id": core.boot_id, "agent_version": __version__,
            "connected": bool(link and link.connected), "broker": link.broker if link else None,
            "link_error": link.last_error if link else None, "auth_failed": bool(link and link.auth_failed),
            "connect_attempts": link.attempts if link else 0, "last_heartbeat_at": core.last_heartbeat_at,
            "outbox_pending": core.store.outbox_count(), "faults": core.faults.active(),
            "heartbeat": core.heartbeat(advance=False), "audio": self.parts.player.state(),
        }

    def op_update_status(self) -> dict:
        return self.parts.updater.status()

    def op_logs(self, lines: int = 200) -> dict:
        return {"lines": self.core.log_tail(lines)}

    def op_schedule(self, hours: float = 24) -> dict:
        scheduler = self.parts.scheduler
        return {"upcoming": scheduler.upcoming(float(hours)), **scheduler.state()}

    def op_cache(self, action: str = "status") -> dict:
        pf = self.parts.prefetcher
        if action == "prefetch":
            pf.run()
        elif action == "purge":
            removed = pf.cache.evict(0, keep=set(pf.needed()))
            return {"removed": len(removed), **pf.stats()}
        needed = pf.needed()
        return {**pf.stats(), "needed": len(needed), "due_not_cached": sum(
            1 for d in needed if not pf.cache.path(d).exists()), "fetching": pf.busy,
            "failures": {d[:12]: m["error"] for d, m in pf.missing.items()}}

    def op_display(self, action: str = "status") -> Any:
        """The e-board for a technician: status, or a screenshot (PNG as base64)."""
        board = self.parts.board
        if board is None:
            raise ValueError("this box has no display (capabilities: "
                             f"{', '.join(self.core.cfg['device']['capabilities'])})")
        if action == "screenshot":
            def send(reply: Reply) -> None:
                board.screen.screenshot(16 * 2**20, lambda png, size: reply.set_result(
                    {"png_b64": base64.b64encode(png).decode() if png else None, "size": size}))
            return send
        return {**board.state(), **board.screen.state()}

    def op_sim_drive(self, pin: int, active: bool) -> dict:
        """Drive a simulated GPIO input as the outside world would (labs and tests; `gpio.backend: sim`)."""
        gpio = self.parts.player.gpio
        if gpio.name != "sim":
            raise ValueError("sim_drive works only with gpio.backend sim")
        gpio.drive(int(pin), bool(active))  # type: ignore[attr-defined]
        return {"pin": pin, "active": active}
