"""The core's event loop: one thread, one queue of posted messages (agent/messages.py), and timers on
the monotonic clock. It sleeps until the next timer or message; nothing polls."""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .messages import Call, Posted, Wake

log = logging.getLogger("agent.core")

BATCH = 500  # messages handled per wake-up before timers get their turn


@dataclass(order=True)
class Timer:
    at: float
    seq: int
    fn: Callable[[], None] | None = field(compare=False)


Handlers = Mapping[type, Callable[[Any], None]]


class Loop:
    def __init__(self) -> None:
        self.q: queue.SimpleQueue[Posted] = queue.SimpleQueue()
        self._timers: list[Timer] = []
        self._seq = itertools.count()
        self.running = False
        self.restart_requested = False

    def post(self, msg: Posted) -> None:
        """Thread-safe (and reentrant: safe from a signal handler): the only way other threads talk to the core."""
        self.q.put(msg)

    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        timer = Timer(time.monotonic() + delay, next(self._seq), fn)
        heapq.heappush(self._timers, timer)
        return timer

    def cancel(self, timer: Timer | None) -> None:
        if timer is not None:
            timer.fn = None

    def every(self, interval: Callable[[], float], fn: Callable[[], None]) -> None:
        """`fn` every `interval()` seconds (asked again each time, so a config change takes effect)."""
        def tick() -> None:
            try:
                fn()
            finally:
                self.call_later(interval(), tick)
        self.call_later(interval(), tick)

    def stop(self, *, restart: bool = False) -> None:
        self.restart_requested = self.restart_requested or restart
        self.running = False

    def run(self, handlers: Handlers, after_batch: Callable[[], None]) -> None:
        """Dispatch until `stop()`; `after_batch` runs after each batch of messages (e.g. the outbox's flush).
        The caller sets `running` before its own start-up, so a stop during that start-up is kept."""
        while self.running:
            timeout = max(0.0, min(1.0, self._timers[0].at - time.monotonic())) if self._timers else 1.0
            batch = []
            try:
                batch.append(self.q.get(timeout=timeout))
                while len(batch) < BATCH:
                    batch.append(self.q.get_nowait())
            except queue.Empty:
                pass
            for msg in batch:
                self.dispatch(handlers, msg)
            after_batch()
            self._run_timers()

    def dispatch(self, handlers: Handlers, msg: Posted) -> None:
        try:
            if isinstance(msg, Call):
                msg.fn()
            elif not isinstance(msg, Wake):
                handlers[type(msg)](msg)
        except Exception:
            log.exception("error handling %s", type(msg).__name__)

    def wait(self, timeout: float) -> Posted | None:
        """The next message within `timeout` s, else None (the shutdown drain's own loop)."""
        try:
            return self.q.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def _run_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0].at <= now:
            fn = heapq.heappop(self._timers).fn
            if fn is None:
                continue
            try:
                fn()
            except Exception:
                log.exception("error in timer %s", getattr(fn, "__name__", fn))
