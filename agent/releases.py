"""Side-by-side releases on the box: one venv per version, a `current` link, a `previous` one to roll back to.

    <root>/                      /opt/loa-agent (the unit passes it to the agent as LOA_ROOT, via loa-boot)
      releases/<version>/        a venv (bin/python, bin/loa-agent, bin/loa), release.json (its manifest) and
                                 .complete, written last: a release without it is half-installed and never started
      current -> releases/<v>    relative symlink, replaced atomically (symlink to a temp name, then rename)
      previous -> releases/<v>   the release to roll back to
      loa-boot                   the start wrapper (scripts/loa-boot), owned by root, in no release
      update.json                the update state below
      bin -> current/bin         so <root>/bin/loa (and /usr/local/bin/loa) follow the current release

update.json, shared with scripts/loa-boot (which cannot import this module: it must work when a release is
broken; tests/test_releases.py drives both on one layout). Written whole, atomically: a temp file
`.update.json.<pid>.tmp` beside it, fsync, rename, fsync of the directory.

    {"committed": "0.2.0",       last version that passed its health gate (or was installed by hand)
     "highest": "0.2.0",         highest version ever committed: the anti-rollback floor
     "pending": null | {         an update on trial, set by the agent just before the switch
        "version", "previous",   the version on trial and the one to go back to
        "jti",                   the update command's id, or null (technician)
        "boots": 0,              starts counted by loa-boot (incremented and written before each start)
        "switched_at": <epoch s>, "max_boots": 3, "health_timeout_s": 300,
        "fail": null | "<reason>"},   set by the agent when the new version failed its checks
     "last": null | {            the outcome of the last update, until reported
        "jti", "version", "previous", "outcome": "committed" | "rolled_back", "reason", "at": <epoch s>,
        "reported": false}}

Keys this module does not know are kept as they are: both writers read, change their keys and write it all.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

from .errors import LoaError

log = logging.getLogger(__name__)

COMPLETE = ".complete"
MANIFEST = "release.json"
# A release directory is named by its version: PEP 440 characters only, so a name is never a path.
VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!-]*")
# pip installing cryptography & co. from local wheels takes a minute on a Pi 3; a pip stuck for this long is hung.
INSTALL_TIMEOUT_S = 1800


class ReleaseError(LoaError):
    """A release could not be installed or switched to; the message says which and why (pip's last lines)."""


def version_key(version: str) -> tuple:
    """Sort key by PEP 440 (packaging, or pip's vendored copy: a venv always has pip); names that are not PEP 440
    sort first, by their numeric parts (loa-boot uses the same numeric fallback, stdlib only)."""
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:
        try:
            from pip._vendor.packaging.version import InvalidVersion, Version
        except ImportError:
            return (0, _numeric_key(version))
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, _numeric_key(version))


def _numeric_key(version: str) -> tuple:
    return tuple(int(n) for n in re.findall(r"\d+", version)), version


