"""Release bundles for tests: real ones of this very checkout, tiny ones, and tampered variants of either.

Fixtures (tests/conftest.py imports them, so every test module can ask for them):

    release_keys   session: {"rel-1": private key path, "rel-2": ...}; each public key is the .pub beside it.
                   They are not the command keys of the `keys` fixture (a command key must not sign a release).
    make_bundle    session: make_bundle(version, key, kid, *, source=None) -> (path, sha256): a real bundle made
                   by the console's builder (console/loa_console/bundle.py: pip wheel of a copy of `source`,
                   default this checkout, stamped with `version`), signed by the private key file `key` as `kid`.
                   The dependency wheels are built once per session (by a first bundle) and reused (--wheels;
                   the directory is make_bundle.wheels): a bundle then costs a build of the project's wheel.
                   Each call writes to a directory of its own; the file is loa-agent-<version>.tar.

Crafting, for the refusals (no pip):

    tiny_bundle(dest, key, kid, version="0.2.0", **wheels) -> path   fake wheels (bytes), a real manifest and
                                                                     signature by the builder's pack()
    read_members(path) -> [(TarInfo, bytes)]; write_members(path, members) -> path
    member(name, data=b"", **attrs) -> (TarInfo, bytes)              e.g. type=tarfile.SYMTYPE, linkname="x"
    resign(members, key, kid, change) -> members                     change(manifest dict) edits it in place; the
                                                                     manifest is signed again by key
    flip_byte(path, name)                                            one byte inside member `name`, in place
"""

from __future__ import annotations

import io
import itertools
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent import bundle
from loa_console.bundle import build_bundle, pack, sign_manifest
from loa_console.keys import generate_keypair, load_private_key

ROOT = Path(__file__).resolve().parents[2]
Member = tuple[tarfile.TarInfo, bytes]


@pytest.fixture(scope="session")
def release_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("release-keys")
    return {kid: generate_keypair(d, kid)[0] for kid in ("rel-1", "rel-2")}


class Bundles:
    """make_bundle: bundles of a source tree (default this checkout) built on the dependency wheels in `wheels`."""

    def __init__(self, directory: Path, wheels: Path):
        self.directory = directory
        self.wheels = wheels
        self._count = itertools.count(1)

    def __call__(self, version: str, key: Path, kid: str, *, source: Path | None = None) -> tuple[Path, str]:
        """(path, sha256) of a new loa-agent-<version>.tar, signed by the private key in `key` as `kid`."""
        out = self.directory / str(next(self._count))
        out.mkdir()
        return build_bundle(source or ROOT, out, key, kid, version=version, wheels=self.wheels)

    @classmethod
    def with_dependencies(cls, tmp: Path) -> Bundles:
        """A first build resolves the dependencies through pip's index (on a copy: the checkout gets no build/);
        its wheels, all but ours, serve every later build."""
        key, public = generate_keypair(tmp, "deps")
        first, _ = build_bundle(ROOT, tmp, key, "deps")
        deps = bundle.extract(first, bundle.open_bundle(first, bundle.load_release_keys({"deps": public})),
                              tmp / "deps")
        for ours in deps.glob("loa_agent-*.whl"):
            ours.unlink()
        return cls(tmp, deps)


@pytest.fixture(scope="session")
def make_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundles:
    return Bundles.with_dependencies(tmp_path_factory.mktemp("bundles"))


def tiny_bundle(dest: Path, key: Path, kid: str, version: str = "0.2.0", **wheels: bytes) -> Path:
    """A bundle of fake wheels (name=bytes, e.g. requests=b"..."), plus loa_agent's, with a real signature."""
    d = dest / f"wheels-{version}"
    d.mkdir(parents=True)
    (d / f"loa_agent-{version}-py3-none-any.whl").write_bytes(b"not really a wheel " * 100)
    for name, data in wheels.items():
        (d / f"{name}-1.0-py3-none-any.whl").write_bytes(data)
    return pack(d, dest / f"loa-agent-{version}.tar", load_private_key(key), kid)


def read_members(path: Path) -> list[Member]:
    with tarfile.open(path) as tar:
        return [(m, tar.extractfile(m).read() if m.isfile() else b"") for m in tar]


def write_members(path: Path, members: list[Member]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def member(name: str, data: bytes = b"", **attrs: Any) -> Member:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for attr, value in attrs.items():
        setattr(info, attr, value)
    return info, data


def resign(members: list[Member], key: Path, kid: str, change: Callable[[dict], None] = lambda m: None) -> list[Member]:
    """The members with the manifest changed by `change` and signed again by key (as kid)."""
    by_name = {info.name: data for info, data in members}
    doc = json.loads(by_name[bundle.MANIFEST])
    change(doc)
    data = json.dumps(doc, indent=2).encode()
    replaced = {bundle.MANIFEST: data, bundle.SIGNATURE: sign_manifest(data, load_private_key(key), kid).encode()}
    return [member(info.name, replaced[info.name]) if info.name in replaced else (info, blob)
            for info, blob in members]


def flip_byte(path: Path, name: str) -> None:
    with tarfile.open(path) as tar:
        info = tar.getmember(name)
    with path.open("r+b") as f:
        f.seek(info.offset_data + info.size // 2)
        byte = f.read(1)
        f.seek(-1, io.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
