"""A box installed from a release bundle into a temporary prefix, as `scripts/install.sh` lays it out
(releases/<v>, current, loa-boot, update.json), and the broken source trees the update tests need."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from agent.bundle import extract, load_release_keys, open_bundle
from agent.releases import Layout

from .agentproc import ROOT


def install_box(prefix: Path, bundle: Path, release_keys: dict[str, Path]) -> Layout:
    """Install `bundle` as the box's first release under prefix/opt/loa-agent, with the stable loa-boot."""
    layout = Layout(prefix / "opt/loa-agent")
    manifest = open_bundle(bundle, load_release_keys({k: str(v) for k, v in release_keys.items()}))
    incoming = prefix / "incoming"
    wheels = extract(bundle, manifest, incoming)
    layout.install(manifest.version, wheels, manifest.requirement, manifest.raw)
    shutil.rmtree(incoming)
    layout.switch(manifest.version)
    boot = layout.boot
    text = (ROOT / "scripts/loa-boot").read_text().split("\n", 1)[1]
    boot.write_text(f"#!{sys.executable}\n{text}")  # as install.sh does: the interpreter that made the venvs
    boot.chmod(0o755)
    layout.write_state({"committed": manifest.version, "highest": manifest.version, "pending": None, "last": None})
    return layout


def broken_source(tmp: Path) -> Path:
    """A copy of this project whose agent dies at start, before it even reads its config (a crash loop)."""
    src = tmp / "broken-src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info",
                                                             "__pycache__", ".pytest_cache", ".ruff_cache"))
    daemon = src / "agent/daemon.py"
    text = daemon.read_text()
    marker = "    args = ap.parse_args(argv)\n"
    assert marker in text
    daemon.write_text(text.replace(marker, marker + '    raise SystemExit("broken build: dies before reading its '
                                                    'config")\n', 1))
    return src
