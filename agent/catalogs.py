"""Build tools for the `loa` catalogues (Babel; never imported by the agent at run time).

    python -m agent.catalogs update    # extract the strings of agent/ and argparse into every .po (new ones empty)
    python -m agent.catalogs compile   # .po -> .mo next to them (setup-dev; wheels get theirs from setup.py)

English is the msgid. setup.py's build_py runs `compile_all` into the build, so wheels and bundles carry the .mo
files, which are not in git. Loaded by path from setup.py: it imports nothing of the agent.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DOMAIN = "loa"
LOCALEDIR = Path(__file__).resolve().with_name("locale")
SOURCES = Path(__file__).resolve().parent
# Our markers (agent/i18n.py) and argparse's: its strings are looked up in our domain too.
KEYWORDS = {"_": None, "n_": (1, 2), "p_": ((1, "c"), 2), "C_": ((1, "c"), 2), "Msg": None, "ngettext": (1, 2)}
ARGPARSE = Path(argparse.__file__)


def extract() -> dict[tuple[str | None, str], tuple]:
    """{(context, msgid): msgid or (singular, plural)} of every marked string in agent/ and argparse."""
    from babel.messages.extract import extract_from_file

    found: dict[tuple[str | None, str], tuple] = {}
    for path in [*sorted(SOURCES.rglob("*.py")), ARGPARSE]:
        for _line, message, _comments, context in extract_from_file("python", str(path), keywords=KEYWORDS):
            msgid = message[0] if isinstance(message, tuple) else message
            found.setdefault((context, msgid), message)
    return found


def template() -> object:
    from babel.messages.catalog import Catalog

    catalog = Catalog(domain=DOMAIN, project="loa-agent")
    for (context, _msgid), message in extract().items():
        catalog.add(message, context=context)
    return catalog


def catalogues(root: Path = LOCALEDIR) -> list[Path]:
    return sorted(root.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))


def update() -> list[Path]:
    from babel.messages.pofile import read_po, write_po

    pot = template()
    for po in catalogues():
        with po.open("rb") as f:
            catalog = read_po(f)
        catalog.update(pot)
        with po.open("wb") as f:
            write_po(f, catalog, width=116, include_lineno=False, ignore_obsolete=True)
    return catalogues()


def compile_all(src: Path = LOCALEDIR, dest: Path | None = None) -> list[Path]:
    """Every .po under src as a .mo under dest (default: beside it); fuzzy entries are left out."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for po in catalogues(src):
        mo = (dest or src) / po.relative_to(src).with_suffix(".mo")
        with po.open("rb") as f:
            catalog = read_po(f)
        mo.parent.mkdir(parents=True, exist_ok=True)
        with mo.open("wb") as f:
            write_mo(f, catalog)
        written.append(mo)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agent.catalogs", description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=("update", "compile"))
    args = ap.parse_args(argv)
    for path in update() if args.action == "update" else compile_all():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
