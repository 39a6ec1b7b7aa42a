"""Typed fields that check a JSON/YAML value and say in a short phrase what is wrong.

One mechanism serves the config file and command params, so both name the bad
field the same way (`section.key: must be ...`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .errors import SchemaError
from .i18n import Msg

MISSING: Any = object()


class Field:
    """Base field: `check(value, path)` returns the normalised value or raises SchemaError."""

    def __init__(self, *, default: Any = MISSING, optional: bool = False, secret: bool = False):
        self.default = default
        self.optional = optional or default is not MISSING
        self.secret = secret

    def check(self, value: Any, path: str) -> Any:
        raise NotImplementedError


class Str(Field):
    def __init__(self, *, pattern: str | None = None, min_len: int = 0, max_len: int = 4096,
                 choices: tuple[str, ...] | None = None, **kw: Any):
        super().__init__(**kw)
        self.pattern = re.compile(pattern) if pattern else None
        self.min_len, self.max_len, self.choices = min_len, max_len, choices

    def check(self, value: Any, path: str) -> str:
        if value is None and self.choices and "null" in self.choices:
            value = "null"  # YAML reads a bare `null` (the audio backend's name) as None
        if not isinstance(value, str):
            raise SchemaError(path, Msg("must be a string, got %(type)s", type=type_name(value)))
        if self.choices is not None and value not in self.choices:
            raise SchemaError(path, Msg("must be one of %(choices)s%(hint)s", choices=", ".join(self.choices),
                                          hint=did_you_mean(value, self.choices)))
        if not self.min_len <= len(value) <= self.max_len:
            raise SchemaError(path, Msg("must be %(min)d-%(max)d characters long", min=self.min_len, max=self.max_len))
        if self.pattern and not self.pattern.fullmatch(value):
            raise SchemaError(path, Msg("must match %(pattern)s", pattern=self.pattern.pattern))
        return value


class Int(Field):
    def __init__(self, *, min: float | None = None, max: float | None = None, **kw: Any):
        super().__init__(**kw)
        self.min, self.max = min, max

    def check(self, value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SchemaError(path, Msg("must be an integer, got %(type)s", type=type_name(value)))
        return _in_range(value, self.min, self.max, path)


class Num(Int):
    def check(self, value: Any, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SchemaError(path, Msg("must be a number, got %(type)s", type=type_name(value)))
        return float(_in_range(value, self.min, self.max, path))


class Bool(Field):
    def check(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise SchemaError(path, Msg("must be true or false, got %(type)s", type=type_name(value)))
        return value


class Path_(Str):
    """A filesystem path (string); existence is checked where it matters, not here."""


class Clock(Str):
    """A local time of day, "HH:MM"."""

    def __init__(self, **kw: Any):
        super().__init__(pattern=r"([01]\d|2[0-3]):[0-5]\d", **kw)


class List(Field):
    def __init__(self, item: Field, *, min_len: int = 0, max_len: int = 1000, **kw: Any):
        super().__init__(**kw)
        self.item, self.min_len, self.max_len = item, min_len, max_len

    def check(self, value: Any, path: str) -> list:
        if not isinstance(value, list):
            raise SchemaError(path, Msg("must be a list, got %(type)s", type=type_name(value)))
        if not self.min_len <= len(value) <= self.max_len:
            raise SchemaError(path, Msg("must have %(min)d-%(max)d entries", min=self.min_len, max=self.max_len))
        return [self.item.check(v, f"{path}[{i}]") for i, v in enumerate(value)]


class Map(Field):
    """A mapping of free keys (checked by `key`) to values of one field."""

    def __init__(self, value: Field, *, key: Str | None = None, **kw: Any):
        super().__init__(**kw)
        self.value, self.key = value, key or Str(min_len=1, max_len=128)

    def check(self, value: Any, path: str) -> dict:
        if not isinstance(value, Mapping):
            raise SchemaError(path, Msg("must be a mapping, got %(type)s", type=type_name(value)))
        return {self.key.check(k, f"{path}.{k}"): self.value.check(v, f"{path}.{k}") for k, v in value.items()}


class OneOf(Field):
    """The first alternative that accepts the value wins (e.g. a string or a list)."""

    def __init__(self, *alternatives: Field, what: str, **kw: Any):
        super().__init__(**kw)
        self.alternatives, self.what = alternatives, what

    def check(self, value: Any, path: str) -> Any:
        for alt in self.alternatives:
            try:
                return alt.check(value, path)
            except SchemaError:
                continue
        raise SchemaError(path, Msg("must be %(what)s", what=self.what))


class Kinds(Field):
    """An object whose `kind` picks its schema (a source, a scene), naming the bad field."""

    def __init__(self, kinds: Mapping[str, Obj], **kw: Any):
        super().__init__(**kw)
        self.kinds = dict(kinds)

    def check(self, value: Any, path: str) -> dict:
        if not isinstance(value, dict):
            raise SchemaError(path, Msg("must be an object with a kind"))
        kind = value.get("kind")
        if not isinstance(kind, str) or kind not in self.kinds:
            raise SchemaError(f"{path}.kind", Msg("must be one of %(choices)s%(hint)s", choices=", ".join(self.kinds),
                                                  hint=""))
        return self.kinds[kind].check(value, path)


class Obj(Field):
    """An object with named fields; unknown keys are errors with a "did you mean"."""

    def __init__(self, fields: Mapping[str, Field], *, extra: bool = False,
                 validate: Callable[[dict, str], None] | None = None, **kw: Any):
        super().__init__(**kw)
        self.fields, self.extra, self.validate = dict(fields), extra, validate

    def check(self, value: Any, path: str) -> dict:
        out, errors = self.collect(value, path)
        if errors:
            raise errors[0]
        return out

    def collect(self, value: Any, path: str = "") -> tuple[dict, list[SchemaError]]:
        """Check everything and return every problem, so a config shows them all at once."""
        if not isinstance(value, Mapping):
            return {}, [SchemaError(path, Msg("must be a mapping, got %(type)s", type=type_name(value)))]
        errors: list[SchemaError] = []
        out: dict = {}
        for key, val in value.items():
            sub = f"{path}.{key}" if path else str(key)
            field = self.fields.get(key)
            if field is None:
                if self.extra:
                    out[key] = val
                else:
                    hint = did_you_mean(str(key), self.fields)
                    errors.append(SchemaError(sub, Msg("unknown key%(hint)s", hint=hint)))
            elif isinstance(field, Obj):
                out[key], nested = field.collect(val, sub)
                errors.extend(nested)
            else:
                try:
                    out[key] = field.check(val, sub)
                except SchemaError as e:
                    errors.append(e)
        for key, field in self.fields.items():
            if key in value:
                continue
            sub = f"{path}.{key}" if path else key
            if field.default is not MISSING:
                out[key] = field.default() if callable(field.default) else field.default
            elif isinstance(field, Obj) and not field.optional:
                out[key], nested = field.collect({}, sub)
                errors.extend(nested)
            elif not field.optional:
                errors.append(SchemaError(sub, Msg("is required")))
        if not errors and self.validate:
            try:
                self.validate(out, path)
            except SchemaError as e:
                errors.append(e)
        return out, errors


def _in_range(value: float, lo: float | None, hi: float | None, path: str) -> Any:
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        lo_s = "-inf" if lo is None else f"{lo:g}"
        hi_s = "inf" if hi is None else f"{hi:g}"
        raise SchemaError(path, Msg("must be between %(min)s and %(max)s, got %(value)s", min=lo_s, max=hi_s,
                                    value=value))
    return value


def type_name(value: Any) -> str:
    names = {dict: Msg("a mapping"), list: Msg("a list"), str: Msg("a string"), bool: Msg("a boolean"),
             int: Msg("an integer"), float: Msg("a number"), type(None): "null"}
    return names.get(type(value), type(value).__name__)


def did_you_mean(word: str, choices: Any) -> str:
    import difflib  # only when something is misspelt

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return Msg(" (did you mean %(word)r?)", word=close[0]) if close else ""
