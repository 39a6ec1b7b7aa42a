"""Active faults: raised and cleared once each, as durable events and one log line each way.

Events come from two kinds of sources. An edge (a refused login, a relay that does not answer) calls
`raise_`/`clear` directly. A periodic reading (temperature, free disk, a flapping input) calls `observe`
with its verdict, and the fault changes only after `raise_after` bad or `clear_after` good verdicts in a
row; a verdict of None (a reading inside the hysteresis band between the raise and clear thresholds)
changes nothing, so a temperature hovering at its limit does not flood the outbox.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("agent.faults")


class Faults:
    def __init__(self, emit: Callable[[str, dict], None], clock: Callable[[], float] = time.time, *,
                 raise_after: int = 2, clear_after: int = 2):
        self.emit = emit
        self.clock = clock
        self.raise_after, self.clear_after = raise_after, clear_after
        self._active: dict[str, dict] = {}
        self._streak: dict[str, int] = {}  # code -> consecutive verdicts against the current state

    def raise_(self, code: str, message: str) -> bool:
        self._streak.pop(code, None)
        if code in self._active:
            return False
        now = self.clock()
        self._active[code] = {"code": code, "message": message, "since": now}
        log.warning("fault raised: %s: %s", code, message)
        self.emit("fault.raised", {"code": code, "message": message, "raised_at": round(now, 3)})
        return True

    def clear(self, code: str) -> bool:
        self._streak.pop(code, None)
        fault = self._active.pop(code, None)
        if fault is None:
            return False
        now = self.clock()
        log.info("fault cleared: %s (after %.0f s)", code, now - fault["since"])
        self.emit("fault.cleared", {"code": code, "raised_at": round(fault["since"], 3), "cleared_at": round(now, 3),
                                    "duration_s": round(now - fault["since"], 1)})
        return True

    def set(self, code: str, message: str | None) -> bool:
        """An edge with its state: raised with `message`, or cleared when it is None."""
        return self.clear(code) if message is None else self.raise_(code, message)

    def observe(self, code: str, bad: bool | None, message: str = "") -> None:
        """A periodic verdict: True (bad), False (good) or None (inside the hysteresis band)."""
        if bad is None:
            return
        if bad == (code in self._active):  # agrees with the current state
            self._streak.pop(code, None)
            if bad:
                self._active[code]["message"] = message  # the latest figure, for `loa status`
            return
        n = self._streak[code] = self._streak.get(code, 0) + 1
        if bad and n >= self.raise_after:
            self.raise_(code, message)
        elif not bad and n >= self.clear_after:
            self.clear(code)

    def codes(self) -> list[str]:
        return sorted(self._active)

    def active(self) -> list[dict]:
        return [dict(f) for _, f in sorted(self._active.items())]
