"""A box installed from a release bundle into a temporary prefix, as `scripts/install.sh` lays it out
(releases/<v>, current, loa-boot, update.json), and the broken source trees the update tests need."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from agent.bundle import extract, load_release_keys, open_bundle
from agent.releases import Layout, install_by_hand

from .agentproc import ROOT


def install_box(prefix: Path, bundle: Path, release_keys: dict[str, Path]) -> Layout:
    """Install `bundle` as the box's first release under prefix/opt/loa-agent, as install.sh does (the same
    install_by_hand, and loa-boot with the interpreter that made the venvs)."""
    layout = Layout(prefix / "opt/loa-agent")
    manifest = open_bundle(bundle, load_release_keys({k: str(v) for k, v in release_keys.items()}))
    incoming = prefix / "incoming"
    install_by_hand(layout, manifest.version, extract(bundle, manifest, incoming), manifest.requirement)
    shutil.rmtree(incoming)
    base = getattr(sys, "_base_executable", None) or sys.executable
    text = (ROOT / "scripts/loa-boot").read_text().split("\n", 1)[1]
    layout.boot.write_text(f"#!{base}\n{text}")
    layout.boot.chmod(0o755)
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
