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

from .runtime import Runtime

if TYPE_CHECKING:
    from .alerting import Alerts
    from .audio.player import Player

log = logging.getLogger("agent.maintenance")


def idle(player: Player, alerts: Alerts) -> bool:
    """Nothing plays, nothing is queued and no alert is active: a restart or an update may take the box now."""
    state = player.state()
    return state["state"] == "idle" and not state["queued"] and not alerts.active


class Maintenance:
    def __init__(self, rt: Runtime, player: Player, alerts: Alerts):
        self.rt, self.player, self.alerts = rt, player, alerts
        self.started_at = rt.clock()
        self.spread = (zlib.crc32(rt.device_id.encode()) % 1000) / 1000  # this box's place in the window

    def window(self, now: float) -> tuple[float, float] | None:
        """The window holding `now` (it may have opened yesterday evening), else today's; wall times."""
        w = self.rt.cfg["maintenance"].get("restart_window")
        if not w:
            return None
        local = datetime.fromtimestamp(now, ZoneInfo(self.rt.cfg["device"]["tz"]))
        fh, fm = map(int, w["from"].split(":"))
        th, tm = map(int, w["to"].split(":"))
        length = timedelta(minutes=((th * 60 + tm) - (fh * 60 + fm)) % (24 * 60))
        today = local.replace(hour=fh, minute=fm, second=0, microsecond=0)
        for start in (today - timedelta(days=1), today):
            if start <= local < start + length:
                return start.timestamp(), (start + length).timestamp()
        return today.timestamp(), (today + length).timestamp()

    def tick(self) -> None:
        now = self.rt.clock()
        w = self.window(now)
        if w is None or not w[0] + self.spread * (w[1] - w[0]) <= now < w[1] or self.started_at >= w[0]:
            return
        if not idle(self.player, self.alerts):
            return  # a programme or an alert: try again at the next check, while the window lasts
        log.warning("nightly restart (maintenance.restart_window %s-%s)",
                    *(self.rt.cfg["maintenance"]["restart_window"][k] for k in ("from", "to")))
        self.rt.emit_event("maintenance.restart", {"uptime_s": round(now - self.started_at, 1)})
        self.rt.restart()
