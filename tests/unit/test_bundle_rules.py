"""The bundle verifier (agent/bundle.py) on tiny crafted bundles: each way a bundle is refused, and its code.

Fake wheels, a real manifest and a real signature by the console's pack(); no pip here (tests/test_bundle.py
builds real bundles of this checkout).
"""

from __future__ import annotations

import gzip
import platform
import sys
import tarfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from support.bundles import flip_byte, member, read_members, resign, tiny_bundle, write_members

from agent.bundle import (
    MAX_MANIFEST,
    MAX_MEMBERS,
    BundleError,
    Manifest,
    check_compatible,
    compare_versions,
    extract,
    load_release_keys,
    open_bundle,
)
from loa_console.bundle import sign_manifest
from loa_console.keys import load_private_key

WHEEL = "wheels/requests-1.0-py3-none-any.whl"


@pytest.fixture
def trusted(release_keys: dict[str, Path]):
    """What a box with security.release_keys {rel-1: ...} trusts."""
    return load_release_keys({"rel-1": release_keys["rel-1"].with_suffix(".pub")})


@pytest.fixture
def tiny(tmp_path: Path, release_keys: dict[str, Path]) -> Path:
    return tiny_bundle(tmp_path, release_keys["rel-1"], "rel-1", requests=b"requests' bytes " * 1000)


def refused(path: Path, trusted, code: str, match: str | None = None) -> BundleError:
    with pytest.raises(BundleError, match=match) as e:
        open_bundle(path, trusted)
    assert e.value.code == code
    return e.value


def variant(tiny: Path, change: Callable[[list], list]) -> Path:
    return write_members(tiny.with_name("variant.tar"), change(read_members(tiny)))


def test_a_good_bundle_opens_and_extracts(tiny: Path, trusted, tmp_path: Path) -> None:
    m = open_bundle(tiny, trusted)
    assert (m.version, m.requirement, m.kid) == ("0.2.0", "loa-agent==0.2.0", "rel-1")
    assert sorted(m.files) == ["wheels/loa_agent-0.2.0-py3-none-any.whl", WHEEL]
    wheels = extract(tiny, m, tmp_path / "x")
    assert wheels == tmp_path / "x" / "wheels"
    assert (wheels / "requests-1.0-py3-none-any.whl").read_bytes() == b"requests' bytes " * 1000
    assert sorted(p.name for p in wheels.iterdir()) == sorted(Path(n).name for n in m.files)


def test_extract_leaves_no_stale_wheel_for_pip_to_find(tiny: Path, trusted, tmp_path: Path) -> None:
    stale = tmp_path / "x" / "wheels" / "evil-9.9-py3-none-any.whl"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left by a killed attempt")
    extract(tiny, open_bundle(tiny, trusted), tmp_path / "x")
    assert not stale.exists()


# --- the signature ---------------------------------------------------------------------------

def test_a_key_the_box_does_not_trust_is_bad_signature(tmp_path: Path, release_keys, trusted) -> None:
    other = tiny_bundle(tmp_path, release_keys["rel-2"], "rel-2")
    refused(other, trusted, "bad_signature", "kid 'rel-2' is not in security.release_keys")


def test_a_command_key_claiming_a_release_kid_is_bad_signature(tmp_path: Path, keys, trusted) -> None:
    forged = tiny_bundle(tmp_path, keys["prov-1"], "rel-1")
    refused(forged, trusted, "bad_signature", "does not verify")


def test_no_signature_is_bad_signature(tiny: Path, trusted) -> None:
    unsigned = variant(tiny, lambda ms: [m for m in ms if m[0].name != "manifest.sig"])
    refused(unsigned, trusted, "bad_signature", "not signed")


@pytest.mark.parametrize("token", [b"", b"garbage", b"\xff\xfe", b"a.b.c", b"x" * 5000],
                         ids=["empty", "garbage", "binary", "not-base64", "oversized"])
def test_a_malformed_signature_is_bad_signature(tiny: Path, trusted, token: bytes) -> None:
    bad = variant(tiny, lambda ms: [member(i.name, token) if i.name == "manifest.sig" else (i, d) for i, d in ms])
    refused(bad, trusted, "bad_signature")


def test_a_manifest_changed_after_signing_is_bad_signature(tiny: Path, trusted) -> None:
    def edit(ms: list) -> list:
        return [member(i.name, d.replace(b'"0.2.0"', b'"0.2.1"')) if i.name == "manifest.json" else (i, d)
                for i, d in ms]
    refused(variant(tiny, edit), trusted, "bad_signature", "does not verify")


