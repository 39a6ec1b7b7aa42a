"""Recurrence rules (RFC 5545 RRULE, parsed by dateutil) whose every search has a bounded cost.

dateutil searches from a rule's DTSTART and, when a day is filtered out, goes on to the next one until it
finds a match: a rule that never matches (30 February) spins to the year 9999, one whose start is years
back walks every minute since. A signed document must not be able to stall the core that way, so:

- a rule is checked when the document is applied: RFC 5545's limits on which BY-parts go with which FREQ,
  BYEASTER (dateutil's own) refused, HOURLY/MINUTELY/SECONDLY intervals that divide a day, COUNT bounded, no
  two occurrences closer than `min_interval_s` (a static bound from the BY-parts), days that can exist (a
  day mask over the 14 kinds of year), and a match within 10 years;
- DAILY and finer rules are expanded here, day by day over that mask (a matching day is found with bit
  operations, never by stepping through the days that do not match), each day's times computed once;
- WEEKLY, MONTHLY and YEARLY rules are dateutil's, restarted at the period before the searched time (the same
  occurrences: whole periods are skipped), so a search costs the periods it spans, not those since DTSTART;
- every search has an end; the first occurrence found is remembered, so asking again costs nothing.
"""

from __future__ import annotations

import calendar
import itertools
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import Any

MAX_COUNT = 1000
PROBE_YEARS = 10  # a rule must occur within this many years of its start (or of now)
SUBDAILY = {"HOURLY": 3600, "MINUTELY": 60, "SECONDLY": 1}
YEARLY, MONTHLY, WEEKLY, DAILY, HOURLY, MINUTELY, SECONDLY = range(7)  # dateutil's FREQ numbers
NAMES = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY", "MINUTELY", "SECONDLY")


class RuleError(ValueError):
    """Why a rule is refused (the caller names the field)."""


