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


BASE = "device: {id: GL-1}\nsecurity: {require_signed: false}\n"


def mqtt(text: str) -> dict:
    return config.parse(BASE + f"mqtt: {text}\n")["mqtt"]


def test_one_host_is_the_shorthand_of_the_broker_list():
    assert mqtt("{}")["hosts"] == [{"host": "127.0.0.1", "port": 1883}]
    assert mqtt("{host: localhost, port: 1884}")["hosts"] == [{"host": "localhost", "port": 1884}]
    mq = mqtt("{port: 8883, allow_plain: true, hosts: [{host: 10.0.0.1}, {host: 10.0.0.2, port: 1885}]}")
    assert mq["hosts"] == [{"host": "10.0.0.1", "port": 8883}, {"host": "10.0.0.2", "port": 1885}]
    assert (mq["host"], mq["port"]) == ("10.0.0.1", 8883)  # the first, for what needs one broker


@pytest.mark.parametrize("value,expected", [(5, "5"), ('"5"', "5"), ("3.1.1", "3.1.1"), ('"3.1.1"', "3.1.1")])
def test_protocol(value, expected):
    assert mqtt(f"{{protocol: {value}}}")["protocol"] == expected
    assert mqtt("{}")["protocol"] == "5"


@pytest.mark.parametrize("text,problem", [
    ("{host: a, hosts: [{host: b}]}", "mqtt.hosts: give mqtt.host (one broker) or mqtt.hosts (a list), not both"),
    ("{hosts: []}", "mqtt.hosts: must have 1-16 entries"),
    ("{hosts: localhost}", "mqtt.hosts: must be a list"),
    ("{hosts: [{port: 1883}]}", "mqtt.hosts[0].host: is required"),
    ("{hosts: [{host: a}, {host: b, port: 0}]}", "mqtt.hosts[1].port: must be between 1 and 65535"),
    ("{hosts: [{host: a, prot: 1}]}", "mqtt.hosts[0].prot: unknown key (did you mean 'port'?)"),
    ("{hosts: [{host: a, tls: {cert: x.pem}}]}", "mqtt.hosts[0].tls.cert: unknown key"),
    ("{hosts: [{host: 127.0.0.1}, {host: 127.0.0.1, port: 1883}]}", "mqtt.hosts[1]: 127.0.0.1:1883 is listed twice"),
    ("{hosts: [{host: 127.0.0.1}, {host: 203.0.113.7}]}", "not on loopback (203.0.113.7)"),
    ("{hosts: [{host: 127.0.0.1, tls: {server_name: b.example}}]}",
     "mqtt.hosts[0].tls: overrides mqtt.tls, which is not set (TLS applies to every host)"),
    ("{protocol: 4}", "mqtt.protocol: must be one of 5, 3.1.1"),
    ("{protocol: 3.1}", "mqtt.protocol: must be one of 5, 3.1.1 (did you mean '3.1.1'?)"),
    ("{protocol: v5}", "mqtt.protocol: must be one of 5, 3.1.1 (did you mean '5'?)"),
])
def test_bad_broker_lists_and_protocols_say_what_is_wrong(text, problem):
    with pytest.raises(config.ConfigError) as e:
        mqtt(text)
    assert problem in str(e.value)


def test_per_host_tls_files_are_checked_and_relative_to_the_config(tmp_path):
    (tmp_path / "ca.pem").write_text("ca")
    (tmp_path / "node2-ca.pem").write_text("another ca")
    path = tmp_path / "agent.yaml"
    path.write_text(BASE + "mqtt: {tls: {ca: ca.pem, server_name: mqtt.loa.example}, hosts: [{host: 10.0.0.1}, "
                           "{host: 10.0.0.2, tls: {ca: node2-ca.pem, server_name: node2.example}}]}\n")
    mq = config.load(path)["mqtt"]
    assert mq["tls"]["server_name"] == "mqtt.loa.example"  # a name, not a path
    assert mq["hosts"][1]["tls"] == {"ca": str(tmp_path / "node2-ca.pem"), "server_name": "node2.example"}
    (tmp_path / "node2-ca.pem").unlink()
    with pytest.raises(config.ConfigError, match=r"mqtt.hosts\[1\].tls.ca: cannot read"):
        config.load(path)
