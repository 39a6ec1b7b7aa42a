"""scripts/install.sh as a test install (the release layout, loa-boot, migration of a single-venv install,
re-runs and upgrades), and the systemd unit as systemd-analyze and the daemon's contract see it."""

from __future__ import annotations

import json
import shutil
import site
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.layout import BASE_PYTHON, checkout_copy, clean_env

from agent import __version__
from agent.releases import Layout

ROOT = Path(__file__).resolve().parent.parent
INSTALL = ROOT / "scripts/install.sh"
UNIT = ROOT / "systemd/loa-agent.service"
TEST_OPTIONS = ("--no-systemd", "--no-apt", "--system-site-packages")
# What the console scripts need at import time; a test install takes them from the system's site-packages.
RUNTIME_IMPORTS = "import paho.mqtt.client, jwt, nacl.signing, yaml"


def install_env() -> dict[str, str]:
    return clean_env(PYTHON=sys.executable)  # the venvs are made by (the base of) the interpreter running the tests


def run_install(*args: str, script: Path = INSTALL) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=600,
                          env=install_env(), cwd="/")


def lend_test_site_packages(venv: Path) -> None:
    """A --system-site-packages venv sees the *base* interpreter's packages. When pytest runs from a venv that
    alone holds the runtime dependencies, let the test install see them too (a real install pip-installs them)."""
    probe = subprocess.run([str(venv / "bin/python"), "-c", RUNTIME_IMPORTS], capture_output=True, env=clean_env())
    if probe.returncode != 0:
        site_dir = next((venv / "lib").glob("python3*/site-packages"))
        (site_dir / "_loa_test_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")


def install_into(prefix: Path, *options: str, script: Path = INSTALL) -> subprocess.CompletedProcess:
    """install.sh into `prefix` with the test options; it must succeed."""
    out = run_install("--prefix", str(prefix), *TEST_OPTIONS, *options, script=script)
    assert out.returncode == 0, out.stdout + out.stderr
    lend_test_site_packages(prefix / "opt/loa-agent/current")
    return out


@dataclass
class Install:
    prefix: Path
    first_run: subprocess.CompletedProcess
    config_as_installed: str

    @property
    def home(self) -> Path:
        return self.prefix / "opt/loa-agent"

    @property
    def bin(self) -> Path:
        return self.home / "bin"

    @property
    def config(self) -> Path:
        return self.prefix / "etc/loa-agent/agent.yaml"

    @property
    def unit(self) -> Path:
        return self.prefix / "etc/systemd/system/loa-agent.service"

    def run(self, exe: str, *args: str) -> subprocess.CompletedProcess:
        """A command of the current release, through <root>/bin. Python itself through current/bin: it finds its
        venv from the path it was started by, and <root>/bin/../pyvenv.cfg does not exist."""
        where = self.home / "current/bin" if exe == "python" else self.bin
        return subprocess.run([str(where / exe), *args], capture_output=True, text=True, timeout=60,
                              env=clean_env(), cwd=self.prefix)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Install:
    """One test install (wheel, venv + pip install, a few seconds) shared by the module."""
    prefix = tmp_path_factory.mktemp("install")
    out = install_into(prefix)
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
    for what in (f"release {__version__} in ", f"installed release {__version__}", "start wrapper ", "config ",
                 "unit ", "done"):
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
        assert Path(path).is_relative_to(installed.home / "current"), path


def test_the_checkout_is_release_current_and_committed(installed):
    home = installed.home
    layout = Layout(home)
    assert layout.installed() == [__version__] and layout.complete(__version__)
    assert (layout.current_version(), layout.previous_version()) == (__version__, None)
    assert (home / "current").readlink() == Path(f"releases/{__version__}")  # relative: the same under any prefix
    assert (home / "bin").readlink() == Path("current/bin")
    release = json.loads((layout.release(__version__) / "release.json").read_text())
    assert release == {"version": __version__, "installed_by": "install.sh"}
    assert layout.read_state() == {"committed": __version__, "highest": __version__, "pending": None, "last": None}
    # loa-boot is in no release, and runs on the interpreter that made the venvs (not on a venv's).
    text = layout.boot.read_text()
    assert stat.S_IMODE(layout.boot.stat().st_mode) == 0o755
    assert text.splitlines()[0] == f"#!{BASE_PYTHON}"
    assert text.split("\n", 1)[1] == (ROOT / "scripts/loa-boot").read_text().split("\n", 1)[1]
    assert not (home / "pyvenv.cfg").exists() and not list(home.glob(".*.tmp"))


