"""Active faults: raised and cleared once each, as durable events and one log line each way."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("agent.faults")


class Faults:
    def __init__(self, emit: Callable[[str, dict], None], clock: Callable[[], float] = time.time):
        self.emit = emit
        self.clock = clock
        self._active: dict[str, dict] = {}

    def raise_(self, code: str, message: str) -> bool:
        if code in self._active:
            return False
        self._active[code] = {"code": code, "message": message, "since": self.clock()}
        log.warning("fault raised: %s: %s", code, message)
        self.emit("fault.raised", {"code": code, "message": message})
        return True

    def clear(self, code: str) -> bool:
        fault = self._active.pop(code, None)
        if fault is None:
            return False
        log.info("fault cleared: %s (after %.0f s)", code, self.clock() - fault["since"])
        self.emit("fault.cleared", {"code": code, "duration_s": round(self.clock() - fault["since"], 1)})
        return True

    def codes(self) -> list[str]:
        return sorted(self._active)

    def active(self) -> list[dict]:
        return [dict(f) for _, f in sorted(self._active.items())]