class Layout:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.releases = self.root / "releases"
        self.current_link = self.root / "current"
        self.previous_link = self.root / "previous"
        self.state_path = self.root / "update.json"
        self.boot = self.root / "loa-boot"

    def __repr__(self) -> str:
        return f"Layout({str(self.root)!r})"

    # --- what is there ---

    def release(self, version: str) -> Path:
        """releases/<version>; ReleaseError for a name that is not a plain version (no path can be smuggled in)."""
        if not VERSION_NAME.fullmatch(version):
            raise ReleaseError(f"not a release version: {version!r}")
        return self.releases / version

    def current_version(self) -> str | None:
        return self._linked(self.current_link)

    def previous_version(self) -> str | None:
        return self._linked(self.previous_link)

    def complete(self, version: str) -> bool:
        return VERSION_NAME.fullmatch(version) is not None and (self.releases / version / COMPLETE).is_file()

    def installed(self) -> list[str]:
        """Complete releases, oldest first."""
        if not self.releases.is_dir():
            return []
        return sorted((p.name for p in self.releases.iterdir() if self.complete(p.name)), key=version_key)

    def _linked(self, link: Path) -> str | None:
        """The version a link names (releases/<v>, relative or absolute), whether or not it is complete."""
        try:
            target = PurePosixPath(os.readlink(link))
        except OSError:
            return None
        if target.is_absolute():
            if target.parent != PurePosixPath(self.releases):
                return None
        elif target.parent != PurePosixPath("releases"):
            return None
        return target.name if VERSION_NAME.fullmatch(target.name) else None

    # --- changing it ---

    def install(self, version: str, wheels: Path, requirement: str, manifest: dict, *, python: str | None = None,
                system_site_packages: bool = False) -> Path:
        """Build releases/<version>: a venv made by `python` (default: the base interpreter of this one), the
        requirement installed from `wheels` only (--no-index), then release.json and .complete, all on disk.

        The venv is built where it will live: its scripts hold absolute paths, so a venv is never renamed. A
        complete release is left as is (idempotent); a half-built one (a killed attempt) is removed first, and so
        is this one if it fails. `system_site_packages` (tests only) lets the venv see the interpreter's packages
        and installs the requirement alone (--no-deps), for a machine without the dependency wheels."""
        dest = self.release(version)
        if self.complete(version):
            return dest
        if dest.exists() or dest.is_symlink():
            _remove_release(dest)
        self.releases.mkdir(parents=True, exist_ok=True)
        base = python or getattr(sys, "_base_executable", None) or sys.executable
        site = ["--system-site-packages"] if system_site_packages else []
        try:
            _run([base, "-I", "-m", "venv", *site, str(dest)], f"cannot create the venv {dest} with {base}")
            # -I and --isolated: neither PYTHONPATH nor a PIP_* variable or user pip.conf changes what goes in.
            _run([str(dest / "bin/python"), "-I", "-m", "pip", "--isolated", "--disable-pip-version-check",
                  "install", "--no-input", "--no-index", "--find-links", str(wheels),
                  *(["--no-deps"] if system_site_packages else []), requirement],
                 f"pip could not install {requirement} from {wheels} into {dest}")
            _write_atomic(dest / MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
            # .complete must not reach the disk before the thousands of files pip wrote: one sync of everything
            # (once per update) instead of an fsync per file.
            os.sync()
            _write_atomic(dest / COMPLETE, b"")
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        return dest

    def switch(self, version: str) -> None:
        """previous := current, current := version. Each link is replaced atomically: after a crash at any point
        both name complete releases (previous first, so a crash between the two leaves current as it was)."""
        if not self.complete(version):
            raise ReleaseError(f"release {version} is not complete (no {self.release(version) / COMPLETE}): "
                               "refusing to switch to it")
        old = self.current_version()
        if old == version:
            return
        if old is not None and self.complete(old):
            _relink(self.previous_link, version_dir(old))
        _relink(self.current_link, version_dir(version))

    def read_state(self) -> dict:
        """update.json; {} when there is none. A file that is not a JSON object is logged and read as {} (it can
        only come from a disk fault: every writer replaces it atomically)."""
        try:
            state = json.loads(self.state_path.read_bytes())
        except FileNotFoundError:
            return {}
        except ValueError as e:
            log.warning("ignoring %s, which is not valid JSON: %s", self.state_path, e)
            return {}
        if not isinstance(state, dict):
            log.warning("ignoring %s, which is not a JSON object", self.state_path)
            return {}
        return state

    def write_state(self, state: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.state_path, (json.dumps(state, indent=2, sort_keys=True) + "\n").encode())

    def gc(self) -> list[str]:
        """Remove every release that is not current or previous, and every incomplete one (never while an install
        runs: it would be incomplete). Also the temp files of writers killed before their rename."""
        keep = {self.current_version(), self.previous_version()}
        removed: list[str] = []
        if self.releases.is_dir():
            for entry in self.releases.iterdir():
                if entry.name not in keep or not self.complete(entry.name):
                    _remove_release(entry)
                    removed.append(entry.name)
        for tmp in self.root.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
        return sorted(removed, key=version_key)


def version_dir(version: str) -> str:
    """A link's target: relative, so the layout means the same under a --prefix or a chroot."""
    return f"releases/{version}"


def running_layout() -> Layout | None:
    """The layout this agent was started from (loa-boot sets LOA_ROOT), or None (a checkout, a test)."""
    root = os.environ.get("LOA_ROOT")
    return Layout(Path(root)) if root else None


# --- files, written so that a crash at any point leaves the old or the new ---


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _relink(link: Path, target: str) -> None:
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)  # left by a killed process that had our pid
    os.symlink(target, tmp)
    os.replace(tmp, link)
    _fsync_dir(link.parent)


def _remove_release(path: Path) -> None:
    """.complete goes first and durably: a removal cut short leaves an incomplete release, never a complete-looking
    one with files missing."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
        return
    (path / COMPLETE).unlink(missing_ok=True)
    _fsync_dir(path)
    shutil.rmtree(path)


def _run(cmd: list[str], what: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise ReleaseError(f"{what}: still running after {INSTALL_TIMEOUT_S} s") from e
    if out.returncode != 0:
        tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-10:])
        raise ReleaseError(f"{what} (exit {out.returncode}):\n{tail}")


# --- `python -m agent.releases install ...`: scripts/install.sh's hand install ---


def install_by_hand(layout: Layout, version: str, wheels: Path, requirement: str, *,
                    system_site_packages: bool = False) -> list[str]:
    """Install, switch to and commit `version`, as a technician does with install.sh: a deliberate install needs
    no health gate, supersedes any update on trial and raises the anti-rollback floor. Returns what it did."""
    kept = layout.complete(version)
    layout.install(version, wheels, requirement, {"version": version, "installed_by": "install.sh"},
                   system_site_packages=system_site_packages)
    done = [f"kept release {version}, complete already (a changed checkout needs a new __version__)" if kept
            else f"installed release {version}"]
    layout.switch(version)
    state = layout.read_state()
    highest = state.get("highest")
    if not isinstance(highest, str) or version_key(version) > version_key(highest):
        highest = version
    state.update(committed=version, highest=highest, pending=None)
    state.setdefault("last", None)
    layout.write_state(state)
    done.append(f"current {version}, previous {layout.previous_version() or 'none'}, highest {highest}")
    done += [f"removed release {v}" for v in layout.gc()]
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agent.releases", description=__doc__.split("\n", 1)[0])
    sub = ap.add_subparsers(dest="command", required=True)
    inst = sub.add_parser("install", help="install, switch to and commit a release (what scripts/install.sh runs)")
    inst.add_argument("--root", type=Path, required=True, help="the layout's root, e.g. /opt/loa-agent")
    inst.add_argument("--version", required=True)
    inst.add_argument("--wheels", type=Path, required=True, help="directory of wheels (no index is used)")
    inst.add_argument("--requirement", required=True, help="e.g. loa-agent[pi]==0.2.0")
    inst.add_argument("--system-site-packages", action="store_true", help="tests: see the interpreter's packages")
    args = ap.parse_args(argv)
    try:
        for line in install_by_hand(Layout(args.root), args.version, args.wheels, args.requirement,
                                    system_site_packages=args.system_site_packages):
            print(line)
    except (OSError, ReleaseError) as e:
        print(f"agent.releases: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
