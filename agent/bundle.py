"""Release bundles, format 1 (docs/protocol.md, "Release bundles"): nothing is installed before this says yes.

A bundle is an uncompressed tar: manifest.json, manifest.sig (a compact JWS by a release key over the manifest's
exact bytes, payload detached: RFC 7515 with RFC 7797's b64=false) and wheels/*.whl, each listed in the manifest
with its size and sha256. The signature covers the manifest, the manifest covers every wheel, and nothing else may
be in the tar. Release keys are not command keys: a stolen command key can ask for an update, never sign one.

Only agent.errors from the agent, so the updater, `loa update` and the console's builder can all use it.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import shutil
import sys
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.errors import LoaError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

try:
    from packaging.version import InvalidVersion, Version
except ImportError:  # a release's venv need not have packaging, but it always has pip, which vendors it
    from pip._vendor.packaging.version import InvalidVersion, Version

__all__ = ["BundleError", "Manifest", "check_compatible", "compare_versions", "extract", "load_release_keys",
           "open_bundle"]

FORMAT = 1
NAME = "loa-agent"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
ALGORITHM = "EdDSA"
TYP = "loa-release+jws"  # explicit typing (RFC 8725 3.11): no other token signed by the key passes for a release
WHEEL = re.compile(r"wheels/[A-Za-z0-9._+-]+\.whl")  # one level, no slash: no `..`, no absolute path
SHA256 = re.compile(r"[0-9a-f]{64}")
PYTHON = re.compile(r"\d+\.\d+")
MACHINE = re.compile(r"[A-Za-z0-9_.-]{1,32}")
# Read into memory before the signature is checked, so bounded; a release has about 20 wheels.
MAX_MANIFEST = 1 << 20
MAX_SIGNATURE = 4096
MAX_MEMBERS = 512
CHUNK = 1 << 20
_REGULAR = (tarfile.REGTYPE, tarfile.AREGTYPE)  # not even GNU sparse files: a builder never writes them
# PEP 706 (3.11.4+). Without it, the name pattern and the regular-file rule already exclude what it would refuse.
_data_filter = getattr(tarfile, "data_filter", None)


class BundleError(LoaError):
    """A bundle refused; `code` is the ack code: bad_signature, bad_schema or not_for_me."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Manifest:
    """A verified manifest.json: `raw` is the whole document, `kid` the release key that signed it."""

    version: str
    python: str
    machine: str
    requirement: str
    files: dict[str, dict]
    kid: str
    raw: dict


def load_release_keys(keys: dict[str, str | Path]) -> dict[str, Ed25519PublicKey]:
    """security.release_keys (kid -> PEM file) loaded; OSError if a file is unreadable, ValueError if not Ed25519."""
    # PyJWT and cryptography (12 MB resident) are imported when a bundle arrives, not by the idle daemon, which
    # restarts into the new release after an update anyway.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    loaded = {}
    for kid, path in keys.items():
        key = load_pem_public_key(Path(path).read_bytes())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"release key {kid} ({path}): not an Ed25519 public key")
        loaded[kid] = key
    return loaded


def open_bundle(path: Path, release_keys: dict[str, Ed25519PublicKey]) -> Manifest:
    """The bundle's manifest, once its signature, its schema and the tar's member list hold.

    Reads only the two small members; the wheels are checked against the manifest by extract().
    """
    with _tar(path) as tar:
        members = _members(tar)
        data = _read(tar, members[MANIFEST], MAX_MANIFEST, "bad_schema")
        token = _read(tar, members[SIGNATURE], MAX_SIGNATURE, "bad_signature")
    manifest = _parse(data, _verify(data, token, release_keys))
    wheels = members.keys() - {MANIFEST, SIGNATURE}
    if extra := sorted(wheels - manifest.files.keys()):
        raise BundleError("bad_schema", f"not in the manifest: {', '.join(extra)}")
    if missing := sorted(manifest.files.keys() - wheels):
        raise BundleError("bad_schema", f"in the manifest but not in the bundle: {', '.join(missing)}")
    for name in sorted(wheels):
        _check_size(name, members[name].size, manifest.files[name]["size"])
    return manifest


