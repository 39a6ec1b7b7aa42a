"""scripts/install.sh as a test install, and the systemd unit checked by systemd-analyze."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from agentproc import ROOT

UNIT = ROOT / "systemd/loa-agent.service"


def install(prefix: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "scripts/install.sh"), "--prefix", str(prefix), "--no-systemd",
                           "--no-apt", "--system-site-packages"], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    prefix = tmp_path_factory.mktemp("install")
    out = install(prefix)
    assert out.returncode == 0, out.stdout + out.stderr
    return prefix


def test_test_install_has_working_commands_and_a_private_config(installed):
    venv = installed / "opt/loa-agent/bin"
    for exe in ("loa-agent", "loa", "loa-console"):
        out = subprocess.run([str(venv / exe), "--help"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, (exe, out.stderr)
    cfg = installed / "etc/loa-agent/agent.yaml"
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o640
    assert cfg.read_text() == (ROOT / "config/agent.example.yaml").read_text()


def test_install_is_idempotent_and_keeps_the_operators_config(installed):
    cfg = installed / "etc/loa-agent/agent.yaml"
    cfg.write_text(cfg.read_text().replace("GL-0001", "GL-4242"))
    out = install(installed)
    assert out.returncode == 0, out.stderr
    assert "kept the existing agent.yaml" in out.stdout
    assert "GL-4242" in cfg.read_text()


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_unit_passes_systemd_analyze_verify(installed):
    unit = installed / "etc/systemd/system/loa-agent.service"
    assert str(installed / "opt/loa-agent/bin/loa-agent") in unit.read_text()
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=120)
    ours = [line for line in (out.stdout + out.stderr).splitlines() if "loa-agent" in line]
    assert out.returncode == 0 and not ours, out.stdout + out.stderr


def test_unit_contract():
    text = UNIT.read_text()
    for line in ("Type=notify", "NotifyAccess=main", "WatchdogSec=", "Restart=always", "User=loa",
                 "StateDirectory=loa-agent", "RuntimeDirectory=loa-agent", "ConfigurationDirectory=loa-agent",
                 "ExecStart=/opt/loa-agent/bin/loa-agent --config /etc/loa-agent/agent.yaml"):
        assert line in text, line
    supplementary = next(x for x in text.splitlines() if x.startswith("SupplementaryGroups="))
    assert {"audio", "gpio"} <= set(supplementary.split("=", 1)[1].split())
    # Hardening that would break ALSA or GPIO, or libVLC/cffi, must not be there.
    for bad in ("PrivateDevices=yes", "MemoryDenyWriteExecute=yes", "ProtectClock=yes"):
        assert bad not in text, bad
