"""Release layouts for tests of agent/releases.py, scripts/loa-boot and scripts/install.sh: a copy of this checkout
stamped with another version, an offline wheel of it, fake releases whose loa-agent is a three-line shell script,
and loa-boot run as systemd runs it (a real process, its clock injected with LOA_BOOT_NOW)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BOOT = ROOT / "scripts/loa-boot"
# What a box's build leaves out (install.sh's list) and what a build does not need.
NOT_SHIPPED = {".git", ".venv", ".demo", ".pytest_cache", ".ruff_cache", "build", "dist", "console", "tests"}
NOW = 1_800_000_000.0  # the clock loa-boot sees unless a test says otherwise
BASE_PYTHON = getattr(sys, "_base_executable", None) or sys.executable


def clean_env(**extra: str) -> dict[str, str]:
    """No PYTHONPATH: installed commands must import the installed package, not the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(extra)
    return env


def checkout_copy(dest: Path, version: str | None = None) -> Path:
    """This checkout without what a box never gets, agent/__init__.py stamped with `version` when given."""
    dest.mkdir(parents=True)
    for entry in ROOT.iterdir():
        if entry.name in NOT_SHIPPED or entry.name.endswith(".egg-info"):
            continue
        if entry.is_dir():
            shutil.copytree(entry, dest / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, dest / entry.name, follow_symlinks=False)
    if version is not None:
        init = dest / "agent/__init__.py"
        text = init.read_text()
        assert '__version__ = "' in text
        init.write_text("\n".join(f'__version__ = "{version}"' if line.startswith("__version__ = ") else line
                                  for line in text.splitlines()) + "\n")
    return dest


def build_wheel(work: Path, version: str, wheels: Path) -> Path:
    """A wheel of this checkout as `version`, offline: pip wheel --no-deps --no-build-isolation with this
    interpreter's setuptools. Setuptools < 70.1 needs the `wheel` package for it; when this interpreter lacks it,
    Debian's python3-wheel (pure Python) is lent to the build, as scripts/install.sh does."""
    src = checkout_copy(work / f"src-{version}", version)
    env = clean_env()
    probe = subprocess.run([sys.executable, "-c", "import wheel"], capture_output=True, env=env)
    debian = Path("/usr/lib/python3/dist-packages")
    if probe.returncode != 0 and (debian / "wheel").is_dir():
        lent = work / "lent-wheel"
        if not lent.exists():
            lent.mkdir()
            # The package and its metadata: setuptools finds `bdist_wheel` through wheel's entry points.
            for path in [debian / "wheel", *debian.glob("wheel-*.egg-info"), *debian.glob("wheel-*.dist-info")]:
                (lent / path.name).symlink_to(path)
        env["PYTHONPATH"] = str(lent)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
                          "--no-build-isolation", "--wheel-dir", str(wheels), str(src)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    (wheel,) = wheels.glob(f"loa_agent-{version}-*.whl")
    return wheel


# --- fake releases and loa-boot ---


def fake_release(root: Path, version: str, *, exit_code: int = 0, complete: bool = True) -> Path:
    """releases/<version> whose bin/loa-agent says who it is (version, pid, LOA_ROOT, arguments) and exits."""
    release = root / "releases" / version
    (release / "bin").mkdir(parents=True)
    agent = release / "bin/loa-agent"
    agent.write_text(f'#!/bin/sh\necho "loa-agent {version} pid=$$ root=$LOA_ROOT args=$*"\nexit {exit_code}\n')
    agent.chmod(0o755)
    (release / "release.json").write_text(json.dumps({"version": version}) + "\n")
    if complete:
        (release / ".complete").touch()
    return release


def install_boot(root: Path) -> Path:
    """<root>/loa-boot with the base interpreter as its shebang, as install.sh puts it."""
    root.mkdir(parents=True, exist_ok=True)
    boot = root / "loa-boot"
    text = BOOT.read_text().split("\n", 1)[1]
    boot.write_text(f"#!{BASE_PYTHON}\n{text}")
    boot.chmod(0o755)
    return boot


def point(root: Path, name: str, version: str | None) -> None:
    """current/previous -> releases/<version> (None: no link), by hand."""
    link = root / name
    link.unlink(missing_ok=True)
    if version is not None:
        link.symlink_to(f"releases/{version}")


def linked(root: Path, name: str) -> str | None:
    link = root / name
    return os.readlink(link) if link.is_symlink() else None


def read_state(root: Path) -> dict:
    return json.loads((root / "update.json").read_text())


def write_state(root: Path, state: dict) -> None:
    (root / "update.json").write_text(json.dumps(state))


def pending(version: str, previous: str | None, **fields: object) -> dict:
    """An update on trial as the agent writes it just before the switch."""
    p = {"version": version, "previous": previous, "jti": f"upd-{version}", "boots": 0, "switched_at": NOW,
         "max_boots": 3, "health_timeout_s": 300, "fail": None}
    p.update(fields)
    return p


def boot_command(root: Path, *args: str) -> list[str]:
    return [str(root / "loa-boot"), *args]


def boot_env(now: float | None = NOW) -> dict[str, str]:
    env = clean_env()
    env.pop("LOA_ROOT", None)
    if now is not None:
        env["LOA_BOOT_NOW"] = repr(now)
    return env


def run_boot(root: Path, *args: str, now: float | None = NOW) -> subprocess.CompletedProcess:
    """loa-boot as systemd starts it: a process of its own, its arguments the agent's."""
    return subprocess.run(boot_command(root, *args), capture_output=True, text=True, env=boot_env(now), timeout=30,
                          cwd="/")
