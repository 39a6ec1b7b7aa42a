"""`loa doctor` against real parts: a Mosquitto with TLS and passwords, the real agent, its state on disk."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.agentproc import Agent, eventually
from support.mosquitto import Mosquitto, passwd
from support.pki import make_pki
from support.schedules import publish_schedule, tone_item

from agent.doctor import Check, exit_code
from agent.health import Health
from agent.store import Store

# The doctor reads this host's real clock state; a container or a VM often reports "not synchronised".
CLOCK = "pass" if Health("/").clock_synced() else "warn"  # an unsynchronised host clock only warns


@pytest.fixture
def secure(tmp_path: Path):
    """A broker that wants TLS with a client certificate and a password (anonymous access off)."""
    pki = make_pki(tmp_path / "pki")
    pw = tmp_path / "broker-passwords"
    passwd(pw, "GL-0001", "right-password")
    b = Mosquitto(tmp_path / "secure", f"password_file {pw}\ncafile {pki}/ca.pem\ncertfile {pki}/broker.pem\n"
                                       f"keyfile {pki}/broker.key\nrequire_certificate true\n").start()
    yield b, pki
    b.stop()


def secure_config(tmp_path: Path, secure: tuple[Mosquitto, Path], password: str) -> dict:
    broker, pki = secure
    secret = tmp_path / "mqtt.password"
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    return {"mqtt": {"port": broker.port, "username": "GL-0001", "password_file": str(secret),
                     "tls": {"ca": str(pki / "ca.pem"), "cert": str(pki / "GL-0001.pem"),
                             "key": str(pki / "GL-0001.key")}},
            "gpio": {"backend": "sim"}}


def doctor(agent: Agent, *args: str) -> tuple[subprocess.CompletedProcess, dict[str, dict]]:
    """Run `loa doctor --json`; the process and the checks by name (in the order printed)."""
    r = agent.cli("doctor", "--json", *args)
    out = json.loads(r.stdout)
    checks = {c["name"]: c for c in out["checks"]}
    assert out["ok"] == (r.returncode == 0) == all(c["status"] != "fail" for c in checks.values()), r.stdout
    return r, checks


def statuses(checks: dict[str, dict]) -> dict[str, str]:
    return {name: c["status"] for name, c in checks.items()}


def line(stdout: str, name: str) -> str:
    return next(ln for ln in stdout.splitlines() if ln.split()[1:2] == [name])


def test_wrong_password_fails_the_broker_check(secure, make_agent, tmp_path):
    agent = make_agent(config=secure_config(tmp_path, secure, "wrong-password"))

    r = agent.cli("doctor")
    assert r.returncode == 1, r.stdout + r.stderr
    broker = line(r.stdout, "broker")
    assert broker.startswith("FAIL  broker")
    assert "refused: Bad user name or password" in broker or "refused: Not authorized" in broker
    assert "hint: check mqtt.username and mqtt.password_file" in broker

    r, checks = doctor(agent)
    assert r.returncode == 1
    assert checks["broker"]["status"] == "fail" and "mqtt.password_file" in checks["broker"]["hint"]
    assert {n for n, s in statuses(checks).items() if s == "fail"} == {"broker"}  # only the broker is wrong


def test_a_good_box_passes_with_the_daemon_stopped_and_running(secure, make_agent, tmp_path):
    agent = make_agent(config=secure_config(tmp_path, secure, "right-password"))
    # make_pki's certificates last 30 days: under the 30-day warning, by design of the test PKI.
    common = {"config": "pass", "secrets": "pass", "broker": "pass", "certificates": "warn", "clock": CLOCK,
              "audio": "pass", "gpio": "pass", "display": "skip", "fonts": "skip", "disk": "pass", "cache": "pass"}
    expected_rc = 0

    def check(checks: dict[str, dict], **more: str) -> None:
        got = statuses(checks)
        if got["disk"] == "warn":  # a nearly full test machine is not the doctor's fault
            got["disk"] = "pass"
        assert got == {**common, **more}, json.dumps(checks, indent=1, ensure_ascii=False)
        assert "TLS" in checks["broker"]["detail"] and "expires in 29 day(s)" in checks["certificates"]["detail"]
        assert checks["audio"]["detail"] == "no audio (null backend)"
        assert "simulated" in checks["gpio"]["detail"] and "zone main relay 17" in checks["gpio"]["detail"]

    r, checks = doctor(agent)  # never ran: no state database yet
    check(checks, outbox="skip", schedule="skip", daemon="warn")
    assert r.returncode == expected_rc and "not running" in checks["daemon"]["detail"]

    agent.start()
    eventually(lambda: json.loads(agent.cli("status", "--json").stdout)["connected"], what="agent connected")
    r, checks = doctor(agent)
    check(checks, outbox="pass", schedule="warn", daemon="pass")
    assert r.returncode == expected_rc
    assert "connected to mqtts://" in checks["daemon"]["detail"] and "faults: none" in checks["daemon"]["detail"]
    human = agent.cli("doctor")
    assert human.returncode == expected_rc
    assert line(human.stdout, "broker") == f"PASS  broker        127.0.0.1:{secure[0].port} accepted us (MQTT 5, TLS)"
    assert line(human.stdout, "daemon").startswith("PASS  daemon")

    assert agent.stop() == 0
    r, checks = doctor(agent)
    check(checks, outbox="pass", schedule="warn", daemon="warn")
    assert r.returncode == expected_rc


def test_a_config_typo_exits_2_with_every_problem(make_agent):
    agent = make_agent()
    agent.config["mqtt"]["prot"] = 1883
    agent.config["audio"]["backend"] = "nul"
    agent.write_config()

    r = agent.cli("doctor")
    assert r.returncode == 2, r.stdout + r.stderr
    assert line(r.stdout, "config").startswith("FAIL  config")
    assert "mqtt.prot: unknown key (did you mean 'port'?)" in r.stdout
    assert "audio.backend: must be one of" in r.stdout and "(did you mean 'null'?)" in r.stdout
    assert line(r.stdout, "broker").startswith("SKIP  broker")

    r, checks = doctor(agent)
    assert r.returncode == 2
    assert "did you mean 'port'?" in checks["config"]["detail"] and "did you mean 'null'?" in checks["config"]["detail"]
    assert {n for n, s in statuses(checks).items() if s != "skip"} == {"config"}


def test_a_group_readable_password_file_fails_config_and_secrets(make_agent, tmp_path):
    secret = tmp_path / "mqtt.password"
    secret.write_text("x\n")
    secret.chmod(0o640)
    agent = make_agent(config={"mqtt": {"username": "GL-0001", "password_file": str(secret)}})
    r, checks = doctor(agent)
    assert r.returncode == 2
    assert checks["secrets"]["status"] == "fail" and "mode 0640" in checks["secrets"]["detail"]
    assert "chmod 600" in checks["secrets"]["hint"]


def self_signed(base: Path, cn: str, days_from: float, days_to: float) -> tuple[Path, Path]:
    """A certificate valid from now + days_from to now + days_to (cryptography: openssl cannot backdate)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now + timedelta(days=days_from))
            .not_valid_after(now + timedelta(days=days_to)).sign(key, hashes.SHA256()))
    pem, key_path = base.with_suffix(".pem"), base.with_suffix(".key")
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return pem, key_path


