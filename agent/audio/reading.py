"""How a Vietnamese bulletin is read aloud: the words a news reader would say for what is written.

`Reader.read` turns numbers (1.250.000, 3,5), times (7h30, 14:00), dates (05/12/2026, 1/12, 12/2026),
ranges (7-9 giờ, 35-37°C), units and signs (km/h, m³/s, %, °C), telephone numbers (digit by digit) and the
abbreviations of official bulletins (UBND, BCH PCTT, TP.) into words, in front of every TTS engine
(agent/audio/tts.py). The abbreviations, units, signs and letter names come from a lexicon: the built-in
`lexicon_vi.tsv` beside this file, with a province's files (`tts.lexicon`) laid over it; their entries win.

What it cannot read it leaves for the engine, never drops: an unknown all-caps word that is not a Vietnamese
syllable (VTV, SMS) is spelled letter by letter with the lexicon's letter names; anything else stays as it is.
The rules are ours and table-driven (docs/speech.md says why no library fits); everything is compiled once
per Reader, so a 2,000-character bulletin reads in a few milliseconds.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

BUILTIN = Path(__file__).with_name("lexicon_vi.tsv")
KINDS = ("abbr", "unit", "letter", "symbol")
DIGITS = ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")
MAX_CARDINAL_DIGITS = 15  # past a thousand trillion, a figure is read digit by digit

# --- numbers ------------------------------------------------------------------------------------


def _hundreds(n: int, full: bool) -> list[str]:
    """0 < n < 1000. `full`: a group after a higher one, read with its hundreds (không trăm, linh)."""
    h, rest = divmod(n, 100)
    t, u = divmod(rest, 10)
    words = [DIGITS[h], "trăm"] if h or full else []
    if t == 0:
        if u:
            words += ["linh", DIGITS[u]] if words else [DIGITS[u]]
    elif t == 1:
        words += ["mười"] + ([("lăm" if u == 5 else DIGITS[u])] if u else [])
    else:
        words += [DIGITS[t], "mươi"] + ([{1: "mốt", 5: "lăm"}.get(u, DIGITS[u])] if u else [])
    return words


def _cardinal(n: int, full: bool) -> list[str]:
    billions, rest = divmod(n, 10**9)
    words: list[str] = []
    if billions:
        words += _cardinal(billions, full) + ["tỷ"]
        full = True
    for group, scale in ((rest // 10**6, "triệu"), (rest // 1000 % 1000, "nghìn"), (rest % 1000, "")):
        if group:  # a zero group is skipped; the next one is read in full (một triệu không trăm năm mươi)
            words += _hundreds(group, full) + ([scale] if scale else [])
            full = True
    return words


def cardinal(n: int) -> str:
    """2026 -> hai nghìn không trăm hai mươi sáu; 105 -> một trăm linh năm; 21 -> hai mươi mốt."""
    return " ".join(_cardinal(n, False)) if n else "không"


def ordinal(n: int) -> str:
    """After "thứ": 1 -> nhất, 4 -> tư (thứ tư is Wednesday too), else the cardinal."""
    return {1: "nhất", 4: "tư"}.get(n) or cardinal(n)


def month(n: int) -> str:
    return "tư" if n == 4 else cardinal(n)


def digits(text: str) -> str:
    return " ".join(DIGITS[int(c)] for c in text if c.isdigit())


def _integer(text: str) -> str:
    if (len(text) > 1 and text[0] == "0") or len(text) > MAX_CARDINAL_DIGITS:
        return digits(text)  # 05, a code or a long figure: as written
    return cardinal(int(text))


def number(text: str) -> str:
    """A written number: 1.250.000 and 1,250,000 (thousands), 3,5 and 3.5 (decimals: phẩy), 0912 (digits)."""
    if re.fullmatch(r"\d{1,3}(?:,\d{3}){2,}", text):
        return _integer(text.replace(",", ""))
    if re.fullmatch(r"\d{1,3}(?:\.\d{3})+(?:,\d+)?", text):
        text = text.replace(".", "")
    whole, _, frac = text.replace(",", ".").partition(".")
    words = _integer(whole)
    if frac:  # 3,5 -> ba phẩy năm; 10,25 -> mười phẩy hai mươi lăm; 1,05 and 3,14159: digit by digit
        words += " phẩy " + (cardinal(int(frac)) if len(frac) <= 2 and frac[0] != "0" else digits(frac))
    return words


def _phone(text: str) -> str:
    """0912 345 678 -> không chín một hai, ba bốn năm, sáu bảy tám; groups as written, else 4-3-3."""
    groups = re.findall(r"\d+", text)
    if len(groups) == 1 and len(groups[0]) >= 8:
        g = groups[0]
        cuts = (4,) if g[:4] in ("1800", "1900") else (4, 7) if len(g) == 10 else (3, 7) if len(g) == 11 else ()
        groups = [g[a:b] for a, b in zip((0, *cuts), (*cuts, len(g)), strict=True)]
    return ("cộng " if text.lstrip().startswith("+") else "") + ", ".join(digits(g) for g in groups)


_ROMAN = {"I": 1, "V": 5, "X": 10}


def roman(text: str) -> int | None:
    """I..XXXIX as written by the rules (IV, not IIII), else None."""
    total = 0
    for a, b in zip(text, text[1:] + " ", strict=True):
        v = _ROMAN[a]
        total += -v if _ROMAN.get(b, 0) > v else v
    if not 0 < total < 40:
        return None
    tens, units = divmod(total, 10)
    canon = "X" * tens + ("", "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX")[units]
    return total if canon == text else None


# --- Vietnamese syllables: what an all-caps word may be before it is spelled -------------------

_SYLLABLE = re.compile(r"(?:ngh|ng|gh|gi|kh|nh|ph|qu|th|tr|ch|[bcdghklmnprstvx])?[aeiouy]{1,3}(?:ch|ng|nh|[cmnpt])?")


def _bare(text: str) -> str:
    """Lower case without tones or vowel marks, đ as d: the shape of a syllable."""
    decomposed = unicodedata.normalize("NFD", text.lower().replace("đ", "d"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def is_vietnamese(text: str) -> bool:
    """Every word of `text` has the shape of a Vietnamese syllable (BÃO, NGHIÊNG: yes; UBND, SMS: no)."""
    words = re.findall(r"[^\W\d_]+", text)
    return bool(words) and all(_SYLLABLE.fullmatch(_bare(w)) for w in words)


# --- the lexicon ----------------------------------------------------------------------------------


class LexiconError(ValueError):
    """A lexicon file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Entry:
    kind: str
    key: str
    reading: str


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


