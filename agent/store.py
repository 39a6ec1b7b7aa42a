"""Durable state under `paths.state_dir`: one SQLite file in WAL mode.

Holds the outbox (acks and events waiting for the broker's PUBACK), the seen
`jti`s of the replay guard, received-but-unfinished commands, and small
key/values (trusted time floor, remote config overrides). Every change is one
transaction with synchronous=FULL, so a power cut leaves the old or the new
state, never a torn one. Only the core thread writes.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DB_NAME = "agent.db"
SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS seen (jti TEXT PRIMARY KEY, exp INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS inbox (
    jti TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    claims TEXT NOT NULL,
    received REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- The as-run ledger (agent/asrun.py): what sounded, showed, ran and happened, as intervals of wall time.
CREATE TABLE IF NOT EXISTS ledger (
    kind TEXT NOT NULL,
    what TEXT NOT NULL,
    start REAL NOT NULL,
    end REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_by_start ON ledger (start);
"""


class Store:
    def __init__(self, state_dir: str | os.PathLike, *, readonly: bool = False):
        self.dir = Path(state_dir)
        self.path = self.dir / DB_NAME
        if readonly:
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=2.0)
            return
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        self.synced = 0  # transactions committed (each fsynced: the health monitor counts them as storage probes)
        self.recovered: dict | None = None  # set when a corrupt database was moved aside at open
        try:
            self.db = self._open()
        except sqlite3.DatabaseError as e:  # "file is not a database", "database disk image is malformed"
            self._recover(str(e))

    def _open(self) -> sqlite3.Connection:
        # Built in one thread, then used by the core thread only (one owner); sqlite3 need not police that.
        db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            # A short WAL, checkpointed every 16 pages, is rewritten from its start in blocks it already has: no new
            # block and no file-system metadata per commit (SD wear: 14.4 -> 7.3 MB a day at rest, docs/sd-card.md).
            db.execute("PRAGMA wal_autocheckpoint=16")
            check = db.execute("PRAGMA quick_check").fetchone()[0]  # milliseconds for a state database
            if check != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check}")
            db.executescript(SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def _recover(self, why: str) -> None:
        """Move the corrupt database aside (kept for a post-mortem) and start a fresh one.

        What is lost: the outbox not yet delivered, the inbox, the replay guard, applied schedules (retained on
        the broker: they come back on the next subscription). The trusted time floor is rebuilt from the corrupt
        file's last modification time, so commands that expired before it still cannot be replayed.
        """
        stamp = time.strftime("%Y%m%dT%H%M%S")
        floor = int(self.path.stat().st_mtime) if self.path.exists() else 0
        moved = self.dir / f"{DB_NAME}.corrupt-{stamp}"
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                os.replace(src, f"{moved}{suffix}")
        log.error("state database %s is corrupt (%s): moved aside to %s; starting a fresh one", self.path, why,
                  moved.name)
        self.db = self._open()
        self.raise_floor(floor)
        self.recovered = {"error": why, "moved_to": str(moved), "time_floor": floor}

    def close(self) -> None:
        self.db.close()

    def _tx(self) -> sqlite3.Connection:
        # BEGIN IMMEDIATE takes the write lock up front, so a second writer waits instead of failing mid-way.
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def _commit(self) -> None:
        self.db.execute("COMMIT")
        self.synced += 1

    @contextmanager
    def _transaction(self, kv: dict[str, Any] | None = None) -> Iterator[sqlite3.Connection]:
        """One transaction: what the block writes, then `kv`, all or nothing."""
        db = self._tx()
        try:
            yield db
            for key, value in (kv or {}).items():
                self.put_json(key, value)
            self._commit()
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # --- outbox -----------------------------------------------------------------------
    def enqueue(self, topic: str, payload: dict, *, ledger: list[tuple[str, str, float, float]] | None = None,
                kv: dict[str, Any] | None = None) -> int:
        """An outbox row; with ledger rows and key/values, all in one transaction."""
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        if not ledger and not kv:
            return self._insert_outbox(topic, body)
        with self._transaction(kv) as db:
            seq = self._insert_outbox(topic, body)
            db.executemany("INSERT INTO ledger (kind, what, start, end) VALUES (?, ?, ?, ?)", ledger or [])
        return seq

    def _insert_outbox(self, topic: str, body: bytes) -> int:
        cur = self.db.execute("INSERT INTO outbox (topic, payload, created) VALUES (?, ?, ?)",
                              (topic, body, time.time()))
        return int(cur.lastrowid or 0)

    # --- as-run ledger ------------------------------------------------------------------
    def ledger_write(self, items: list[tuple[int | None, tuple[str, str, float, float]]]) -> list[int]:
        """Ledger rows in one transaction: (rowid, row) sets the end of that row already written (an interval
        growing in place: one page changed, no new row), (None, row) adds one. Returns each item's rowid (a row
        to grow that is gone is added again)."""
        if not items:
            return []
        ids = []
        with self._transaction() as db:
            for rowid, (kind, what, start, end) in items:
                if rowid is not None and db.execute(
                        "UPDATE ledger SET end = ? WHERE rowid = ? AND kind = ? AND what = ? AND start = ?",
                        (end, rowid, kind, what, start)).rowcount:
                    ids.append(rowid)
                    continue
                ids.append(int(db.execute("INSERT INTO ledger (kind, what, start, end) VALUES (?, ?, ?, ?)",
                                          (kind, what, start, end)).lastrowid or 0))
        return ids

    def ledger_sums(self, start: float, end: float, lookback: float) -> list[tuple[str, str, float, int]]:
        """(kind, what, seconds inside [start, end), rows starting inside it) for rows starting from
        start - lookback (no row is longer than that)."""
        return self.db.execute(
            "SELECT kind, what, SUM(MAX(0.0, MIN(end, :e) - MAX(start, :s))), SUM(start >= :s) FROM ledger "
            "WHERE start >= :lo AND start < :e GROUP BY kind, what",
            {"s": start, "e": end, "lo": start - lookback}).fetchall()

    def ledger_prune(self, before: float) -> int:
        return self.db.execute("DELETE FROM ledger WHERE end < ?", (before,)).rowcount

    def pending(self, after: int = 0, limit: int = 100) -> list[tuple[int, str, bytes]]:
        return self.db.execute("SELECT seq, topic, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                               (after, limit)).fetchall()

    def delivered(self, seqs: list[int]) -> None:
        """Drop rows the broker has acknowledged (one transaction for a batch of PUBACKs)."""
        if seqs:
            with self._transaction() as db:
                db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])

    def outbox_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    # --- replay guard and inbox ---------------------------------------------------------
    def seen(self, jti: str) -> bool:
        return self.db.execute("SELECT 1 FROM seen WHERE jti = ?", (jti,)).fetchone() is not None

    def in_inbox(self, jti: str) -> bool:
        return self.db.execute("SELECT 1 FROM inbox WHERE jti = ?", (jti,)).fetchone() is not None

    def record(self, jti: str, exp: int, iat: int, topic: str | None, claims: dict | None) -> None:
        """Remember a verified message: seen until `exp`, time floor raised, kept in the inbox until finished."""
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO seen (jti, exp) VALUES (?, ?)", (jti, exp))
            db.execute("INSERT INTO kv (key, value) VALUES ('time_floor', ?) ON CONFLICT(key) DO UPDATE "
                       "SET value = MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))", (str(iat),))
            if claims is not None:
                db.execute("INSERT OR REPLACE INTO inbox (jti, topic, claims, received) VALUES (?, ?, ?, ?)",
                           (jti, topic, json.dumps(claims, ensure_ascii=False), time.time()))

    def finish(self, jti: str | None, topic: str, ack: dict, kv: dict[str, Any] | None = None) -> int:
        """Write an ack to the outbox and drop the command from the inbox (and set `kv`), atomically."""
        with self._transaction(kv) as db:
            seq = self.enqueue(topic, ack)
            if jti is not None:
                db.execute("DELETE FROM inbox WHERE jti = ?", (jti,))
        return seq

    def raise_floor(self, iat: int) -> None:
        self.db.execute("INSERT INTO kv (key, value) VALUES ('time_floor', ?) ON CONFLICT(key) DO UPDATE "
                        "SET value = MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))", (str(iat),))

    def unfinished(self) -> list[tuple[str, str, dict]]:
        rows = self.db.execute("SELECT jti, topic, claims FROM inbox ORDER BY received").fetchall()
        return [(jti, topic, json.loads(claims)) for jti, topic, claims in rows]

    def time_floor(self) -> int:
        value = self.get("time_floor")
        return int(value) if value is not None else 0

    def prune_seen(self, now: float) -> int:
        # Kept until exp: past that, the expiry check (and the time floor) rejects it anyway.
        return self.db.execute("DELETE FROM seen WHERE exp < ?", (int(now) - 1,)).rowcount

    # --- key/value ----------------------------------------------------------------------
    def get(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, value))

    def get_json(self, key: str, default: Any = None) -> Any:
        value = self.get(key)
        return default if value is None else json.loads(value)

    def put_json(self, key: str, value: Any) -> None:
        self.put(key, json.dumps(value, ensure_ascii=False))

    def check(self) -> bool:
        """A cheap liveness probe for the watchdog: the database still answers."""
        try:
            return self.db.execute("SELECT 1").fetchone() == (1,)
        except sqlite3.Error:
            return False


def read_overrides(state_dir: str | os.PathLike) -> dict:
    """The remote config overrides, read without writing (for `loa config show`)."""
    path = Path(state_dir) / DB_NAME
    if not path.exists():
        return {}
    try:
        store = Store(state_dir, readonly=True)
        try:
            return store.get_json("config_overrides", {})
        finally:
            store.close()
    except sqlite3.Error as e:
        log.debug("cannot read overrides from %s: %s", path, e)
        return {}