def test_expired_and_not_yet_valid_certificates_fail(make_agent, tmp_path):
    ca, _ = self_signed(tmp_path / "old-ca", "old CA", -400, -2)
    cert, key = self_signed(tmp_path / "device", "GL-0001", 1, 400)
    agent = make_agent(config={"mqtt": {"tls": {"ca": str(ca), "cert": str(cert), "key": str(key)}}})
    r, checks = doctor(agent)
    assert r.returncode == 1
    certs = checks["certificates"]
    assert certs["status"] == "fail" and "renew" in certs["hint"]
    assert "mqtt.tls.cert CN=GL-0001: not valid before" in certs["detail"]
    assert "mqtt.tls.ca CN=old CA: expired on" in certs["detail"]


def test_a_tampered_cache_file_fails_naming_it(make_agent, tmp_path):
    agent = make_agent(config={"device": {"capabilities": ["speaker", "display"]},
                               "display": {"backend": "png", "png_dir": str(tmp_path / "frames")}})
    cache = agent.state_dir / "cache"
    cache.mkdir(parents=True)
    good = "Thông báo lịch tiêm chủng".encode()
    (cache / hashlib.sha256(good).hexdigest()).write_bytes(good)
    tampered = cache / hashlib.sha256(b"the bytes the province announced").hexdigest()
    tampered.write_bytes(b"other bytes under that name")

    r, checks = doctor(agent)
    assert r.returncode == 1
    cached = checks["cache"]
    assert cached["status"] == "fail" and "2 file(s)" in cached["detail"] and "2 verified" in cached["detail"]
    assert str(tampered) in cached["detail"] and hashlib.sha256(good).hexdigest() not in cached["detail"]
    assert checks["display"]["status"] == "pass" and checks["fonts"]["status"] == "pass"

    human = agent.cli("doctor")
    assert human.returncode == 1 and str(tampered) in line(human.stdout, "cache")


def test_a_clock_behind_the_trusted_time_floor_fails(make_agent):
    agent = make_agent()
    store = Store(agent.state_dir)  # as if a message signed a day from now had been accepted
    store.raise_floor(int(time.time()) + 86400)
    store.close()
    r, checks = doctor(agent)
    assert r.returncode == 1
    assert checks["clock"]["status"] == "fail" and "before the newest signed message" in checks["clock"]["detail"]


def test_the_stored_schedule_is_reported(make_agent, province):
    mark = province.mark()
    agent = make_agent().start()
    province.status("online", after=mark)
    province.done(publish_schedule(province, 4, [tone_item("sang", time.time() + 3600),
                                                 tone_item("chieu", time.time() + 7200)]))
    r, checks = doctor(agent)
    assert checks["schedule"] == {"name": "schedule", "status": "pass", "detail": "2 item(s); device v4", "hint": ""}
    assert checks["outbox"]["status"] == "pass" and checks["daemon"]["status"] == "pass"


def test_every_broker_of_the_list_is_checked(make_agent, broker):
    """A cluster node down is a warning (the box fails over), all of them down a failure."""
    from support.mosquitto import free_port

    dead = free_port()
    agent = make_agent(config={"mqtt": {"hosts": [{"host": "127.0.0.1", "port": broker.port},
                                                  {"host": "127.0.0.1", "port": dead}]}})
    r, checks = doctor(agent)
    assert checks["broker"]["status"] == "warn", checks["broker"]
    assert f"127.0.0.1:{broker.port} accepted us (MQTT 5, plain)" in checks["broker"]["detail"]
    assert f"cannot reach 127.0.0.1:{dead}" in checks["broker"]["detail"]
    broker.stop()
    assert doctor(agent)[1]["broker"]["status"] == "fail"


def test_warnings_do_not_fail_but_failures_and_a_bad_config_do():
    ok, warn = Check("disk", "pass", ""), Check("clock", "warn", "")
    assert exit_code([ok, warn, Check("outbox", "skip", "")]) == 0
    assert exit_code([ok, warn, Check("cache", "fail", "")]) == 1
    assert exit_code([Check("config", "fail", ""), Check("broker", "skip", "")]) == 2