def check_compatible(m: Manifest) -> None:
    """Refuse a bundle whose wheels were built for another Python or CPU (they would not install, or not run)."""
    python, machine = f"{sys.version_info[0]}.{sys.version_info[1]}", platform.machine()
    if (m.python, m.machine) != (python, machine):
        raise BundleError("not_for_me", f"the bundle is for Python {m.python} on {m.machine}; "
                                        f"this box runs Python {python} on {machine}")


def extract(path: Path, m: Manifest, dest: Path) -> Path:
    """The manifest's wheels written to dest/wheels, each size and sha256 checked as it is written.

    A mismatch is BundleError("bad_signature", "tampered: ..."); on any failure dest is removed.
    """
    wheels = dest / "wheels"
    try:
        # Leftovers of a killed attempt must not reach `pip install --find-links`: only verified wheels may.
        if wheels.exists():
            shutil.rmtree(wheels)
        wheels.mkdir(parents=True)
        with _tar(path) as tar:
            members = _members(tar)  # the file may have changed since open_bundle: same rules again
            for name, entry in sorted(m.files.items()):
                if name not in members:
                    raise BundleError("bad_signature", f"tampered: {name} is missing")
                _write(tar, members[name], dest, entry)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return wheels


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as a is older than, the same as or newer than b (PEP 440: 0.10.0 > 0.9.1, 1.0.0rc1 < 1.0.0).

    Raises ValueError (InvalidVersion) for a string that is not a PEP 440 version.
    """
    va, vb = Version(a), Version(b)
    return (va > vb) - (va < vb)


# --- the tar ---------------------------------------------------------------------------------

@contextmanager
def _tar(path: Path) -> Iterator[tarfile.TarFile]:
    try:
        with tarfile.open(path, "r:") as tar:  # "r:": uncompressed only, as the format says
            yield tar
    except tarfile.TarError as e:  # a corrupt header, a truncated member, or the data filter's refusal
        raise BundleError("bad_schema", f"{Path(path).name}: not a readable bundle: {e}") from None


def _members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    """The members by name, in tar order, once the list has the format's shape."""
    members: dict[str, tarfile.TarInfo] = {}
    for member in tar:
        if len(members) == MAX_MEMBERS:
            raise BundleError("bad_schema", f"more than {MAX_MEMBERS} members")
        name = member.name
        if name not in (MANIFEST, SIGNATURE) and not WHEEL.fullmatch(name):
            raise BundleError("bad_schema", f"unexpected member {name!r}: only {MANIFEST}, {SIGNATURE} and "
                                            f"wheels/NAME.whl")
        if member.type not in _REGULAR:
            raise BundleError("bad_schema", f"{name}: not a regular file (a link, device or directory)")
        if name in members:  # which copy would win is up to the reader: refuse the ambiguity
            raise BundleError("bad_schema", f"{name} appears twice")
        members[name] = member
    if MANIFEST not in members:
        raise BundleError("bad_schema", f"no {MANIFEST}")
    if SIGNATURE not in members:
        raise BundleError("bad_signature", f"not signed: no {SIGNATURE}")
    if list(members)[:2] != [MANIFEST, SIGNATURE]:
        raise BundleError("bad_schema", f"{MANIFEST} and {SIGNATURE} must be the first members")
    return members


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int, code: str) -> bytes:
    if member.size > limit:
        raise BundleError(code, f"{member.name} is {member.size} bytes, over the limit of {limit}")
    with tar.extractfile(member) as f:
        return f.read()


def _write(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path, entry: dict) -> None:
    """One wheel, hashed on its way to disk (extractall would write first and leave the check for later)."""
    if _data_filter is not None:
        _data_filter(member, str(dest))  # the "data" policy as a second opinion on path and type
    digest, size = hashlib.sha256(), 0
    with tar.extractfile(member) as src, open(dest / member.name, "xb") as out:
        while (chunk := src.read(CHUNK)) and size <= entry["size"]:
            size += len(chunk)
            digest.update(chunk)
            out.write(chunk)
    _check_size(member.name, size, entry["size"])
    if digest.hexdigest() != entry["sha256"]:
        raise BundleError("bad_signature", f"tampered: {member.name}: sha256 {digest.hexdigest()}, "
                                           f"the manifest says {entry['sha256']}")