def _entry(kind: str, key: str, reading: str, where: str) -> Entry:
    kind, key, reading = kind.strip() or "abbr", _nfc(key), _nfc(reading)
    if kind not in KINDS:
        raise LexiconError(f"{where}: unknown kind {kind!r} (one of {', '.join(KINDS)})")
    if not key or not reading:
        raise LexiconError(f"{where}: an entry needs a key and a reading")
    if kind == "letter" and len(key) != 1:
        raise LexiconError(f"{where}: a letter's key is one letter, got {key!r}")
    if kind in ("abbr", "letter") and not re.search(r"[^\W\d_]", key):
        raise LexiconError(f"{where}: the key {key!r} has no letter (numbers are read by the rules)")
    return Entry(kind, key, reading)


def _tsv(text: str, source: str) -> list[Entry]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) not in (2, 3):
            raise LexiconError(f"{source}:{n}: expected KEY<TAB>READING or KEY<TAB>READING<TAB>KIND "
                               f"(tab-separated), got {line.strip()[:60]!r}")
        out.append(_entry(cols[2] if len(cols) == 3 else "", cols[0], cols[1], f"{source}:{n}"))
    return out


def _yaml(text: str, source: str) -> list[Entry]:
    """A flat mapping KEY: READING (abbreviations), or one mapping per kind (abbr:, unit:, letter:, symbol:).
    Keys are taken as written (composed, not loaded): NO or ON stay abbreviations, not booleans."""
    import yaml

    try:
        root = yaml.compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise LexiconError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if root is None:
        return []
    if not isinstance(root, yaml.MappingNode):
        raise LexiconError(f"{source}:{root.start_mark.line + 1}: must be a mapping of KEY: READING")
    by_kind = all(isinstance(k, yaml.ScalarNode) and k.value in KINDS and isinstance(v, yaml.MappingNode)
                  for k, v in root.value)
    sections = [(k.value, v) for k, v in root.value] if by_kind else [("abbr", root)]
    out = []
    for kind, node in sections:
        for k, v in node.value:
            where = f"{source}:{k.start_mark.line + 1}"
            if not (isinstance(k, yaml.ScalarNode) and isinstance(v, yaml.ScalarNode)) or v.tag.endswith(":null"):
                raise LexiconError(f"{where}: expected KEY: READING, both text")
            out.append(_entry(kind, k.value, v.value, where))
    return out


