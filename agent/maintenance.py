"""The nightly restart window (`maintenance.restart_window`, e.g. 02:00-04:00, as vendors reboot boxes):
each box restarts once a night at its own moment in the window (spread by its device id, so a province's
boxes do not reconnect all at once), only when nothing plays and no alert is active, and never twice a
night (a process started inside tonight's window has had its restart)."""

from __future__ import annotations

import logging
import zlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from .core import Core

log = logging.getLogger("agent.maintenance")


class Maintenance:
    def __init__(self, core: Core):
        self.core = core
        self.started_at = core.clock()
        self.spread = (zlib.crc32(core.device_id.encode()) % 1000) / 1000  # this box's place in the window

    def window(self, now: float) -> tuple[float, float] | None:
        """The window holding `now` (it may have opened yesterday evening), else today's; wall times."""
        w = self.core.cfg["maintenance"].get("restart_window")
        if not w:
            return None
        local = datetime.fromtimestamp(now, ZoneInfo(self.core.cfg["device"]["tz"]))
        fh, fm = map(int, w["from"].split(":"))
        th, tm = map(int, w["to"].split(":"))
        length = timedelta(minutes=((th * 60 + tm) - (fh * 60 + fm)) % (24 * 60))
        today = local.replace(hour=fh, minute=fm, second=0, microsecond=0)
        for start in (today - timedelta(days=1), today):
            if start <= local < start + length:
                return start.timestamp(), (start + length).timestamp()
        return today.timestamp(), (today + length).timestamp()

    def tick(self) -> None:
        now = self.core.clock()
        w = self.window(now)
        if w is None or not w[0] + self.spread * (w[1] - w[0]) <= now < w[1] or self.started_at >= w[0]:
            return
        if self.core.player is not None and self.core.player.state()["state"] != "idle":
            return  # a programme or an alert: try again at the next check, while the window lasts
        if self.core.alerts is not None and self.core.alerts.active:
            return
        log.warning("nightly restart (maintenance.restart_window %s-%s)",
                    *(self.core.cfg["maintenance"]["restart_window"][k] for k in ("from", "to")))
        self.core.emit_event("maintenance.restart", {"uptime_s": round(now - self.started_at, 1)})
        self.core.restart(None)
