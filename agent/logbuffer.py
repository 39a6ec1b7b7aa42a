"""Logging set-up: one line per event on stderr (journald), and the last lines kept for `logs.get`."""

from __future__ import annotations

import collections
import logging
import os


class RingHandler(logging.Handler):
    def __init__(self, capacity: int):
        super().__init__()
        self.lines: collections.deque[str] = collections.deque(maxlen=capacity)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a log call must never take the agent down
            self.handleError(record)

    def tail(self, n: int) -> list[str]:
        return list(self.lines)[-n:] if n > 0 else []


def setup(level: str, capacity: int) -> RingHandler:
    root = logging.getLogger()
    root.setLevel(level.upper())
    for h in list(root.handlers):
        root.removeHandler(h)
    stream = logging.StreamHandler()
    # journald stamps the time itself; elsewhere (a terminal, a test) we do.
    fmt = "%(levelname)s %(name)s: %(message)s" if os.environ.get("JOURNAL_STREAM") else \
        "%(asctime)s %(levelname)s %(name)s: %(message)s"
    stream.setFormatter(logging.Formatter(fmt))
    ring = RingHandler(capacity)
    root.addHandler(stream)
    root.addHandler(ring)
    return ring
