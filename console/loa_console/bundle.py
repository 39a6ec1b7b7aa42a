"""Release bundles for the `update` command: build and sign one (format 1, docs/protocol.md "Release bundles").

The box's verifier, agent/bundle.py, owns the format's names and rules; this side makes a bundle that passes it:
a copy of the source (stamped with the version asked for), `pip wheel` of that copy with every dependency, the
manifest with each wheel's size and sha256, its detached signature by a release key, and a deterministic tar.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import jwt

from agent import bundle as fmt

from .keys import KID, load_private_key

# Never packaged, and build/ would even leak stale modules into the wheel; sockets and fifos (a demo's) are
# skipped as well: they cannot be copied.
SKIP = ("build", "dist", "*.egg-info", ".git", ".venv", "console", "__pycache__", ".*_cache", ".demo")
VERSION_LINE = re.compile(r'^__version__ = "[^"]*"$', re.M)
VERSION_CHARS = re.compile(r"[A-Za-z0-9.+!_-]+")  # PEP 440's characters only: it is written into Python source
PIP_TAIL = 25  # lines of pip's output in an error


class BuildError(Exception):
    """pip could not build the wheels, or they are not what a bundle needs."""


def default_source() -> Path:
    """The checkout this console runs from (console/loa_console/ is two levels below its root)."""
    return Path(__file__).resolve().parents[2]


def build_bundle(source: Path, out: Path, key_path: Path, kid: str, *, version: str | None = None,
                 wheels: Path | None = None, python: str | None = None,
                 machine: str | None = None) -> tuple[Path, str]:
    """Build loa-agent-<version>.tar from source: out is the file when it ends in .tar, else a directory for it.

    version stamps agent/__init__.py in a copy (default: the source's own); wheels is a directory of dependency
    wheels already built (pip's --find-links); python and machine label the target (default: this interpreter
    and machine, which are what pip builds for). Returns (path, sha256 of the bundle).
    Raises ValueError (bad kid, key, version or source), OSError, BuildError.
    """
    if not KID.fullmatch(kid):
        raise ValueError(f"bad key id {kid!r}")
    key = load_private_key(Path(key_path))
    if version is not None and not VERSION_CHARS.fullmatch(version):
        raise ValueError(f"bad version {version!r}: use a PEP 440 version such as 0.2.0 or 1.0.0rc1")
    with tempfile.TemporaryDirectory(prefix="loa-bundle-") as tmp:
        copy = _copy_source(Path(source), Path(tmp) / "src", version)
        target = pack(_pip_wheel(copy, Path(tmp) / "wheels", wheels), Path(out), key, kid,
                      python=python, machine=machine)
    with target.open("rb") as f:
        return target, hashlib.file_digest(f, "sha256").hexdigest()


def pack(wheels: Path, out: Path, private_key: Any, kid: str, *, python: str | None = None,
         machine: str | None = None) -> Path:
    """The bundle of the wheels in a directory, one of them loa-agent's (whose version names the release):
    the manifest, its signature and the tar, written to out when it ends in .tar, else to the directory out
    (made if needed) as loa-agent-<version>.tar."""
    manifest = _manifest(wheels, python, machine)
    data = json.dumps(manifest, indent=2).encode() + b"\n"
    if out.is_dir() or out.suffix != ".tar":  # so that `--out dist/` is a directory even before it exists
        out.mkdir(parents=True, exist_ok=True)
        out = out / f"loa-agent-{manifest['version']}.tar"
    _write_tar(out, [(fmt.MANIFEST, data), (fmt.SIGNATURE, sign_manifest(data, private_key, kid).encode())], wheels)
    return out


def sign_manifest(data: bytes, private_key: Any, kid: str) -> str:
    """The detached compact JWS (header..signature) over the manifest's exact bytes."""
    # RFC 7797 wants "b64" in "crit" with an unencoded payload; said here so that every PyJWT writes it
    # (older ones left it out, and newer verifiers refuse a header without it).
    return jwt.api_jws.encode(data, private_key, algorithm=fmt.ALGORITHM,
                              headers={"kid": kid, "typ": fmt.TYP, "crit": ["b64"]}, is_payload_detached=True)


def _ignore(directory: str, names: list[str]) -> set[str]:
    skipped = set(shutil.ignore_patterns(*SKIP)(directory, names))
    return skipped | {n for n in names if not (os.path.isdir(p := os.path.join(directory, n)) or os.path.isfile(p))}


def _copy_source(source: Path, dest: Path, version: str | None) -> Path:
    init = Path("agent/__init__.py")
    if not (source / "setup.py").is_file() or not (source / init).is_file():
        raise ValueError(f"{source}: not a loa-agent checkout (no setup.py or {init})")
    shutil.copytree(source, dest, ignore=_ignore, symlinks=True)
    if version is not None:
        text, count = VERSION_LINE.subn(f'__version__ = "{version}"', (dest / init).read_text(encoding="utf-8"))
        if count != 1:
            raise BuildError(f"{source / init}: expected one line __version__ = \"...\", found {count}")
        (dest / init).write_text(text, encoding="utf-8")
    return dest


def _pip_wheel(copy: Path, dest: Path, find_links: Path | None) -> Path:
    cmd = [sys.executable, "-m", "pip", "wheel", "--wheel-dir", str(dest)]
    if find_links is not None:
        cmd += ["--find-links", str(find_links)]
    proc = subprocess.run([*cmd, str(copy)], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-PIP_TAIL:]
        raise BuildError("pip wheel failed:\n" + "\n".join(tail))
    return dest


def _manifest(wheels: Path, python: str | None, machine: str | None) -> dict:
    files = {}
    for path in sorted(wheels.glob("*.whl")):
        name = f"wheels/{path.name}"
        if not fmt.WHEEL.fullmatch(name):
            raise BuildError(f"{path.name}: a wheel name the box would refuse")
        with path.open("rb") as f:
            files[name] = {"sha256": hashlib.file_digest(f, "sha256").hexdigest(), "size": path.stat().st_size}
    ours = [n for n in files if n.startswith("wheels/loa_agent-")]
    if len(ours) != 1:
        raise BuildError(f"expected one loa_agent wheel, pip made {len(ours)}")
    version = ours[0].split("-")[1]  # the wheel's own version: PEP 440-normalised by the build
    return {"format": fmt.FORMAT, "name": fmt.NAME, "version": version,
            "python": python or f"{sys.version_info[0]}.{sys.version_info[1]}",
            "machine": machine or platform.machine(),
            "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "requirement": f"{fmt.NAME}=={version}", "files": files}


def _write_tar(target: Path, members: list[tuple[str, bytes]], wheels: Path) -> None:
    """The tar in the format's order; TarInfo's defaults (mtime 0, uid/gid 0, no names, 0644) keep it
    reproducible. PAX, since a wheel's name may exceed ustar's 100 characters. Written aside, then renamed."""
    part = target.with_name(target.name + ".part")
    try:
        with tarfile.open(part, "w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in members:
                tar.addfile(_info(name, len(data)), io.BytesIO(data))
            for path in sorted(wheels.glob("*.whl")):
                with path.open("rb") as f:
                    tar.addfile(_info(f"wheels/{path.name}", path.stat().st_size), f)
        os.replace(part, target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    return info
