"""Side-by-side releases on the box (docs/updates.md, "On the box"):

    <root>/releases/<version>/   a venv of its own, with release.json and, last, the `.complete` marker
    <root>/current -> releases/<v>   what loa-boot starts; switched by renaming a new symlink over it
    <root>/previous -> releases/<v>  what a rollback goes back to
    <root>/update.json           committed, highest, pending, last (the format loa-boot shares)
    <root>/loa-boot              the stable start wrapper, in no release (scripts/loa-boot)

Every change is a rename of a fully written file or link, followed by an fsync of the directory, so a power
cut leaves the old state or the new one. A release directory without `.complete` is an interrupted install:
never started, removed by the next install or gc.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .errors import LoaError

COMPLETE = ".complete"
PIP_TAIL = 20  # lines of pip's output kept in an error


class ReleaseError(LoaError):
    """A release could not be installed or switched to."""


class Layout:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.releases = self.root / "releases"
        self.current_link = self.root / "current"
        self.previous_link = self.root / "previous"
        self.state_path = self.root / "update.json"
        self.boot = self.root / "loa-boot"

    # --- what is there --------------------------------------------------------------------------
    def _target(self, link: Path) -> str | None:
        try:
            return Path(os.readlink(link)).name
        except OSError:
            return None

    def current_version(self) -> str | None:
        return self._target(self.current_link)

    def previous_version(self) -> str | None:
        return self._target(self.previous_link)

    def complete(self, version: str) -> bool:
        return (self.releases / version / COMPLETE).is_file()

    def installed(self) -> list[str]:
        from .bundle import compare_versions

        found = [p.name for p in self.releases.iterdir() if (p / COMPLETE).is_file()] \
            if self.releases.is_dir() else []
        return sorted(found, key=_version_key(compare_versions))

    # --- installing -------------------------------------------------------------------------------
    def install(self, version: str, wheels: Path, requirement: str, manifest: dict, *, python: str | None = None,
                system_site_packages: bool = False) -> Path:
        """releases/<version> as a venv with `requirement` installed from `wheels` only (no index). The venv is
        built where it stays (its scripts hold absolute paths); `.complete` is written last."""
        dest = self.releases / version
        if self.complete(version):
            return dest
        if dest.exists():
            shutil.rmtree(dest)  # an install that was killed half way
        self.releases.mkdir(parents=True, exist_ok=True)
        python = python or getattr(sys, "_base_executable", None) or sys.executable
        venv = [python, "-m", "venv", str(dest)]  # with pip (ensurepip, offline): the next update needs one
        if system_site_packages:
            venv.insert(3, "--system-site-packages")
        _run(venv, f"creating the venv for {version}")
        cmd = [str(dest / "bin/python"), "-m", "pip", "install", "--no-index", "--find-links", str(wheels),
               "--no-cache-dir", "--disable-pip-version-check", "-q"]
        if system_site_packages:
            cmd.append("--no-deps")
        _run([*cmd, requirement], f"installing {requirement}")
        _write(dest / "release.json", json.dumps(manifest, indent=1).encode())
        _write(dest / COMPLETE, version.encode())
        _fsync_dir(self.releases)
        return dest

    # --- switching --------------------------------------------------------------------------------
    def switch(self, version: str) -> None:
        """previous := current, current := releases/<version>; each an atomic rename of a new symlink."""
        if not self.complete(version):
            raise ReleaseError(f"release {version} is not completely installed")
        current = self.current_version()
        if current and current != version:
            _link(self.previous_link, f"releases/{current}")
        _link(self.current_link, f"releases/{version}")
        _fsync_dir(self.root)

    # --- state ------------------------------------------------------------------------------------
    def read_state(self) -> dict:
        """update.json; {} when missing or torn (loa-boot reads it the same way)."""
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def write_state(self, state: dict) -> None:
        _write(self.state_path, json.dumps(state, indent=1, sort_keys=True).encode())
        _fsync_dir(self.root)

    def gc(self) -> list[str]:
        """Remove releases that are neither current nor previous (and interrupted installs)."""
        keep = {self.current_version(), self.previous_version()}
        removed = []
        if self.releases.is_dir():
            for p in self.releases.iterdir():
                if p.name not in keep:
                    shutil.rmtree(p, ignore_errors=True)
                    removed.append(p.name)
        return sorted(removed)


def running_layout() -> Layout | None:
    """The layout this agent was started from by loa-boot (it sets LOA_ROOT), else None (a checkout, a test)."""
    root = os.environ.get("LOA_ROOT")
    return Layout(Path(root)) if root else None


def _version_key(compare):  # sorted() by a cmp function
    import functools

    return functools.cmp_to_key(lambda a, b: _safe(compare, a, b))


def _safe(compare, a: str, b: str) -> int:
    try:
        return compare(a, b)
    except ValueError:
        return (a > b) - (a < b)


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-PIP_TAIL:])
        raise ReleaseError(f"{what} failed (exit {proc.returncode}): {tail}")


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _link(link: Path, target: str) -> None:
    tmp = link.with_name(f".{link.name}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