@pytest.mark.parametrize("how", ["typ", "attached"])
def test_a_token_that_is_not_a_release_signature_is_bad_signature(tiny: Path, trusted, release_keys, how) -> None:
    """Signed by the right key, but a plain JWT (typ) or a JWS carrying the manifest itself (attached)."""
    key = load_private_key(release_keys["rel-1"])

    def sign(ms: list) -> list:
        data = dict((i.name, d) for i, d in ms)["manifest.json"]
        headers = {"kid": "rel-1", "typ": "JWT" if how == "typ" else "loa-release+jws"}
        token = jwt.api_jws.encode(data, key, algorithm="EdDSA", headers=headers, is_payload_detached=how == "typ")
        return [member(i.name, token.encode()) if i.name == "manifest.sig" else (i, d) for i, d in ms]
    refused(variant(tiny, sign), trusted, "bad_signature")


# --- the tar ---------------------------------------------------------------------------------

EVIL = {
    "extra member": lambda ms: ms + [member("wheels/evil-1.0-py3-none-any.whl", b"x")],
    "symlink": lambda ms: ms + [member("wheels/evil-1.0-py3-none-any.whl", type=tarfile.SYMTYPE, linkname="/etc")],
    "hard link": lambda ms: ms + [member(WHEEL.replace("requests", "evil"), type=tarfile.LNKTYPE, linkname=WHEEL)],
    "dot-dot": lambda ms: ms + [member("../evil.whl", b"x")],
    "dot-dot inside": lambda ms: ms + [member("wheels/../../evil.whl", b"x")],
    "absolute": lambda ms: ms + [member("/tmp/evil.whl", b"x")],
    "device": lambda ms: ms + [member("wheels/dev.whl", type=tarfile.CHRTYPE, devmajor=1, devminor=3)],
    "fifo": lambda ms: ms + [member("wheels/fifo.whl", type=tarfile.FIFOTYPE)],
    "directory": lambda ms: ms + [member("wheels/dir.whl", type=tarfile.DIRTYPE)],
    "other file": lambda ms: ms + [member("setup.py", b"import os")],
    "duplicate": lambda ms: ms + [member(WHEEL, b"second copy")],
    "wheel first": lambda ms: ms[2:] + ms[:2],
    "missing wheel": lambda ms: [m for m in ms if m[0].name != WHEEL],
    "no manifest": lambda ms: [m for m in ms if m[0].name != "manifest.json"],
    "too many members": lambda ms: ms + [member(f"wheels/x{i}.whl") for i in range(MAX_MEMBERS)],
    "huge manifest": lambda ms: [member("manifest.json", b" " * (MAX_MANIFEST + 1))] + ms[1:],
}


@pytest.mark.parametrize("change", EVIL.values(), ids=EVIL.keys())
def test_a_tar_of_another_shape_is_bad_schema(tiny: Path, trusted, change) -> None:
    refused(variant(tiny, change), trusted, "bad_schema")


def test_not_a_tar_or_a_compressed_one_is_bad_schema(tiny: Path, trusted, tmp_path: Path) -> None:
    (tmp_path / "junk.tar").write_bytes(b"\x00garbage" * 1000)
    refused(tmp_path / "junk.tar", trusted, "bad_schema")
    (tmp_path / "gz.tar").write_bytes(gzip.compress(tiny.read_bytes()))
    refused(tmp_path / "gz.tar", trusted, "bad_schema")


def test_a_changed_wheel_is_caught_at_open_by_size_and_at_extract_by_hash(tiny: Path, trusted,
                                                                         tmp_path: Path) -> None:
    longer = variant(tiny, lambda ms: [member(i.name, d + b"!") if i.name == WHEEL else (i, d) for i, d in ms])
    refused(longer, trusted, "bad_signature", "tampered: wheels/requests")
    flip_byte(tiny, WHEEL)
    m = open_bundle(tiny, trusted)  # headers and manifest intact: only the wheel's bytes changed
    with pytest.raises(BundleError, match=f"tampered: {WHEEL}: sha256") as e:
        extract(tiny, m, tmp_path / "x")
    assert e.value.code == "bad_signature"
    assert not (tmp_path / "x").exists()


# --- the manifest ----------------------------------------------------------------------------

def _set(**fields):
    return lambda doc: doc.update(fields)


def _drop(name: str):
    return lambda doc: doc.pop(name)


def _file(**fields):
    return lambda doc: doc["files"][WHEEL].update(fields)


