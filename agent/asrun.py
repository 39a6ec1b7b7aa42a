"""As-run statistics (thống kê thời lượng phát): what the box aired, per local day (`report.get`, `report.daily`,
`loa report`; docs/protocol.md, "As-run reports").

A ledger of rows `(kind, what, start, end)` in wall time, in the state database:

| kind      | what                                          | from                                          |
|-----------|-----------------------------------------------|-----------------------------------------------|
| `sound`   | the level, one row per run that sounded       | `play.end`'s `runs` (a preempted programme    |
|           |                                               | counts what sounded, nothing more)            |
| `played`  | (a programme that sounded), at its start      | `play.end` of a schedule/command/cli play     |
| `outcome` | `completed`, `cut_short`, `failed`, `skipped` | `play.end`, `media.rejected`, `schedule.skipped` |
| `alert`   | the alert's level, at its start               | `alert.start`                                 |
| `fault`   | the fault's code, when raised                 | `fault.raised`                                |
| `display` | (content on the e-board)                      | `display.shown`                               |
| `up`      | (the agent ran), `online` (connected)         | this component, every TICK_S and at a stop    |

Event rows are written in the transaction that writes the event itself (Outbox -> Store.enqueue), so a report
and the proof-of-play events never disagree: both have a programme, or neither. A day's figures are the rows'
overlaps with that local day, so a programme across midnight counts on both sides and a restart only adds
rows. `up` and `online` rows are closed every TICK_S with the elapsed *monotonic* time, so a clock jump moves
what follows, never what was; a power cut loses at most TICK_S of uptime. A tick grows the span's last row in
place (an UPDATE of one page, not a new row) until the row is MAX_ROW_S long or the clock jumped: the same
intervals as a row per tick, at a fraction of the pages written and rows kept.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from .errors import Rejection
from .i18n import Msg

if TYPE_CHECKING:
    from collections.abc import Callable

    from .runtime import Runtime
    from .store import Store

log = logging.getLogger("agent.asrun")

LedgerRow = tuple[str, str, float, float]
PROGRAMMES = ("schedule", "command", "cli")  # alerts are counted as alerts; self-test tones are not broadcasts
LEVELS = ("normal", "priority", "emergency")
OUTCOMES = ("completed", "cut_short", "failed", "skipped")
TICK_S = 300.0
MAX_ROW_S = 3600.0  # longer spans (a day-long stream relay) are cut into rows this long, so that a day's report
LOOKBACK_S = MAX_ROW_S  # reads only the rows that start within the day or in the hour before it
JOIN_S = 1.0  # a tick's time grows the last row when it starts this close to that row's end (no clock jump)
CATCH_UP_DAYS = 7  # after a long power cut, the daily reports of up to a week back still go out


def spans(kind: str, what: str, start: float, end: float) -> list[LedgerRow]:
    """Rows for a span, none longer than MAX_ROW_S."""
    rows = []
    while end - start > MAX_ROW_S:
        rows.append((kind, what, start, start + MAX_ROW_S))
        start += MAX_ROW_S
    return [*rows, (kind, what, start, end)]


def ledger_rows(kind: str, data: dict, now: float) -> list[LedgerRow]:
    """The ledger rows an event stands for (none for most events)."""
    if kind == "play.end" and data.get("origin") != "selftest":
        rows: list[LedgerRow] = [r for s, e in data.get("runs", []) for r in spans("sound", data["level"], s, e)]
        if data.get("origin") in PROGRAMMES:
            started = data.get("started") or now
            outcome = "completed" if data.get("completed") else "failed" if data.get("reason") == "failed" \
                else "cut_short"
            rows += [("played", "", started, started), ("outcome", outcome, started, started)]
        return rows
    if kind == "media.rejected" and data.get("origin") in PROGRAMMES:
        return [("outcome", "failed", now, now)]
    if kind == "schedule.skipped":
        at = data.get("at") or now
        return [("outcome", "skipped", at, at)]
    if kind == "alert.start":
        return [("alert", data.get("level", ""), now, now)]
    if kind == "fault.raised":
        return [("fault", data.get("code", ""), now, now)]
    if kind == "display.shown":
        return spans("display", "", data["started"], data["ended"])
    return []


def _day(value: str | date) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Rejection("bad_schema", Msg("params.date: not a date (YYYY-MM-DD): %(value)r", value=value)) from None


class Span:
    """An interval being lived (the agent up, the link online): written out every tick, by growing its last row
    in place while the time runs on without a jump and the row is shorter than MAX_ROW_S (docs/sd-card.md)."""

    def __init__(self, kind: str, wall: float, monotonic: Callable[[], float] = time.monotonic):
        self.monotonic = monotonic
        self.kind, self.wall, self.mono = kind, wall, monotonic()
        self.row: tuple[int, LedgerRow] | None = None  # (rowid, row) of the last row written, which may grow

    def cut(self, wall: float) -> list[LedgerRow]:
        """The rows up to now, by the monotonic clock; the next one starts at the wall clock's now."""
        mono = self.monotonic()
        rows = spans(self.kind, "", self.wall, self.wall + (mono - self.mono))
        self.wall, self.mono = wall, mono
        return rows

    def writes(self, wall: float) -> list[tuple[int | None, LedgerRow]]:
        """What to write for the time up to now: (rowid, row) grows the last row, (None, row) adds one."""
        rows = self.cut(wall)
        if self.row is not None:
            rowid, (kind, what, start, end) = self.row
            first = rows[0]
            if abs(first[2] - end) < JOIN_S and first[3] - start <= MAX_ROW_S:
                return [(rowid, (kind, what, start, first[3])), *((None, r) for r in rows[1:])]
        return [(None, r) for r in rows]


