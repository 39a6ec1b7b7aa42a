"""The outbox: acks and events written to SQLite first, then published in order with QoS 1, at most
OUTBOX_WINDOW in flight, and deleted on PUBACK (docs/architecture.md, flows 1 and 4). It also holds the
ack rules: a long command's `accepted` goes out before its final ack, and a local operation (the `loa`
CLI) is answered to its caller, never published."""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .asrun import LedgerRow, ledger_rows
from .commands import Result
from .timeutil import rfc3339

if TYPE_CHECKING:
    from .envelope import Message
    from .link import Link
    from .loop import Loop
    from .messages import LinkPublished
    from .store import Store
    from .topics import Topics

log = logging.getLogger("agent.core")

OUTBOX_WINDOW = 50  # QoS 1 publishes in flight at once; the rest wait in SQLite, not in memory


class Outbox:
    def __init__(self, store: Store, topics: Topics, clock: Callable[[], float], link: Link | None):
        self.store = store
        self.topics = topics
        self.clock = clock
        self.link = link
        self._awaiting_accept: set[str] = set()  # long commands whose `accepted` is not written yet
        self._inflight: dict[int, int] = {}  # paho mid -> outbox seq
        self._last_submitted = 0
        self._delivered: list[int] = []
        # Events the disk could not take yet: (payload, as-run ledger rows, kv written with it).
        self._unwritten: deque[tuple[dict, list[LedgerRow], dict | None]] = deque(maxlen=10_000)

    # --- events ---------------------------------------------------------------------------
    def event(self, kind: str, data: dict, kv: dict[str, Any] | None = None) -> None:
        """A durable event: written to the outbox first, published when connected, dropped on PUBACK. Its
        as-run ledger rows (agent/asrun.py) and `kv` are written in the same transaction.

        When the state directory cannot take it (a full or failing disk), it waits in memory, in order,
        and is written by the next event or health check that finds room (`flush_unwritten`)."""
        now = self.clock()
        self._unwritten.append(({"id": str(uuid.uuid4()), "device_id": self.topics.device_id, "at": rfc3339(now),
                                 "kind": kind, "data": data}, ledger_rows(kind, data, now), kv))
        self.flush_unwritten()

    def flush_unwritten(self) -> None:
        if not self._unwritten:
            return
        while self._unwritten:
            payload, ledger, kv = self._unwritten[0]
            try:
                self.store.enqueue(self.topics.event, payload, ledger=ledger, kv=kv)
            except sqlite3.OperationalError as e:  # "database or disk is full", "disk I/O error"
                if len(self._unwritten) == 1 or len(self._unwritten) % 100 == 0:
                    log.error("cannot write events to the state database (%s): %d waiting in memory", e,
                              len(self._unwritten))
                return
            self._unwritten.popleft()
        self.pump()

    # --- acks -----------------------------------------------------------------------------
    def expect_accept(self, msg: Message) -> None:
        """A long command: its `accepted` goes out when it is running, before its final ack."""
        if msg.reply is None:
            self._awaiting_accept.add(msg.jti)

    def accept(self, msg: Message) -> None:
        if msg.jti in self._awaiting_accept:
            self._awaiting_accept.discard(msg.jti)
            self.store.enqueue(self.topics.ack, self._ack(msg.jti, msg.type, Result("accepted")))
            self.pump()

    def refused(self, msg: Message) -> None:
        """Refused outright: only the final ack goes out."""
        self._awaiting_accept.discard(msg.jti)

    def complete(self, msg: Message, result: Result) -> None:
        """The final ack of a command (long-running handlers call this when they end)."""
        if msg.reply is not None:
            msg.reply(result)
            return
        self.accept(msg)  # a long command's `accepted` always comes first
        log.info("[%s] %s %s %s", msg.jti, msg.type, result.status, result.code)
        self.finish(msg.jti, msg.type, result)

    def finish(self, jti: str | None, type_: str | None, result: Result, *, jti_echo: str | None = None,
               kv: dict | None = None) -> None:
        """The final ack, written in one transaction with the inbox record's removal (and `kv`)."""
        self.store.finish(jti, self.topics.ack, self._ack(jti_echo or jti, type_, result), kv=kv)
        self.pump()

    def _ack(self, jti: str | None, type_: str | None, r: Result) -> dict:
        return {"id": jti, "device_id": self.topics.device_id, "type": type_, "status": r.status, "code": r.code,
                "message": r.message, "at": rfc3339(self.clock()), "result": r.result}

    # --- publishing -----------------------------------------------------------------------------
    def connected(self) -> None:
        # paho retransmits what it had in flight; start the window from what it does not hold.
        self.pump()

    def published(self, msg: LinkPublished) -> None:
        seq = self._inflight.pop(msg.mid, None)
        if seq is None:
            return
        if msg.error:
            log.error("broker refused outbox message %d: %s (dropped: a retry would be refused too)", seq,
                      msg.error)
        self._delivered.append(seq)

    def flush_delivered(self) -> None:
        """Delete what the broker acknowledged (one transaction per batch), then refill the window."""
        if self._delivered:
            self.store.delivered(self._delivered)
            self._delivered = []
            self.pump()

    def pump(self) -> None:
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

    def drain(self, loop: Loop, timeout: float) -> None:
        """At shutdown: give the outbox a moment to drain (e.g. the `accepted` of a restart) before the link goes.

        Incoming messages are left un-PUBACKed here, so the broker redelivers them after the restart."""
        from .messages import LinkPublished

        deadline = time.monotonic() + timeout
        while self.link and self.link.connected and self.store.outbox_count():
            left = deadline - time.monotonic()
            msg = loop.wait(left) if left > 0 else None
            if msg is None:
                break
            if isinstance(msg, LinkPublished):
                self.published(msg)
            self.flush_delivered()
