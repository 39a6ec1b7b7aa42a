"""The technician's language: gettext (domain `loa`, English is the msgid; agent/locale/vi/LC_MESSAGES/loa.po),
which language `loa` speaks, messages that keep their arguments apart (Msg), and times, sizes and durations in
plain words.

The daemon uses Msg alone: it renders in English (the wire's text) and opens no catalogue. Only the CLI calls
`setup()`, which points gettext's default domain at our catalogue, so argparse's own strings ("usage:", "invalid
choice: ...") come out in the same language as ours. Build tools (extract, update, compile) are in catalogs.py.
"""

from __future__ import annotations

import gettext
import os
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

DOMAIN = "loa"
LOCALEDIR = Path(__file__).resolve().with_name("locale")
LANGS = ("vi", "en")


class Msg(str):
    """An English message that remembers its msgid and arguments, so that where it is read it can be rendered
    in the reader's language. It *is* its English text: JSON, logs and MQTT acks see nothing else."""

    msgid: str
    args: dict[str, Any]

    def __new__(cls, msgid: str, /, **args: Any) -> Msg:
        self = super().__new__(cls, msgid % args if args else msgid)
        self.msgid, self.args = msgid, args
        return self

    def __reduce__(self) -> tuple:  # copy/pickle keep it a Msg
        return _unwire, (wire(self),)


def _(msgid: str, /, **args: Any) -> str:
    """gettext, then the named arguments (`%(name)s`) filled in."""
    text = gettext.gettext(msgid)
    return text % args if args else text


def n_(singular: str, plural: str, n: int, /, **args: Any) -> str:
    """ngettext; `n` is an argument too (`%(n)d file(s)`)."""
    return gettext.ngettext(singular, plural, n) % {"n": n, **args}


def p_(context: str, msgid: str, /, **args: Any) -> str:
    """pgettext: the same English word may need different translations (a doctor check's name, a weekday)."""
    text = gettext.pgettext(context, msgid)
    return text % args if args else text


def C_(context: str, msgid: str) -> str:
    """Marks a name translated later with p_(context, name), where it is shown (extraction finds it here)."""
    return msgid


def render(text: Any) -> str:
    """A Msg in the current language (its arguments too), a Shown value as the reader reads it, else str()."""
    if isinstance(text, Msg):
        return _(text.msgid, **{k: render(v) if isinstance(v, str) else v for k, v in text.args.items()})
    if isinstance(text, Shown):
        return text.localized()
    return str(text)


class Shown(str):
    """A value whose str() is for machines (JSON, logs) and whose localized() is for the technician."""

    def localized(self) -> str:
        raise NotImplementedError


class Lines(Shown):
    """Several messages as one text: joined by `sep`, each rendered for the reader."""

    def __new__(cls, parts: list, sep: str = "\n") -> Lines:
        self = super().__new__(cls, sep.join(map(str, parts)))
        self.parts, self.sep = list(parts), sep
        return self

    def localized(self) -> str:
        return self.sep.join(map(render, self.parts))


class Time(Shown):
    """A Unix time: RFC 3339 UTC for machines, `when()` in the device's time zone for the reader."""

    def __new__(cls, at: float, tz: str) -> Time:
        from .timeutil import rfc3339

        self = super().__new__(cls, rfc3339(at))
        self.at, self.tz = at, tz
        return self

    def localized(self) -> str:
        return when(self.at, self.tz)


class Size(Shown):
    """A size in bytes: `12.3 MB` for machines, `12,3 MB` (or kB, GB) for the reader."""

    def __new__(cls, nbytes: float) -> Size:
        self = super().__new__(cls, f"{nbytes / 2**20:.1f} MB")
        self.nbytes = nbytes
        return self

    def localized(self) -> str:
        return size(self.nbytes)


# --- Msg over the local socket: the reply stays the wire's JSON, and a side table says where Msgs are ---------
def wire(msg: Msg) -> dict:
    return {"msgid": msg.msgid, "args": {k: wire(v) if isinstance(v, Msg) else v for k, v in msg.args.items()}}


def _unwire(data: dict) -> Msg:
    return Msg(data["msgid"], **{k: _unwire(v) if isinstance(v, dict) else v for k, v in data["args"].items()})


def texts(value: Any, path: tuple = ()) -> list[list]:
    """Every Msg inside a JSON-like value, as [path, its msgid and arguments]."""
    if isinstance(value, Msg):
        return [[list(path), wire(value)]]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    return [t for k, v in items for t in texts(v, (*path, k))]


