"""The layers hold: drivers never import the agent, vendor libraries are imported only in drivers, and the
config's backend choices are the drivers' list."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from agent import config
from drivers import BACKENDS

ROOT = Path(__file__).resolve().parents[2]
VENDOR = {"vlc", "pyaudio", "RPi", "gpiod"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "drivers").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_drivers_never_import_the_agent(path: Path) -> None:
    assert "agent" not in _imports(path)


@pytest.mark.parametrize("path", sorted((ROOT / "agent").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_vendor_libraries_stay_in_drivers(path: Path) -> None:
    assert not _imports(path) & VENDOR


@pytest.mark.parametrize("kind", sorted(BACKENDS))
def test_config_choices_are_the_drivers_backends(kind: str) -> None:
    schema = config.SCHEMA.fields[kind].fields["backend"]
    assert tuple(schema.choices) == BACKENDS[kind]
    for name in BACKENDS[kind]:
        assert (ROOT / "drivers" / kind / f"{name}.py").is_file()
