"""The typed fields behind the config file and command params: every problem named by its path."""

from __future__ import annotations

import pytest

from agent.errors import SchemaError
from agent.schema import Bool, Clock, Int, List, Map, Num, Obj, OneOf, Str

VOLUME = Obj({"volume": Int(min=0, max=100), "zones": List(Str(choices=("main", "yard")), default=list),
              "fade_s": Num(min=0, default=0.0), "loud": Bool(optional=True)})


def error(field, value, path: str = "params") -> str:
    with pytest.raises(SchemaError) as e:
        field.check(value, path)
    return str(e.value)


@pytest.mark.parametrize("value, message", [
    (500, "params.volume: must be between 0 and 100, got 500"),
    (-50, "params.volume: must be between 0 and 100, got -50"),
    (True, "params.volume: must be an integer, got a boolean"),
    ("50", "params.volume: must be an integer, got a string"),
    (50.5, "params.volume: must be an integer, got a number"),
])
def test_ranges_and_types_name_the_field(value, message):
    assert error(VOLUME, {"volume": value}) == message


def test_defaults_fill_in_and_numbers_normalise():
    assert VOLUME.check({"volume": 40, "fade_s": 2}, "params") == {"volume": 40, "zones": [], "fade_s": 2.0}


def test_collect_reports_every_problem_at_once_with_did_you_mean():
    _, errors = VOLUME.collect({"volum": 5, "zones": ["main", "yrd"], "fade_s": -1})
    assert sorted(map(str, errors)) == [
        "fade_s: must be between 0 and inf, got -1",
        "volum: unknown key (did you mean 'volume'?)",
        "volume: is required",
        "zones[1]: must be one of main, yard (did you mean 'yard'?)",
    ]


def test_nested_objects_are_checked_with_their_path():
    cfg = Obj({"audio": Obj({"backend": Str(choices=("pyaudio", "vlc", "null"))})})
    _, errors = cfg.collect({"audio": {"backend": "alsa"}})
    assert [str(e) for e in errors] == ["audio.backend: must be one of pyaudio, vlc, null"]
    assert cfg.check({"audio": {"backend": None}}, "") == {"audio": {"backend": "null"}}  # YAML's bare null


def test_strings_lists_maps_clocks_and_alternatives():
    assert error(Str(max_len=3), "xxxx", "s") == "s: must be 0-3 characters long"
    assert error(List(Int(), max_len=1), [1, 2], "l") == "l: must have 0-1 entries"
    assert error(Map(Int()), {"a": "x"}, "m") == "m.a: must be an integer, got a string"
    assert error(Clock(), "24:00", "quiet.from").startswith("quiet.from: must match")
    either = OneOf(Str(), List(Str()), what="a string or a list of strings")
    assert either.check(["a"], "x") == ["a"]
    assert error(either, 3, "x") == "x: must be a string or a list of strings"


def test_cross_field_validation_runs_once_the_fields_are_fine():
    def later(obj: dict, path: str) -> None:
        if obj["from_s"] >= obj["to_s"]:
            raise SchemaError(path, "from_s must be before to_s")

    span = Obj({"from_s": Int(), "to_s": Int()}, validate=later)
    assert error(span, {"from_s": 5, "to_s": 1}, "span") == "span: from_s must be before to_s"
    assert error(span, {"from_s": "5", "to_s": 1}, "span") == "span.from_s: must be an integer, got a string"