def restore(value: Any, table: list[list]) -> Any:
    """The value with the Msgs `texts` found put back (the CLI's side of the socket)."""
    for path, data in table:
        if not path:
            return _unwire(data)
        node = value
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = _unwire(data)
    return value


# --- which language --------------------------------------------------------------------------------------------
def choose(flag: str | None, configured: Callable[[], str | None]) -> str:
    """--lang, else LOA_LANG, else cli.lang of the config (asked only then; None when it cannot be loaded),
    else the locale (LC_ALL, LC_MESSAGES, LANG, the first set: vi... is Vietnamese), else English."""
    for lang in (flag, os.environ.get("LOA_LANG", "").strip().lower()):
        if lang in LANGS:
            return lang
    lang = configured()
    if lang in LANGS:
        return lang
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        if os.environ.get(var):
            return "vi" if os.environ[var].startswith("vi") else "en"
    return "en"


def setup(lang: str) -> None:
    """Our catalogue becomes gettext's default domain, in `lang` (LANGUAGE is what gettext reads first)."""
    gettext.bindtextdomain(DOMAIN, str(LOCALEDIR))
    gettext.textdomain(DOMAIN)
    os.environ["LANGUAGE"] = lang


# --- plain words: numbers, sizes, durations, times ------------------------------------------------------------
def number(x: float, digits: int = 0) -> str:
    """1,234.5 in English, 1.234,5 in Vietnamese: the separators are the catalogue's."""
    text = f"{x:,.{digits}f}"
    thousands, point = p_("thousands separator", ","), p_("decimal separator", ".")
    return text.replace(",", "\0").replace(".", point).replace("\0", thousands)


def size(nbytes: float) -> str:
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("kB", 2**10)):
        if nbytes >= scale:
            return f"{number(nbytes / scale, 1)} {unit}"
    return n_("%(n)d byte", "%(n)d bytes", int(nbytes))


def duration(seconds: float) -> str:
    """The two largest units: `2 h 5 min` / `2 giờ 5 phút`, `3 days 4 h`, `45 s`."""
    s = int(seconds)
    parts = [(s // 86400, n_("%(n)d day", "%(n)d days", s // 86400)),
             (s % 86400 // 3600, _("%(n)d h", n=s % 86400 // 3600)),
             (s % 3600 // 60, _("%(n)d min", n=s % 3600 // 60)),
             (s % 60, _("%(n)d s", n=s % 60))]
    shown = [text for amount, text in parts if amount][:2]
    return " ".join(shown) or _("%(n)d s", n=0)


WEEKDAYS = (C_("weekday", "Mon"), C_("weekday", "Tue"), C_("weekday", "Wed"), C_("weekday", "Thu"),
            C_("weekday", "Fri"), C_("weekday", "Sat"), C_("weekday", "Sun"))
MONTHS = (C_("month", "Jan"), C_("month", "Feb"), C_("month", "Mar"), C_("month", "Apr"), C_("month", "May"),
          C_("month", "Jun"), C_("month", "Jul"), C_("month", "Aug"), C_("month", "Sep"), C_("month", "Oct"),
          C_("month", "Nov"), C_("month", "Dec"))


def when(at: float | str | datetime, tz: str) -> str:
    """A moment in the device's time zone, as the reader writes it: `Mon 01 Dec 2026 07:30`,
    `Thứ Hai, 01/12/2026 07:30`. `at` is a Unix time, an RFC 3339 string or an aware datetime."""
    from zoneinfo import ZoneInfo

    if isinstance(at, (int, float)):
        moment = datetime.fromtimestamp(at, ZoneInfo(tz))
    else:
        moment = (datetime.fromisoformat(at.replace("Z", "+00:00")) if isinstance(at, str) else at)
        moment = moment.astimezone(ZoneInfo(tz)) if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(tz))
    return p_("date and time", "%(weekday)s %(day)02d %(month)s %(year)d %(hour)02d:%(minute)02d",
              **_date_parts(moment), hour=moment.hour, minute=moment.minute)


def day(d: date) -> str:
    """A local day as the reader writes it: `Tue 01 Dec 2026`, `Thứ Ba, 01/12/2026`."""
    return p_("date", "%(weekday)s %(day)02d %(month)s %(year)d", **_date_parts(d))


def _date_parts(d: date) -> dict[str, Any]:
    return {"weekday": p_("weekday", WEEKDAYS[d.weekday()]), "day": d.day, "month": p_("month", MONTHS[d.month - 1]),
            "year": d.year}
