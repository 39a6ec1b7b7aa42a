"""Config validation: every problem at once, "did you mean", secrets permissions, exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support.agentproc import ROOT

from agent import config

BAD = """
device:
  id: "GL 0001"
  heartbeat_s: 2
  areaz: ["64"]
mqtt:
  host: 203.0.113.7
  port: 99999
security:
  require_signd: true
audio:
  backend: vlcc
quiet_hours:
  - {from: "25:00", to: "05:30"}
"""


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd or ROOT, timeout=60)


def test_bad_config_reports_every_problem_at_once_and_exits_2(tmp_path):
    path = tmp_path / "agent.yaml"
    path.write_text(BAD)
    out = run("-m", "agent", "--config", str(path))
    assert out.returncode == 2
    err = out.stderr
    for expected in ["device.id: must match", "device.heartbeat_s: must be between 5",
                     "device.areaz: unknown key (did you mean 'areas'?)", "mqtt.port: must be between 1 and 65535",
                     "security.require_signd: unknown key (did you mean 'require_signed'?)",
                     "audio.backend: must be one of vlc, pyaudio, null", "quiet_hours[0].from: must match"]:
        assert expected in err, (expected, err)
    assert len(err.strip().splitlines()) == 7
    check = run("-m", "agent.cli", "config", "check", "--config", str(path))
    assert check.returncode == 2 and "device.areaz" in check.stderr


def test_cross_checks(tmp_path):
    path = tmp_path / "agent.yaml"
    path.write_text("device: {id: GL-1}\nmqtt: {host: 203.0.113.7}\nsecurity: {keys: {}}\n")
    with pytest.raises(config.ConfigError) as e:
        config.load(path)
    text = str(e.value)
    assert "mqtt.tls: required for a broker that is not on loopback" in text
    assert "security.keys: at least one provincial public key is required" in text


def test_a_release_key_must_not_be_a_command_key(tmp_path):
    (tmp_path / "prov-1.pub").write_text("the same key\n")
    (tmp_path / "copy.pub").write_text("the same key\n")  # under another name and kid
    path = tmp_path / "agent.yaml"
    path.write_text("device: {id: GL-1}\nsecurity: {keys: {k: prov-1.pub}, release_keys: {k: copy.pub, "
                    "gone: nowhere.pub}}\n")
    with pytest.raises(config.ConfigError) as e:
        config.load(path)
    assert "security.release_keys.k: the same key signs commands" in str(e.value)
    assert "security.release_keys.gone:" in str(e.value)


def test_not_yaml(tmp_path):
    path = tmp_path / "agent.yaml"
    path.write_text("device: {id: [\n")
    out = run("-m", "agent", "--config", str(path))
    assert out.returncode == 2 and "not valid YAML (line" in out.stderr


def test_missing_file(tmp_path):
    out = run("-m", "agent", "--config", str(tmp_path / "nope.yaml"))
    assert out.returncode == 2 and "cannot read" in out.stderr


@pytest.mark.parametrize("mode,ok", [(0o600, True), (0o400, True), (0o640, False), (0o644, False)])
def test_secret_files_must_not_be_group_or_world_readable(tmp_path, mode, ok):
    secret = tmp_path / "mqtt.password"
    secret.write_text("s3cret\n")
    secret.chmod(mode)
    path = tmp_path / "agent.yaml"
    path.write_text(f"device: {{id: GL-1}}\nmqtt: {{username: GL-1, password_file: {secret}}}\n"
                    "security: {require_signed: false}\n")
    if ok:
        config.load(path)
    else:
        with pytest.raises(config.ConfigError, match="mqtt.password_file: .* is readable by group or others"):
            config.load(path)


def test_example_config_is_valid_once_its_key_exists(tmp_path):
    text = (ROOT / "config/agent.example.yaml").read_text()
    key = tmp_path / "prov-1.pub"
    key.write_text("placeholder")
    cfg = config.parse(text.replace("/etc/loa-agent/keys/prov-1.pub", str(key)))
    assert cfg["device"]["id"] == "GL-0001" and cfg["mqtt"]["session_expiry_s"] == 7 * 24 * 3600
    assert cfg["quiet_hours"] == [{"from": "21:30", "to": "05:30", "max_volume": 0}]


def test_config_show_masks_secrets_and_check_says_ok(tmp_path):
    secret = tmp_path / "mqtt.password"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    path = tmp_path / "agent.yaml"
    path.write_text(f"device: {{id: GL-1}}\nmqtt: {{username: GL-1, password_file: {secret}}}\n"
                    f"security: {{require_signed: false}}\npaths: {{state_dir: {tmp_path}/state}}\n")
    assert run("-m", "agent.cli", "config", "check", "--config", str(path)).returncode == 0
    out = run("-m", "agent.cli", "config", "show", "--json", "--config", str(path))
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["mqtt"]["password_file"] == "***" and shown["mqtt"]["username"] == "GL-1"
    assert "s3cret" not in out.stdout
    assert str(secret) not in run("-m", "agent.cli", "config", "show", "--config", str(path)).stdout