def test_loa_boot_starts_the_installed_agent(installed):
    out = subprocess.run([str(installed.home / "loa-boot"), "--version"], capture_output=True, text=True,
                         timeout=60, env=clean_env(), cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"loa-agent {__version__}"
    assert out.stderr.splitlines() == [f"loa-boot: starting {__version__}"]


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
    assert f"kept release {__version__}, complete already" in out.stdout
    assert installed.config.read_text() == edited
    assert installed.run("loa-agent", "--help").returncode == 0
    layout = Layout(installed.home)
    assert layout.installed() == [__version__] and layout.previous_version() is None


def make_old_style_install(prefix: Path) -> Path:
    """What install.sh made before the release layout: /opt/loa-agent itself a venv (a real one, its agent faked:
    only its shape matters to the migration), and a technician's config."""
    home = prefix / "opt/loa-agent"
    subprocess.run([BASE_PYTHON, "-m", "venv", "--without-pip", str(home)], check=True, env=clean_env())
    agent = home / "bin/loa-agent"
    agent.write_text("#!/bin/sh\necho old single-venv agent\n")
    agent.chmod(0o755)
    config = prefix / "etc/loa-agent/agent.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("# the technician's config\n")
    return home


def test_an_old_single_venv_install_is_migrated_then_upgraded_side_by_side(tmp_path):
    home = make_old_style_install(tmp_path / "box")
    layout = Layout(home)

    out = install_into(tmp_path / "box")
    assert "migration: removed the old venv" in out.stdout
    for gone in ("pyvenv.cfg", "lib", "include", "lib64"):
        assert not (home / gone).exists() and not (home / gone).is_symlink(), gone
    assert (home / "bin").readlink() == Path("current/bin")
    assert layout.installed() == [__version__] and layout.current_version() == __version__
    assert (tmp_path / "box/etc/loa-agent/agent.yaml").read_text() == "# the technician's config\n"
    out = subprocess.run([str(home / "bin/loa-agent"), "--version"], capture_output=True, text=True, env=clean_env())
    assert out.stdout.strip() == f"loa-agent {__version__}", out.stderr

    # A checkout of a newer version: installed beside the old one, which stays as previous.
    newer = f"{__version__}.post1"
    checkout = checkout_copy(tmp_path / "newer", newer)
    out = install_into(tmp_path / "box", script=checkout / "scripts/install.sh")
    assert f"installed release {newer}" in out.stdout and "migration" not in out.stdout
    assert layout.installed() == [__version__, newer]
    assert (layout.current_version(), layout.previous_version()) == (newer, __version__)
    state = layout.read_state()
    assert (state["committed"], state["highest"], state["pending"]) == (newer, newer, None)
    out = subprocess.run([str(home / "loa-boot"), "--version"], capture_output=True, text=True, env=clean_env())
    assert out.stdout.strip() == f"loa-agent {newer}", out.stderr


# --- (a) systemd-analyze verify on the rendered unit ---


def test_rendered_unit_differs_from_the_repos_only_by_the_prefix(installed):
    home, etc = installed.home, installed.prefix / "etc/loa-agent"
    expected = UNIT.read_text().replace("/opt/loa-agent", f"{home}").replace("/etc/loa-agent/", f"{etc}/")
    assert installed.unit.read_text() == expected
    service = parse_unit(expected)["Service"]
    assert values(service, "ExecStart") == [f"{home}/loa-boot --config {etc}/agent.yaml"]
    assert values(service, "ReadWritePaths") == [str(home)]


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
        "ExecStart": "/opt/loa-agent/loa-boot --config /etc/loa-agent/agent.yaml",
        # The agent installs releases and moves the current link there (ProtectSystem=strict otherwise).
        "ReadWritePaths": "/opt/loa-agent",
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