def _check_size(name: str, size: int, expected: int) -> None:
    if size != expected:
        raise BundleError("bad_signature", f"tampered: {name} is {size} bytes, the manifest says {expected}")


# --- the manifest ----------------------------------------------------------------------------

def _verify(data: bytes, token: bytes, release_keys: dict[str, Ed25519PublicKey]) -> str:
    """The kid of the release key whose detached signature over data verifies; BundleError otherwise."""
    import jwt  # RFC 7797's detached, unencoded payload: PyJWT's, on this cold path (load_release_keys says why)

    try:
        text = token.decode("ascii").strip()
        header = jwt.get_unverified_header(text)
    except (UnicodeDecodeError, jwt.PyJWTError) as e:
        raise BundleError("bad_signature", f"{SIGNATURE} is not a compact JWS: {e}") from None
    kid = header.get("kid")
    if kid not in release_keys:
        raise BundleError("bad_signature", f"not signed by a release key: kid {kid!r} is not in "
                                           "security.release_keys")
    if header.get("typ") != TYP:
        raise BundleError("bad_signature", f"typ {header.get('typ')!r} is not {TYP!r}")
    try:
        jwt.api_jws.decode_complete(text, release_keys[kid], algorithms=[ALGORITHM], detached_payload=data)
    except jwt.PyJWTError as e:
        raise BundleError("bad_signature", f"the signature by {kid} does not verify: {e}") from None
    return kid


def _parse(data: bytes, kid: str) -> Manifest:
    """The signed manifest's schema (signed is not the same as well-formed: a builder may have a bug)."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except ValueError as e:  # UnicodeDecodeError is one
        raise BundleError("bad_schema", f"{MANIFEST} is not UTF-8 JSON: {e}") from None
    _expect(isinstance(raw, dict), "not an object")
    _expect(type(raw.get("format")) is int and raw["format"] == FORMAT,  # JSON's true == 1 in Python
            f"format must be {FORMAT}, not {raw.get('format')!r}")
    _expect(raw.get("name") == NAME, f"name must be {NAME!r}")
    version = raw.get("version")
    _expect(isinstance(version, str) and _canonical(version),
            f"version {version!r} is not a canonical PEP 440 version")  # it names releases/<version> on the box
    _expect(isinstance(raw.get("python"), str) and PYTHON.fullmatch(raw["python"]), "python must be MAJOR.MINOR")
    _expect(isinstance(raw.get("machine"), str) and MACHINE.fullmatch(raw["machine"]),
            "machine must be a platform.machine() name")
    # Exactly this, as it goes to pip on the box: no options, no other project.
    _expect(raw.get("requirement") == f"{NAME}=={version}", f"requirement must be {NAME}=={version}")
    files = raw.get("files")
    _expect(isinstance(files, dict) and 0 < len(files) <= MAX_MEMBERS - 2, "files must list the wheels")
    for name, entry in files.items():
        _expect(bool(WHEEL.fullmatch(name)), f"files: {name!r} is not wheels/NAME.whl")
        _expect(isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
                and bool(SHA256.fullmatch(entry["sha256"])) and type(entry.get("size")) is int
                and entry["size"] >= 0, f"files.{name}: needs sha256 (64 lowercase hex) and size (bytes)")
    return Manifest(version=version, python=raw["python"], machine=raw["machine"], requirement=raw["requirement"],
                    files=files, kid=kid, raw=raw)


def _canonical(version: str) -> bool:
    try:
        return str(Version(version)) == version
    except InvalidVersion:
        return False


def _expect(ok: object, what: str) -> None:
    if not ok:
        raise BundleError("bad_schema", f"{MANIFEST}: {what}")
