"""Periodic health checks (every `health.check_s`, on a core timer) that raise and clear faults through
`Faults.observe`, so each fault needs `health.raise_after` bad readings in a row to start and
`health.clear_after` good ones to end; thresholds have a band between raise and clear (80 °C / 75 °C,
200 MB / 300 MB free) where nothing changes. The storage probe (write, fsync, read back) runs on a worker
thread every PROBE_EVERY checks: a dying SD card may block it, and the core must not block. When the state
database has committed since the last probe (each commit is a write and an fsync that returned), that commit was
the probe and nothing more is written: at rest the as-run tick commits every 5 minutes, so the card is not
written twice for one proof (docs/sd-card.md)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .i18n import Msg
from .messages import Call
from .runtime import Runtime

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .health import Health

PROBE_EVERY = 10
READONLY = Msg("the state directory's file system is mounted read-only")


def band(value: float | None, bad_at: float, good_below: float, *, high_is_bad: bool = True) -> bool | None:
    """A verdict with hysteresis: bad past `bad_at`, good before `good_below`, None in between or unknown."""
    if value is None:
        return None
    if high_is_bad:
        return True if value >= bad_at else False if value < good_below else None
    return True if value < bad_at else False if value >= good_below else None


class Monitor:
    def __init__(self, rt: Runtime, health: Health, *, synced: Callable[[], int] = lambda: 0,
                 then: Sequence[Callable[[], None]] = ()):
        """`synced`: how many transactions the state database has committed (Store.synced). `then`: what else
        runs at each check (events a full disk held back, the amplifier's OK input, the nightly restart window)."""
        self.rt, self.health, self.synced, self.then = rt, health, synced, tuple(then)
        self.checks = 0
        self._synced_at_probe = 0
        self._probing = False
        self._readonly: bool | None = None

    def start(self) -> None:
        self.rt.every(lambda: self.rt.cfg["health"]["check_s"], self.check)
        self.rt.call_later(0, self.check)

    def check(self) -> None:
        cfg, h, faults = self.rt.cfg["health"], self.health, self.rt.faults
        temp = h.cpu_temp_c()
        faults.observe("overheat", band(temp, cfg["overheat_c"], cfg["overheat_clear_c"]),
                       Msg("CPU at %(temp)s °C (limit %(limit)g °C)", temp=temp, limit=cfg["overheat_c"]))
        faults.observe("undervoltage", h.undervoltage(), Msg("under-voltage: the power supply sags (check it and "
                                                             "its cable)"))
        free = h.disk_free_mb()
        faults.observe("disk_low", band(free, cfg["disk_low_mb"], cfg["disk_clear_mb"], high_is_bad=False),
                       Msg("%(free)s MB free on the state directory (limit %(limit)g MB)", free=free,
                           limit=cfg["disk_low_mb"]))
        self._readonly = h.storage_readonly()
        if self.checks % PROBE_EVERY == 0 and not self._probing:
            synced = self.synced()
            if synced != self._synced_at_probe:  # the database wrote and fsynced since the last probe
                self._synced_at_probe = synced
                self._probed(None)
            else:
                self._probing = True
                threading.Thread(target=self._probe, name="storage-probe", daemon=True).start()
        elif self._readonly:
            faults.observe("storage_readonly", True, READONLY)
        self.checks += 1
        for fn in self.then:
            fn()

    def _probe(self) -> None:
        error = self.health.write_read_back()
        self.rt.post(Call(lambda: self._probed(error)))

    def _probed(self, error: str | None) -> None:
        self._probing = False
        bad = bool(self._readonly) or error is not None
        message = READONLY if self._readonly else Msg("storage write and read-back failed: %(error)s", error=error)
        self.rt.faults.observe("storage_readonly", bad, message)