class Rule:
    """One RRULE from `dtstart` (an aware datetime in the item's zone), optionally ending at `until`."""

    def __init__(self, text: str, dtstart: datetime, until: datetime | None, *, min_interval_s: float,
                 now: datetime | None = None):
        from dateutil.rrule import rrulestr

        try:
            rule = rrulestr(f"RRULE:{text}", dtstart=dtstart, forceset=False)
            if until is not None:
                rule = rule.replace(until=until, count=None)
        except (ValueError, TypeError, OverflowError) as e:
            raise RuleError(f"not an RFC 5545 RRULE: {e}") from None
        _check_parts(rule, text)
        self.rule = rule
        self.tz: tzinfo = dtstart.tzinfo  # type: ignore[assignment]
        self.start: datetime = rule._dtstart
        self.until: datetime | None = rule._until
        self.freq: int = rule._freq
        self.interval: int = rule._interval
        gap = min_gap_s(rule)
        if gap < min_interval_s:
            raise RuleError(f"occurrences would be {gap:g} s apart, closer than schedule.min_interval_s "
                            f"({min_interval_s:g} s)")
        self.days = DayMask(rule)
        if not self.days.possible():
            raise RuleError("can never match: no day has those BYMONTH/BYMONTHDAY/BYYEARDAY/BYDAY together")
        self.expanded = self.freq >= DAILY  # days here, else dateutil's periods
        if self.expanded:
            self.times = DayTimes(rule)
            if next(self.times(), None) is None:
                raise RuleError("can never match: no time of day has those BYHOUR/BYMINUTE/BYSECOND")
        self._memo: tuple[float, float, datetime | None] | None = None  # (from, to, first in [from, to])
        if self._shape_probe(now) is None:
            raise RuleError(f"does not occur within {PROBE_YEARS} years")
        if rule._count is not None:
            self.until = self._last_of(rule._count)

    def stored_times(self) -> int:
        return len(self.rule._timeset or ())

    # --- searching ------------------------------------------------------------------------
    def occurrences(self, a: datetime, b: datetime) -> Iterator[datetime]:
        """The occurrences in [a, b], in order (a generator: the caller stops when it has enough)."""
        a = max(a, self.start)
        if self.until is not None:
            b = min(b, self.until)
        if a > b:
            return
        try:
            yield from (self._days(a, b) if self.expanded else self._periods(a, b))
        except OverflowError:  # the search reached the year 9999
            return

    def first(self, a: datetime, b: datetime) -> datetime | None:
        """The first occurrence in [a, b], remembered: asking again within the span searched is free."""
        fa, fb = a.timestamp(), b.timestamp()
        if self._memo is not None:
            ma, mb, found = self._memo
            if ma <= fa and (found is None and fb <= mb or found is not None and found.timestamp() >= fa):
                return found if found is not None and found <= b else None
        found = next(self.occurrences(a, b), None)
        self._memo = (fa, fb if found is None else found.timestamp(), found)
        return found

    def _days(self, a: datetime, b: datetime) -> Iterator[datetime]:
        la, lb = a.astimezone(self.tz), b.astimezone(self.tz)
        d: date | None = la.date()
        step = self.interval if self.freq == DAILY else 1
        origin = self.start.date().toordinal()
        while d is not None and d <= lb.date():
            d = self.days.next_day(d, lb.date())
            if d is None:
                return
            if step > 1 and (d.toordinal() - origin) % step:
                d = date.fromordinal(d.toordinal() + (-(d.toordinal() - origin)) % step)
                continue  # the next day of the interval's lattice: checked against the mask again
            since = la.hour * 3600 + la.minute * 60 + la.second if d == la.date() else 0
            for sod in self.times(since):
                dt = datetime.combine(d, time(sod // 3600, sod // 60 % 60, sod % 60), self.tz)
                if dt > b:
                    return
                if dt >= a:
                    yield dt
            d = date.fromordinal(d.toordinal() + step) if d < date.max else None

    def _periods(self, a: datetime, b: datetime) -> Iterator[datetime]:
        rule = self.rule if a <= self.start else rebased(self.rule, a)
        for dt in rule.replace(until=b, count=None):
            if dt > b:
                return
            if dt >= a:
                yield dt

    def _last_of(self, count: int) -> datetime | None:
        """COUNT as the time of its last occurrence (so searches may start anywhere)."""
        if count > MAX_COUNT:
            raise RuleError(f"COUNT above {MAX_COUNT}: use UNTIL (or the item's until)")
        end = _add_years(self.start, 1000)
        last = None
        for n, dt in enumerate(self._days(self.start, end) if self.expanded else iter(self.rule), 1):
            if self.until is not None and dt > self.until:
                break
            last = dt
            if n >= count:
                break
        if last is None:
            return self.start - timedelta(seconds=1)  # none at all
        return last

    def _shape_probe(self, now: datetime | None) -> datetime | None:
        """An occurrence within PROBE_YEARS (COUNT and UNTIL aside): a rule that never occurs is refused, and
        the search is bounded whatever the rule (dateutil's from 9990: it stops at the year 9999)."""
        if self.expanded:
            a = max(self.start, now or self.start)
            return next(self._days(a, _add_years(a, PROBE_YEARS)), None)
        try:
            probe = rebased(self.rule.replace(until=None, count=None), datetime(9999 - PROBE_YEARS, 1, 1,
                                                                                 tzinfo=self.tz))
            return next(iter(probe), None)
        except (ValueError, OverflowError):
            return None


def _add_years(dt: datetime, years: int) -> datetime:
    try:
        return dt + timedelta(days=366 * years)
    except OverflowError:
        return datetime.max.replace(tzinfo=dt.tzinfo) - timedelta(days=2)


# --- static checks ----------------------------------------------------------------------------
def _check_parts(rule: Any, text: str) -> None:
    """RFC 5545 section 3.3.10's MUST NOTs (which dateutil lets through), and what the agent supports."""
    freq, upper = rule._freq, text.upper()
    if "BYEASTER" in upper:
        raise RuleError("BYEASTER is not RFC 5545")
    if rule._byweekno and freq != YEARLY:
        raise RuleError("BYWEEKNO goes only with FREQ=YEARLY")
    if rule._byyearday and freq in (MONTHLY, WEEKLY, DAILY):
        raise RuleError("BYYEARDAY does not go with FREQ=DAILY, WEEKLY or MONTHLY")
    if "BYMONTHDAY" in upper and freq == WEEKLY:
        raise RuleError("BYMONTHDAY does not go with FREQ=WEEKLY")
    if rule._bynweekday and freq not in (MONTHLY, YEARLY) or (freq > MONTHLY and _numbered_byday(upper)):
        raise RuleError("a numbered BYDAY (e.g. 1MO) goes only with FREQ=MONTHLY or YEARLY")
    if rule._bysetpos and freq >= DAILY:
        raise RuleError("BYSETPOS goes only with FREQ=WEEKLY, MONTHLY or YEARLY")
    if freq >= HOURLY:
        unit = SUBDAILY[NAMES[freq]]
        if 86400 % (rule._interval * unit):
            raise RuleError(f"INTERVAL must divide a day for FREQ={NAMES[freq]} (a day is {86400 // unit} of them)")


def _numbered_byday(upper: str) -> bool:
    import re

    m = re.search(r"BYDAY=([^;]*)", upper)
    return bool(m and re.search(r"[+-]?\d", m.group(1)))


def min_gap_s(rule: Any) -> float:
    """A lower bound on the time between two occurrences, from the BY-parts alone.

    The times of day are a product H × M × S (sorted lexicographically), so their smallest gap is the
    smallest of: within a minute, across minutes of an hour, across hours, and across midnight. For HOURLY
    and finer the lattice step (INTERVAL × unit) bounds the gap from below too.
    """
    h = sorted(rule._byhour) if rule._byhour else list(range(24))
    m = sorted(rule._byminute) if rule._byminute else list(range(60))
    s = sorted(rule._bysecond) if rule._bysecond else list(range(60))
    if rule._freq == HOURLY:
        h = [x for x in h if (x - rule._dtstart.hour) % rule._interval == 0] or h
    span_s = s[-1] - s[0]
    span_ms = 60 * (m[-1] - m[0]) + span_s
    gaps = [86400 - 3600 * (h[-1] - h[0]) - span_ms]
    gaps += [b - a for a, b in itertools.pairwise(s)]
    gaps += [60 * (b - a) - span_s for a, b in itertools.pairwise(m)]
    gaps += [3600 * (b - a) - span_ms for a, b in itertools.pairwise(h)]
    gap = float(min(gaps))
    if rule._freq >= HOURLY:
        gap = max(gap, rule._interval * SUBDAILY[NAMES[rule._freq]])
    return gap


class DayTimes:
    """The times (seconds of the day) an expanded rule fires on a matching day, as dateutil would: DAILY's
    product of BYHOUR × BYMINUTE × BYSECOND, or for finer rules the lattice (phase + k × step, the same every
    day since the step divides a day) filtered by them. Generated, not stored: 1,440 a day per rule add up."""

    def __init__(self, rule: Any):
        st = rule._dtstart
        if rule._freq == DAILY:
            self.step, self.phase = 1, 0
        else:
            self.step = rule._interval * SUBDAILY[NAMES[rule._freq]]
            self.phase = (st.hour * 3600 + st.minute * 60 + st.second) % self.step
        self.hours = sorted(rule._byhour) if rule._byhour else list(range(24))
        self.minutes = sorted(rule._byminute) if rule._byminute else list(range(60))
        self.seconds = sorted(rule._bysecond) if rule._bysecond else list(range(60))
        unit = SUBDAILY.get(NAMES[rule._freq], 1)
        self.unit = unit  # the lattice counts seconds, minutes or hours: the finer fields are free within it

    def _within(self, u: int) -> Iterator[int]:
        """The times inside one unit of the lattice that starts at u: the finer fields are free there."""
        if self.unit == 3600:
            return (u + 60 * mm + ss for mm in self.minutes for ss in self.seconds)
        if self.unit == 60:
            return (u + ss for ss in self.seconds)
        return iter((u,) if u % 60 in self.seconds else ())

    def _on_lattice(self, sod: int) -> bool:
        return (sod - sod % self.unit - self.phase + self.phase % self.unit) % self.step == 0

    def __call__(self, since: int = 0) -> Iterator[int]:
        """Seconds of the day from `since` on, in order."""
        product = len(self.hours) * len(self.minutes) * len(self.seconds)
        if self.step > 1 and 86400 // self.step < product:  # walk the lattice, filter by the fields
            hours, minutes = set(self.hours), set(self.minutes)
            base = self.phase - self.phase % self.unit  # where the unit (hour, minute, second) of the lattice starts
            for u in range(base + max(0, (since - base) // self.step) * self.step, 86400, self.step):
                if u // 3600 not in hours or self.unit < 3600 and u // 60 % 60 not in minutes:
                    continue
                for t in self._within(u):
                    if t >= since:
                        yield t
            return
        for hh in self.hours:  # walk the fields, filter by the lattice
            if hh * 3600 + 3599 < since:
                continue
            for mm in self.minutes:
                for ss in self.seconds:
                    t = hh * 3600 + mm * 60 + ss
                    if t >= since and (self.step == 1 or self._on_lattice(t)):
                        yield t


# --- days that can match ----------------------------------------------------------------------------
class DayMask:
    """Which days of a year pass the rule's day filters (BYMONTH, BYMONTHDAY, BYYEARDAY, BYDAY without a
    number); for MONTHLY/YEARLY numbered BYDAYs, BYWEEKNO and BYSETPOS it is a superset. One bit per day of
    the year, per kind of year (leap or not, weekday of 1 January): 14 masks cover every year."""

    def __init__(self, rule: Any):
        weekdays = set(rule._byweekday or ()) | {wd for wd, _ in rule._bynweekday or ()}
        self.key = (tuple(rule._bymonth or ()), tuple(rule._bymonthday or ()), tuple(rule._bynmonthday or ()),
                    tuple(rule._byyearday or ()), tuple(sorted(weekdays)))

    def year(self, y: int) -> int:
        return _year_mask(self.key, calendar.isleap(y), date(y, 1, 1).weekday())

    def possible(self) -> bool:
        return any(_year_mask(self.key, leap, wd) for leap in (False, True) for wd in range(7))

    def next_day(self, d: date, last: date) -> date | None:
        """The first day from d to last (inclusive) that passes the filters."""
        y = d.year
        while y <= last.year:
            bits = self.year(y)
            if y == d.year:
                bits >>= d.timetuple().tm_yday - 1
                offset = d.toordinal()
            else:
                offset = date(y, 1, 1).toordinal()
            if bits:
                found = date.fromordinal(offset + ((bits & -bits).bit_length() - 1))
                return found if found <= last else None
            y += 1
        return None


@lru_cache(maxsize=4096)
def _year_mask(key: tuple, leap: bool, jan1: int) -> int:
    months, mdays, nmdays, ydays, weekdays = key
    year_len = 366 if leap else 365
    bits, i = 0, 0
    for month in range(1, 13):
        n = calendar.mdays[month] + (1 if month == 2 and leap else 0)
        for day in range(1, n + 1):
            ok = (not months or month in months) and (not weekdays or (jan1 + i) % 7 in weekdays)
            if ok and (mdays or nmdays):
                ok = day in mdays or day - n - 1 in nmdays
            if ok and ydays:
                ok = i + 1 in ydays or i - year_len in ydays
            if ok:
                bits |= 1 << i
            i += 1
    return bits


# --- restarting a WEEKLY/MONTHLY/YEARLY rule near the time searched ------------------------------------
def rebased(rule: Any, at: datetime) -> Any:
    """The same rule started at the beginning of the period of its lattice that holds `at` (local), with its
    BY-parts spelled out, so that dateutil's defaults (taken from DTSTART) do not change: the occurrences from
    `at` on are the original's."""
    from dateutil.rrule import rrule, weekday

    tz, start, i = rule._tzinfo, rule._dtstart, rule._interval
    local = at.astimezone(tz)
    if rule._freq == YEARLY:
        y = start.year + (local.year - start.year) // i * i
        new = datetime(y, 1, 1, tzinfo=tz)
    elif rule._freq == MONTHLY:
        m0, mt = start.year * 12 + start.month - 1, local.year * 12 + local.month - 1
        mi = m0 + (mt - m0) // i * i
        new = datetime(mi // 12, mi % 12 + 1, 1, tzinfo=tz)
    elif rule._freq == WEEKLY:
        w0 = start.date().toordinal() - (start.weekday() - rule._wkst) % 7
        wt = local.date().toordinal() - (local.weekday() - rule._wkst) % 7
        new = datetime.combine(date.fromordinal(w0 + (wt - w0) // (7 * i) * 7 * i), time(tzinfo=tz))
    else:
        raise ValueError("only WEEKLY, MONTHLY and YEARLY rules are restarted")
    if new <= start:
        return rule
    weekdays = [weekday(wd) for wd in rule._byweekday or ()] + [weekday(wd, n) for wd, n in rule._bynweekday or ()]
    return rrule(rule._freq, dtstart=new, interval=i, wkst=rule._wkst, until=rule._until,
                 bysetpos=rule._bysetpos, bymonth=rule._bymonth,
                 bymonthday=(rule._bymonthday or ()) + (rule._bynmonthday or ()) or None,
                 byyearday=rule._byyearday, byweekno=rule._byweekno, byweekday=weekdays or None,
                 byhour=rule._byhour, byminute=rule._byminute, bysecond=rule._bysecond)
