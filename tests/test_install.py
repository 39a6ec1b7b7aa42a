"""scripts/install.sh as a test install, and the systemd unit as systemd-analyze and the daemon's contract see it."""

from __future__ import annotations

import os
import shutil
import site
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALL = ROOT / "scripts/install.sh"
UNIT = ROOT / "systemd/loa-agent.service"
TEST_OPTIONS = ("--no-systemd", "--no-apt", "--system-site-packages")
# What the console scripts need at import time; a test install takes them from the system's site-packages.
RUNTIME_IMPORTS = "import paho.mqtt.client, jwt, yaml"


def clean_env() -> dict[str, str]:
    """No PYTHONPATH: the installed commands must import the installed package, not the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHON"] = sys.executable  # the venv is made by the interpreter that runs the tests
    return env


def run_install(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True, timeout=600,
                          env=clean_env(), cwd="/")


def lend_test_site_packages(venv: Path) -> None:
    """A --system-site-packages venv sees the *base* interpreter's packages. When pytest runs from a venv that
    alone holds the runtime dependencies, let the test install see them too (a real install pip-installs them)."""
    probe = subprocess.run([str(venv / "bin/python"), "-c", RUNTIME_IMPORTS], capture_output=True, env=clean_env())
    if probe.returncode != 0:
        site_dir = next((venv / "lib").glob("python3*/site-packages"))
        (site_dir / "_loa_test_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")


@dataclass
class Install:
    prefix: Path
    first_run: subprocess.CompletedProcess
    config_as_installed: str

    @property
    def bin(self) -> Path:
        return self.prefix / "opt/loa-agent/bin"

    @property
    def config(self) -> Path:
        return self.prefix / "etc/loa-agent/agent.yaml"

    @property
    def unit(self) -> Path:
        return self.prefix / "etc/systemd/system/loa-agent.service"

    def run(self, exe: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bin / exe), *args], capture_output=True, text=True, timeout=60,
                              env=clean_env(), cwd=self.prefix)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Install:
    """One test install (venv + pip install, a few seconds) shared by the module."""
    prefix = tmp_path_factory.mktemp("install")
    out = run_install("--prefix", str(prefix), *TEST_OPTIONS)
    assert out.returncode == 0, out.stdout + out.stderr
    lend_test_site_packages(prefix / "opt/loa-agent")
    return Install(prefix, out, (prefix / "etc/loa-agent/agent.yaml").read_text())


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file as (key, value) lists in order: keys may repeat (Environment=)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
        else:
            assert current is not None and "=" in line, f"not a unit line: {raw!r}"
            key, value = line.split("=", 1)
            current.append((key.strip(), value.strip()))
    return sections


def values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [v for k, v in section if k == key]


# --- the script's own interface (no install needed) ---


def test_help_lists_every_option():
    out = run_install("--help")
    assert out.returncode == 0, out.stderr
    for option in ("--prefix", "--no-systemd", "--no-apt", "--system-site-packages", "--help"):
        assert option in out.stdout, option


def test_unknown_option_and_unusable_prefix_are_refused_before_anything_is_done(tmp_path):
    out = run_install("--prefix", str(tmp_path / "p"), "--frobnicate")
    assert out.returncode == 2 and "unknown option --frobnicate" in out.stderr
    out = run_install("--prefix", str(tmp_path / "with space"), *TEST_OPTIONS)
    assert out.returncode == 2 and "spaces" in out.stderr
    assert list(tmp_path.iterdir()) == []


# --- (b) a test install ---


def test_install_says_what_it_does_one_line_per_step(installed):
    lines = installed.first_run.stdout.splitlines()
    assert lines and all(line.startswith("loa-agent install: ") for line in lines), lines
    text = installed.first_run.stdout
    for what in ("venv ", "pip install", "config ", "unit ", "done"):
        assert what in text, what
    # --no-apt --no-systemd: no apt, no user, no systemctl.
    assert not [line for line in lines if any(w in line for w in ("install: apt", "system user", "systemctl"))]


def test_installed_commands_run_from_the_install(installed):
    for exe in ("loa-agent", "loa"):
        out = installed.run(exe, "--help")
        assert out.returncode == 0, (exe, out.stdout, out.stderr)
        assert "--config" in out.stdout, exe
    # The package comes from the venv, not from the checkout (a test could pass by importing /work/main).
    out = installed.run("python", "-c", "import agent, drivers; print(agent.__file__, drivers.__file__)")
    assert out.returncode == 0, out.stderr
    for path in out.stdout.split():
        assert Path(path).is_relative_to(installed.prefix / "opt/loa-agent"), path


def test_box_does_not_carry_the_provincial_console(installed):
    # The console signs and publishes for the whole fleet: server-side tooling (console/), never on a box.
    assert not (installed.bin / "loa-console").exists()
    out = installed.run("python", "-c", "import importlib.util as u; "
                                        "print(u.find_spec('loa_console'), u.find_spec('agent.console'))")
    assert out.returncode == 0 and out.stdout.split() == ["None", "None"], (out.stdout, out.stderr)


def test_config_is_the_example_and_not_world_readable(installed):
    assert installed.config_as_installed == (ROOT / "config/agent.example.yaml").read_text()
    assert stat.S_IMODE(installed.config.stat().st_mode) == 0o640
    assert stat.S_IMODE(installed.config.parent.stat().st_mode) == 0o750


def test_second_run_succeeds_and_keeps_the_operators_config(installed):
    edited = installed.config_as_installed + "\n# edited by the technician\n"
    installed.config.write_text(edited)
    out = run_install("--prefix", str(installed.prefix), *TEST_OPTIONS)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "kept the existing agent.yaml" in out.stdout
    assert installed.config.read_text() == edited
    assert installed.run("loa-agent", "--help").returncode == 0


# --- (a) systemd-analyze verify on the rendered unit ---


def test_rendered_unit_differs_from_the_repos_only_by_the_prefix(installed):
    venv, etc = installed.prefix / "opt/loa-agent", installed.prefix / "etc/loa-agent"
    expected = UNIT.read_text().replace("/opt/loa-agent/", f"{venv}/").replace("/etc/loa-agent/", f"{etc}/")
    assert installed.unit.read_text() == expected
    exec_start = values(parse_unit(expected)["Service"], "ExecStart")
    assert exec_start == [f"{venv}/bin/loa-agent --config {etc}/agent.yaml"]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_unit_passes_systemd_analyze_verify(installed):
    # ExecStart= points into the test install, so verify can check that the binary exists and is executable.
    out = subprocess.run(["systemd-analyze", "verify", str(installed.unit)], capture_output=True, text=True,
                         timeout=120)
    # verify also loads the units ours names (network-online.target, ...); only lines about ours count.
    ours = [line for line in (out.stdout + out.stderr).splitlines() if "loa-agent" in line]
    assert out.returncode == 0 and not ours, out.stdout + out.stderr


# --- (c) the unit's contract with the daemon and the hardware ---


def test_unit_contract():
    unit = parse_unit(UNIT.read_text())
    assert set(unit) == {"Unit", "Service", "Install"}
    svc = unit["Service"]
    expect = {
        "Type": "notify", "NotifyAccess": "main", "Restart": "always", "User": "loa", "Group": "loa",
        "ExecStart": "/opt/loa-agent/bin/loa-agent --config /etc/loa-agent/agent.yaml",
        "StateDirectory": "loa-agent", "RuntimeDirectory": "loa-agent", "RuntimeDirectoryMode": "0750",
        "ConfigurationDirectory": "loa-agent", "UMask": "0027",
    }
    for key, value in expect.items():
        assert values(svc, key) == [value], key
    (watchdog,) = values(svc, "WatchdogSec")
    assert int(watchdog.removesuffix("s")) > 0
    assert values(svc, "RestartSec")
    (groups,) = values(svc, "SupplementaryGroups")
    assert {"audio", "gpio"} <= set(groups.split())
    # Restart limits live in [Unit]: 0 means systemd never gives up on a public-safety device.
    assert values(unit["Unit"], "StartLimitIntervalSec") == ["0"]
    assert "network-online.target" in " ".join(values(unit["Unit"], "Wants"))
    after = " ".join(values(unit["Unit"], "After")).split()
    assert {"network-online.target", "time-sync.target"} <= set(after)
    assert values(unit["Install"], "WantedBy") == ["multi-user.target"]


def test_unit_hardening_keeps_alsa_gpio_and_the_clock():
    text = UNIT.read_text()
    svc = parse_unit(text)["Service"]
    # PrivateDevices hides /dev/snd and /dev/gpiochip*; MemoryDenyWriteExecute breaks libVLC and cffi;
    # ProtectClock blocks the adjtimex() the health check reads.
    for bad in ("PrivateDevices=yes", "MemoryDenyWriteExecute=yes", "ProtectClock=yes"):
        assert bad not in text, bad
    for key in ("PrivateDevices", "MemoryDenyWriteExecute", "ProtectClock"):
        assert not set(values(svc, key)) & {"yes", "true", "on", "1"}, key
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "ProtectKernelModules", "RestrictSUIDSGID"):
        assert values(svc, key) == ["yes"], key
    assert values(svc, "ProtectSystem") == ["strict"]
    (families,) = values(svc, "RestrictAddressFamilies")
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= set(families.split())
