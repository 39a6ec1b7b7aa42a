"""Real release bundles of this very checkout (pip wheel, every dependency), built by `loa-console bundle` and
checked by the box's verifier. The rules one by one, on tiny bundles: tests/unit/test_bundle_rules.py."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from support.bundles import ROOT, Bundles, flip_byte, member, read_members, write_members

from agent.bundle import BundleError, check_compatible, extract, load_release_keys, open_bundle
from loa_console import cli

# The distributions setup.py's install_requires name on this Python, as wheel file names spell them.
DEPENDENCIES = {"paho_mqtt", "pyjwt", "cryptography", "pyyaml", "pyaudio", "python_vlc", "pydub", "tzdata",
                "requests", "defusedxml", "python_dateutil", "pillow"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def good(make_bundle: Bundles, release_keys: dict[str, Path]) -> tuple[Path, str]:
    return make_bundle("0.2.0", release_keys["rel-1"], "rel-1")


@pytest.fixture
def trusted(release_keys: dict[str, Path]):
    return load_release_keys({kid: p.with_suffix(".pub") for kid, p in release_keys.items()})


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused(path: Path, trusted, code: str) -> BundleError:
    with pytest.raises(BundleError) as e:
        open_bundle(path, trusted)
    assert e.value.code == code, e.value
    return e.value


def test_a_real_bundle_opens_and_extracts_with_its_wheels_intact(good, trusted, tmp_path: Path) -> None:
    path, digest = good
    assert path.name == "loa-agent-0.2.0.tar" and digest == sha256(path)
    m = open_bundle(path, trusted)
    assert (m.version, m.requirement, m.kid) == ("0.2.0", "loa-agent==0.2.0", "rel-1")
    check_compatible(m)
    wheels = extract(path, m, tmp_path / "x")
    for name, entry in m.files.items():
        assert sha256(wheels.parent / name) == entry["sha256"]
    dists = {p.name.split("-")[0].lower() for p in wheels.iterdir()}
    assert DEPENDENCIES | {"loa_agent"} <= dists
    with zipfile.ZipFile(wheels / "loa_agent-0.2.0-py3-none-any.whl") as whl:
        assert '__version__ = "0.2.0"' in whl.read("agent/__init__.py").decode()
        assert "agent/bundle.py" in whl.namelist() and not any(n.startswith("loa_console/") for n in whl.namelist())


def test_the_tar_is_in_the_formats_order_with_no_owner_or_time(good) -> None:
    with tarfile.open(good[0]) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names[:2] == ["manifest.json", "manifest.sig"] and names[2:] == sorted(names[2:])
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {(0, 0, 0, "", "", 0o644)}


def test_the_wheels_alone_install_the_release(good, trusted, tmp_path: Path) -> None:
    """No registry on the box: pip resolves loa-agent==V and every dependency from the bundle's wheels."""
    path, _ = good
    m = open_bundle(path, trusted)
    wheels = extract(path, m, tmp_path / "x")
    report = tmp_path / "report.json"
    subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-index",
                    "--find-links", str(wheels), "--quiet", "--report", str(report), m.requirement], check=True)
    installed = {i["metadata"]["name"].lower().replace("-", "_") for i in json.loads(report.read_text())["install"]}
    assert installed == {Path(n).name.split("-")[0].lower() for n in m.files}  # each wheel used, none missing


def test_a_bundle_signed_by_a_command_key_is_bad_signature(make_bundle: Bundles, keys: dict[str, Path],
                                                           trusted) -> None:
    path, _ = make_bundle("0.2.0", keys["prov-1"], "prov-1")
    assert "prov-1" in str(refused(path, trusted, "bad_signature"))


def test_a_real_bundle_without_its_signature_is_bad_signature(good, trusted, tmp_path: Path) -> None:
    unsigned = [m for m in read_members(good[0]) if m[0].name != "manifest.sig"]
    refused(write_members(tmp_path / "unsigned.tar", unsigned), trusted, "bad_signature")


def test_a_tampered_wheel_is_bad_signature_at_extract(good, trusted, tmp_path: Path) -> None:
    tampered = tmp_path / "tampered.tar"
    tampered.write_bytes(good[0].read_bytes())
    flip_byte(tampered, "wheels/loa_agent-0.2.0-py3-none-any.whl")
    m = open_bundle(tampered, trusted)  # the manifest still verifies: only a wheel changed
    with pytest.raises(BundleError, match="tampered: wheels/loa_agent-0.2.0") as e:
        extract(tampered, m, tmp_path / "x")
    assert e.value.code == "bad_signature"
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("extra", [
    member("wheels/evil-1.0-py3-none-any.whl", b"print('pwned')"),
    member("wheels/evil-1.0-py3-none-any.whl", type=tarfile.SYMTYPE, linkname="/etc/passwd"),
    member("../evil.whl", b"x"),
], ids=["extra member", "symlink", "dot-dot"])
def test_a_real_bundle_with_something_added_is_rejected(good, trusted, tmp_path: Path, extra) -> None:
    refused(write_members(tmp_path / "added.tar", [*read_members(good[0]), extra]), trusted, "bad_schema")


def test_the_cli_builds_prints_and_labels_a_bundle_for_another_machine(make_bundle: Bundles, release_keys, trusted,
                                                                       tmp_path: Path, capsys) -> None:
    argv = ["bundle", "--key", str(release_keys["rel-2"]), "--source", str(ROOT), "--version", "0.3.0",
            "--wheels", str(make_bundle.wheels), "--out", str(tmp_path / "dist"), "--machine", "armv7l"]
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    fields = dict(re.findall(r"^(\w+): +(.*)$", out, re.M))
    path = Path(fields["bundle"])
    assert path == tmp_path / "dist" / "loa-agent-0.3.0.tar"  # --out: a directory, made
    assert fields["version"].startswith("0.3.0 (Python 3.11, armv7l;") and "signed by rel-2" in fields["version"]
    assert fields["size"] == f"{path.stat().st_size} bytes" and fields["sha256"] == sha256(path)
    assert "--machine armv7l" in err
    with pytest.raises(BundleError, match="armv7l") as e:
        check_compatible(open_bundle(path, trusted))
    assert e.value.code == "not_for_me"


@pytest.mark.parametrize(("args", "message"), [
    (["--key", "missing.key"], "no such file"),
    (["--key", "{key}", "--source", "{tmp}"], "not a loa-agent checkout"),
    (["--key", "{key}", "--kid", "../x"], "bad key id"),
    (["--key", "{key}", "--version", '1"; import os'], "bad version"),
], ids=["no key", "not a checkout", "bad kid", "bad version"])
def test_the_cli_refuses_bad_input_before_building(release_keys, tmp_path: Path, capsys, args, message) -> None:
    argv = [a.format(key=release_keys["rel-1"], tmp=tmp_path) for a in args]
    assert cli.main(["bundle", *argv, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.glob("*.tar"))