BAD_MANIFESTS = {
    "format 2": _set(format=2),
    "format true": _set(format=True),
    "no format": _drop("format"),
    "another name": _set(name="loa-console"),
    "version not PEP 440": _set(version="banana", requirement="loa-agent==banana"),
    "version not canonical": _set(version="0.2.0-RC1", requirement="loa-agent==0.2.0-RC1"),
    "version a number": _set(version=2),
    "python": _set(python="3"),
    "machine": _set(machine="x86 64"),
    "no machine": _drop("machine"),
    "requirement with an option": _set(requirement="loa-agent==0.2.0 --index-url=http://evil"),
    "requirement of another version": _set(requirement="loa-agent==0.1.0"),
    "no files": _set(files={}),
    "a file outside wheels/": lambda doc: doc["files"].update({"../x.whl": {"sha256": "0" * 64, "size": 1}}),
    "sha256 upper case": _file(sha256="A" * 64),
    "sha256 short": _file(sha256="0" * 63),
    "size negative": _file(size=-1),
    "size a string": _file(size="16000"),
    "size true": _file(size=True),
}


@pytest.mark.parametrize("change", BAD_MANIFESTS.values(), ids=BAD_MANIFESTS.keys())
def test_a_signed_manifest_of_the_wrong_shape_is_bad_schema(tiny: Path, trusted, release_keys, change) -> None:
    bad = variant(tiny, lambda ms: resign(ms, release_keys["rel-1"], "rel-1", change))
    refused(bad, trusted, "bad_schema", "manifest.json: ")


@pytest.mark.parametrize(("data", "message"), [(b"\xff not json", "not UTF-8 JSON"), (b"[1, 2]", "not an object")])
def test_a_signed_manifest_that_is_not_a_json_object_is_bad_schema(tiny: Path, trusted, release_keys, data: bytes,
                                                                   message: str) -> None:
    key = load_private_key(release_keys["rel-1"])
    signed = {"manifest.json": data, "manifest.sig": sign_manifest(data, key, "rel-1").encode()}
    bad = variant(tiny, lambda ms: [member(i.name, signed.get(i.name, d)) for i, d in ms])
    refused(bad, trusted, "bad_schema", message)


# --- compatibility, versions, keys -----------------------------------------------------------

HERE = Manifest(version="0.2.0", python=f"{sys.version_info[0]}.{sys.version_info[1]}", machine=platform.machine(),
                requirement="loa-agent==0.2.0", files={}, kid="rel-1", raw={})


def test_a_bundle_for_this_python_and_machine_is_compatible() -> None:
    check_compatible(HERE)


@pytest.mark.parametrize("other", [{"python": "3.9"}, {"python": "3.13"},
                                   {"machine": "aarch64" if platform.machine() != "aarch64" else "x86_64"}])
def test_a_bundle_for_another_python_or_machine_is_not_for_me(other: dict) -> None:
    with pytest.raises(BundleError, match="this box runs") as e:
        check_compatible(replace(HERE, **other))
    assert e.value.code == "not_for_me"


@pytest.mark.parametrize(("a", "b", "expected"), [
    ("0.10.0", "0.9.1", 1), ("1.0.0rc1", "1.0.0", -1), ("1.0.0", "1.0", 0), ("0.2.0", "0.2.0.post1", -1),
    ("1.0.0.dev1", "1.0.0a1", -1), ("2.0.0", "10.0.0", -1), ("0.2.0", "0.2.0", 0)])
def test_compare_versions_is_pep_440(a: str, b: str, expected: int) -> None:
    assert compare_versions(a, b) == expected
    assert compare_versions(b, a) == -expected


def test_compare_versions_refuses_a_non_version() -> None:
    with pytest.raises(ValueError):
        compare_versions("banana", "1.0")


def test_release_keys_must_be_readable_ed25519_public_keys(tmp_path: Path, release_keys) -> None:
    assert set(load_release_keys({k: p.with_suffix(".pub") for k, p in release_keys.items()})) == {"rel-1", "rel-2"}
    with pytest.raises(OSError):
        load_release_keys({"rel-9": tmp_path / "missing.pub"})
    (tmp_path / "junk.pub").write_text("not a key")
    with pytest.raises(ValueError):
        load_release_keys({"junk": tmp_path / "junk.pub"})
    ec_pub = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "ec.pub").write_bytes(ec_pub)
    with pytest.raises(ValueError, match="not an Ed25519 public key"):
        load_release_keys({"ec": tmp_path / "ec.pub"})


def test_bundle_error_carries_its_code() -> None:
    e = BundleError("bad_schema", "manifest.json: format must be 1")
    assert (e.code, e.message, str(e)) == ("bad_schema", "manifest.json: format must be 1",
                                           "manifest.json: format must be 1")