class AsRun:
    def __init__(self, rt: Runtime, store: Store, monotonic: Callable[[], float] = time.monotonic):
        self.rt, self.store, self.monotonic = rt, store, monotonic
        self.spans: dict[str, Span] = {"up": Span("up", rt.clock(), monotonic)}

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.rt.cfg["device"]["tz"])

    def start(self) -> None:
        self.rt.every(lambda: TICK_S, self.tick)
        self.rt.call_later(0, self.daily)

    def link_changed(self, connected: bool) -> None:
        now = self.rt.clock()
        if connected and "online" not in self.spans:
            self.spans["online"] = Span("online", now, self.monotonic)
        elif not connected and "online" in self.spans:
            self._write([self.spans.pop("online")], now)

    def tick(self) -> None:
        self._write(list(self.spans.values()), self.rt.clock())
        self.daily()

    def _write(self, spans: list[Span], now: float) -> None:
        """The spans' time up to now, in one transaction; each span remembers its last row, to grow it next."""
        items = [(span, item) for span in spans for item in span.writes(now)]
        ids = self.store.ledger_write([item for _, item in items])
        for (span, (_, row)), rowid in zip(items, ids, strict=True):
            span.row = (rowid, row)

    def close(self) -> None:
        """At a clean stop: the open intervals up to now."""
        self.tick()
        self.spans.clear()

    # --- reports --------------------------------------------------------------------------------
    def day_bounds(self, day: date) -> tuple[float, float]:
        tz = self.tz
        start = datetime.combine(day, datetime.min.time(), tz)
        return start.timestamp(), datetime.combine(day + timedelta(days=1), datetime.min.time(), tz).timestamp()

    def today(self) -> date:
        return datetime.fromtimestamp(self.rt.clock(), self.tz).date()

    def report(self, day: str | date | None = None) -> dict:
        """One local day's figures (PROTOCOL.md, `report.get`)."""
        day = self.today() if day is None else _day(day)
        start, end = self.day_bounds(day)
        now = self.rt.clock()
        seconds: dict[tuple[str, str], float] = {}
        counts: dict[tuple[str, str], int] = {}
        rows = [(k, w, s or 0.0, n or 0) for k, w, s, n in self.store.ledger_sums(start, end, LOOKBACK_S)]
        # What is being lived now is not written yet: count it too (the report for today is up to now).
        rows += [(span.kind, "", max(0.0, min(now, end) - max(span.wall, start)), 0) for span in self.spans.values()]
        for kind, what, secs, n in rows:
            seconds[kind, what] = seconds.get((kind, what), 0.0) + secs
            counts[kind, what] = counts.get((kind, what), 0) + n

        def total(kind: str, table: dict) -> float:
            return sum(v for (k, _), v in table.items() if k == kind)

        return {
            "date": day.isoformat(), "tz": self.rt.cfg["device"]["tz"], "device_id": self.rt.device_id,
            "on_air_s": {level: round(seconds.get(("sound", level), 0.0), 1) for level in LEVELS},
            "programmes": {"played": counts.get(("played", ""), 0),
                           **{o: counts.get(("outcome", o), 0) for o in OUTCOMES}},
            "alerts": int(total("alert", counts)), "online_s": round(seconds.get(("online", ""), 0.0), 1),
            "uptime_s": round(seconds.get(("up", ""), 0.0), 1), "faults_raised": int(total("fault", counts)),
            "display_s": round(seconds.get(("display", ""), 0.0), 1),
        }

    def reports(self, last: str | None, days: int) -> list[dict]:
        """`days` consecutive days ending with `last` (default today), oldest first."""
        end = _day(last) if last else self.today()
        return [self.report(end - timedelta(days=n)) for n in range(days - 1, -1, -1)]

    # --- the daily report ----------------------------------------------------------------------
    def jitter_s(self) -> float:
        """The fleet does not report at one instant: each box waits its own share of the window after midnight."""
        window = self.rt.cfg["report"]["daily_jitter_s"]
        digest = hashlib.sha256(self.rt.device_id.encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32 * window

    def daily(self) -> None:
        """`report.daily` for each finished day not reported yet (once: the day is recorded with the event)."""
        today = self.today()
        if self.rt.clock() < self.day_bounds(today)[0] + self.jitter_s():
            today -= timedelta(days=1)  # before this box's moment: yesterday is still "today" for reporting
        last = self.store.get_json("report_daily_last")
        if last is None:  # a new box: its first report is for its first whole day, not for before it was here
            self.store.put_json("report_daily_last", (today - timedelta(days=1)).isoformat())
            return
        day = max(date.fromisoformat(last) + timedelta(days=1), today - timedelta(days=CATCH_UP_DAYS))
        if day >= today:
            return
        while day < today:
            self.rt.emit_event("report.daily", self.report(day), kv={"report_daily_last": day.isoformat()})
            day += timedelta(days=1)
        keep = self.rt.cfg["report"]["keep_days"]
        dropped = self.store.ledger_prune(self.rt.clock() - keep * 86400.0)
        if dropped:
            log.info("as-run ledger: dropped %d row(s) older than %d days", dropped, keep)