def load_lexicon(path: str | Path) -> list[Entry]:
    """Entries of a lexicon file (.yaml/.yml, else tab-separated), in file order; LexiconError names the line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise LexiconError(f"{p}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    return _yaml(text, str(p)) if p.suffix.lower() in (".yaml", ".yml") else _tsv(text, str(p))


# --- the reader -----------------------------------------------------------------------------------

_NUM = r"\d{1,3}(?:,\d{3}){2,}(?!\d|,\d)|\d{1,3}(?:\.\d{3})+(?:,\d+)?(?!\d|\.\d)|\d+(?:[.,]\d+)?"
_END = r"(?!\w|[.,:/]\d)"  # not in the middle of a word or a longer figure
_HOUR, _MIN = r"(?:[01]?\d|2[0-4])", r"[0-5]\d"
_TIME = rf"{_HOUR}\s?(?:h(?:\s?{_MIN})?|g\s?{_MIN}|:{_MIN}(?::{_MIN})?)"  # 7h, 7h30, 7g30, 7:30, 07:30:15
_PHONE = r"(?:\+\d{2}[ .-]?)?\(?\d{3,5}\)?(?:[ .-]?\d{2,4})*"
_PHONE_LIST = rf"{_PHONE}(?:\s*(?:,|;|/|-|hoặc|và)\s*{_PHONE})*"
_PHONE_CUE = (r"(?i:gọi(?:\s+điện)?|điện\s+thoại|đường\s+dây\s+nóng|hotline|tổng\s+đài|liên\s+hệ|fax|zalo)"
              r"(?:\s+(?i:số|ngay|đến|tới|cho|về|qua|theo|là|khẩn\s+cấp))*\s*:?\s*")
_ROMAN_CUE = (r"(?i:quý|khóa|khoá|kỳ|kì|thế\s+kỷ|thế\s+kỉ|chương|phần|mục|điều|phụ\s+lục|đại\s+hội|hội\s+nghị|"
              r"thứ)")

_CLEAN = [  # (pattern, replacement): odd typography to plain text
    (re.compile(r"[\u200b-\u200d\ufeff\u00ad]"), ""),
    (re.compile(r"[\u00a0\u2000-\u200a\u202f\u205f\u3000\t\r\f\v]"), " "),
    (re.compile(r"[\u201c\u201d\u201e\u00ab\u00bb\"]"), ""),
    (re.compile(r"[\u2018\u2019]"), "'"),
    (re.compile(r"\s*[\u2014\u2015]\s*"), ", "),  # an em dash is a pause
    (re.compile(r"[\u2010-\u2013\u2212]"), "-"),  # hyphens, en dash, minus
    (re.compile(r"\u2026"), "..."),
    (re.compile(r"(?<=\d)\s?[o\u2070\u00ba](?=C\b)"), "°"),  # 35oC, 35⁰C, 35ºC as typed
    (re.compile(r"[•●▪◦■□►✓✔]"), " "),
    (re.compile(r"([!?,;:])\1+"), r"\1"),
    (re.compile(r"-{2,}"), ", "),
]


def _preceded_by(s: str, start: int, words: str) -> bool:
    return re.search(rf"(?i:{words})\s*$", s[max(0, start - 8):start]) is not None


def _key_pattern(key: str) -> str:
    body = r"\s+".join(re.escape(part) for part in key.split())
    return body + (r"(?![^\W\d_])" if re.match(r"\w", key[-1]) else "")  # QL1A: quốc lộ 1A


def _alternation(keys: list[str]) -> str:
    return "|".join(_key_pattern(k) for k in sorted(keys, key=len, reverse=True))


class Reader:
    """The words to speak for a Vietnamese text; built once per set of lexicons (regexes compiled here)."""

    def __init__(self, lexicons: Sequence[str | Path] = ()) -> None:
        self.table: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
        for e in load_lexicon(BUILTIN) + [e for p in lexicons for e in load_lexicon(p)]:
            self.table[e.kind][e.key] = e.reading  # later files win: the province's over the built-in
        abbr, units = self.table["abbr"], self.table["unit"]
        self._folded = {k.casefold(): v for k, v in abbr.items()}
        never = r"(?!x)x"  # an empty table matches nothing
        unit = _alternation(list(units)) or never
        self.passes: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
            # After a figure an abbreviation is a unit (110 kV), left to the number rule.
            (re.compile(rf"(?<!\w)(?<!\d\s)(?:{_alternation(list(abbr)) or never})", re.I), self._abbr),
            (re.compile(rf"(?P<cue>{_PHONE_CUE})(?P<list>{_PHONE_LIST}){_END}"), self._phones),
            (re.compile(rf"(?<![\w.,/:+])(?:(?:\+84[ .-]?|0)\d{{2,3}}[ .-]?\d{{3,4}}[ .-]?\d{{3,4}}"
                        rf"|1[89]00[ .-]?\d{{2,4}}(?:[ .-]?\d{{2,4}})?){_END}"), lambda m: f" {_phone(m[0])} "),
            (re.compile(r"(?<![\w/.,])(?:(?P<d>\d{1,2})(?P<sep>[/.-])(?P<m>\d{1,2})(?P=sep)(?P<y>\d{4})"
                        r"|(?P<d1>\d{1,2})\s*-\s*(?P<d2>\d{1,2})/(?P<m2>\d{1,2})(?:/(?P<y2>\d{4}))?"
                        r"|(?P<m3>\d{1,2})/(?P<y3>\d{4})|(?P<d4>\d{1,2})/(?P<m4>\d{1,2}))" + _END), self._date),
            (re.compile(rf"(?<![\w:.,/])(?:(?P<a>{_TIME}|{_HOUR})\s*-\s*)?(?P<b>{_TIME})"
                        rf"(?:\s?(?:phút|ph|p|')(?!\w))?{_END}"), self._time),
            (re.compile(rf"(?<!\w)(?P<w>(?i:thứ|tháng))\s+(?P<n>\d{{1,2}}){_END}"), self._ordinal),
            (re.compile(rf"(?<!\w)(?P<w>{_ROMAN_CUE})\s+(?P<r>[IVX]+)(?!\w)"), self._roman),
            (re.compile(rf"(?P<neg>(?<![\w)])-\s?)?(?<![\d.,])(?P<a>{_NUM})(?:\s*-\s*(?P<b>{_NUM})|/(?P<over>\d+))?"
                        rf"(?:\s?(?P<u>{unit})(?:/(?P<per>{unit}))?)?"), self._number),
            (re.compile(_alternation(list(self.table["symbol"])) or never), self._symbol),
            (re.compile(r"[^\W\d_]+"), self._caps),
        ]

    def read(self, text: str) -> str:
        """The words to speak for `text` (NFC or NFD, any case); what cannot be read is kept, never dropped."""
        s = unicodedata.normalize("NFC", text)
        for pattern, repl in _CLEAN:
            s = pattern.sub(repl, s)
        s = re.sub(r"[ ]*\n\s*", lambda m: " " if m.start() == 0 or s[m.start() - 1] in ".!?:;," else ". ", s)
        for pattern, fn in self.passes:
            s = pattern.sub(fn, s)
        s = re.sub(r"\s+", " ", s)
        return re.sub(r"\s+(?=[,.!?;:)])", "", s).strip()

    # --- one method a rule, each given its match -------------------------------------------------

    def _abbr(self, m: re.Match[str]) -> str:
        text = m[0]
        key = re.sub(r"\s+", " ", text)
        reading = self.table["abbr"].get(key)
        if reading is None:  # another case: ubnd, Tp.; but "ca" stays a word (were CA a key), and km/h's h
            if is_vietnamese(text) or len(re.findall(r"[^\W\d_]", text)) < 2:
                return text
            reading = self._folded[key.casefold()]
        return f" {reading} "

    def _phones(self, m: re.Match[str]) -> str:
        return m["cue"] + re.sub(r"\+?\(?\d(?:[\d() .-]*\d)?", lambda p: _phone(p[0]), m["list"]) + " "

    def _date(self, m: re.Match[str]) -> str:
        s, start = m.string, m.start()
        d, y = m["d"] or m["d1"] or m["d4"], m["y"] or m["y2"] or m["y3"]
        mo = m["m"] or m["m2"] or m["m3"] or m["m4"]
        cue = _preceded_by(s, start, "ngày|hôm|mùng|mồng")
        days_ok = all(1 <= int(x) <= 31 for x in (d, m["d2"]) if x)
        if (m[0] == "24/7" and not cue) or not 1 <= int(mo) <= 12 or not days_ok:  # trực 24/7 is no date
            return m[0]  # not a date: the number rule reads the figures
        if d is None:
            words = ([] if _preceded_by(s, start, "tháng") else ["tháng"]) + [month(int(mo))]
        else:
            days = cardinal(int(d)) + (f" đến {cardinal(int(m['d2']))}" if m["d2"] else "")
            words = ([] if cue else ["ngày"]) + [days, "tháng", month(int(mo))]
        if y:
            words += ["năm", cardinal(int(y))]
        return f" {' '.join(words)} "

    def _time(self, m: re.Match[str]) -> str:
        def one(text: str) -> str:
            h, mi, sec = (re.findall(r"\d+", text) + [None, None])[:3]
            words = f"{cardinal(int(h))} giờ"
            words += f" {cardinal(int(mi))} phút" if mi and int(mi) else ""
            return words + (f" {cardinal(int(sec))} giây" if sec and int(sec) else "")
        if m["a"] and re.fullmatch(r"\d+", m["a"]):  # 7-9h: the first hour shares the second's "giờ"
            return f" {cardinal(int(m['a']))} đến {one(m['b'])} "
        return f" {one(m['a']) + ' đến ' if m['a'] else ''}{one(m['b'])} "

    def _ordinal(self, m: re.Match[str]) -> str:
        n = int(m["n"])
        if m["w"].lower() == "tháng":
            return f"{m['w']} {month(n)}" if 1 <= n <= 12 else m[0]
        return f"{m['w']} {ordinal(n)}"  # thứ 2: a weekday (thứ hai), lần thứ 4: thứ tư

    def _roman(self, m: re.Match[str]) -> str:
        n = roman(m["r"])
        if n is None:
            return m[0]
        return f"{m['w']} {ordinal(n) if m['w'].lower() == 'thứ' else cardinal(n)}"  # quý IV, khóa XV

    def _number(self, m: re.Match[str]) -> str:
        words = ("âm " if m["neg"] else "") + number(m["a"])
        if m["b"]:
            words += f" đến {number(m['b'])}"
        if m["over"]:  # what is not a date: trực 24/24, 45/100 hộ
            words += f" trên {number(m['over'])}"
        if m["u"]:
            words += f" {self.table['unit'][m['u']]}"
        if m["per"]:  # 25.000đ/kg: đồng trên ki lô gam, as km/h is ki lô mét trên giờ
            words += f" trên {self.table['unit'][m['per']]}"
        return f" {words} "

    def _symbol(self, m: re.Match[str]) -> str:
        return f" {self.table['symbol'][m[0]]} "

    def _caps(self, m: re.Match[str]) -> str:
        word = m[0]
        if not word.isupper():
            return word
        if is_vietnamese(word):
            return word.lower()  # a headline in capitals: BÃO SỐ 3 -> bão số 3
        letters = self.table["letter"]
        return " ".join(letters.get(c, c.lower()) for c in word)  # VTV -> vê tê vê


_READERS: dict[tuple, Reader] = {}


def reads(lang: str) -> bool:
    """Whether text in `lang` goes through the Reader (Vietnamese); other languages are spoken as written."""
    return lang.lower().startswith("vi")


def reader_for(cfg: dict) -> Reader:
    """The Reader for an agent config (`tts.lexicon`), one per process for each set of files as they are
    now: an edited lexicon file is read again (keyed by its size and modification time)."""
    paths = [str(p) for p in (cfg.get("tts") or {}).get("lexicon") or []]
    key = tuple((p, *_stamp(p)) for p in paths)
    reader = _READERS.get(key)
    if reader is None:
        reader = _READERS[key] = Reader(paths)
    return reader


def _stamp(path: str) -> tuple[int, int]:
    try:
        st = Path(path).stat()
    except OSError:
        return (-1, -1)  # Reader() raises the LexiconError that says why
    return (st.st_mtime_ns, st.st_size)


def lexicon_problems(paths: Sequence[str], key: str = "tts.lexicon") -> list[str]:
    """Config check: every listed lexicon file exists and parses (a message naming the file and line)."""
    from ..i18n import Msg

    problems: list[str] = []
    for i, path in enumerate(paths):
        try:
            load_lexicon(path)
        except LexiconError as e:
            problems.append(Msg("%(key)s[%(i)d]: %(error)s", key=key, i=i, error=str(e)))
    return problems
