"""Credentials and TLS against a real Mosquitto: refused logins are reported plainly and retried slowly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.agentproc import eventually
from support.mosquitto import Mosquitto, passwd
from support.province import Province


@pytest.fixture
def secured(tmp_path: Path):
    pw = tmp_path / "broker-passwords"
    passwd(pw, "GL-0001", "right-password")
    passwd(pw, "province", "province-password")
    b = Mosquitto(tmp_path / "secure", f"password_file {pw}").start()  # anonymous access off
    yield b
    b.stop()


def test_wrong_password_is_reported_then_fixed_without_restart(secured, make_agent, tmp_path, keys):
    secret = tmp_path / "mqtt.password"
    secret.write_text("wrong-password\n")
    secret.chmod(0o600)
    agent = make_agent(config={"mqtt": {"port": secured.port, "username": "GL-0001",
                                        "password_file": str(secret)}})
    agent.start()

    def refused():
        st = json.loads(agent.cli("status", "--json").stdout)
        return st if st["auth_failed"] else None

    st = eventually(refused, what="auth failure reported")
    assert st["connected"] is False and "refused" in st["link_error"]
    assert [f["code"] for f in st["faults"]] == ["mqtt_auth"]
    human = agent.cli("status").stdout
    assert "NOT CONNECTED" in human and "credentials" in human

    province = Province(secured.port, keys["prov-1"], username="province", password="province-password")
    try:
        mark = province.mark()
        secret.write_text("right-password\n")  # the technician fixes the file; no restart needed
        province.status("online", after=mark, timeout=30)
        raised = province.event("fault.raised", after=mark, pred=lambda e: e["data"]["code"] == "mqtt_auth")
        cleared = province.event("fault.cleared", after=mark, pred=lambda e: e["data"]["code"] == "mqtt_auth")
        assert raised["at"] <= cleared["at"]
        assert province.ack(province.send("status.get"))["status"] == "done"
    finally:
        province.close()


def test_mutual_tls(tmp_path, make_agent):
    from support.pki import make_pki

    pki = make_pki(tmp_path / "pki")
    broker = Mosquitto(tmp_path / "tls", f"cafile {pki}/ca.pem\ncertfile {pki}/broker.pem\n"
                                         f"keyfile {pki}/broker.key\nrequire_certificate true\n").start()
    try:
        tls = {"ca": str(pki / "ca.pem"), "cert": str(pki / "GL-0001.pem"), "key": str(pki / "GL-0001.key")}
        agent = make_agent(signed=False, config={"mqtt": {"port": broker.port, "tls": tls}})
        agent.start()
        st = eventually(lambda: (s := json.loads(agent.cli("status", "--json").stdout))["connected"] and s,
                        what="connected over TLS")
        assert st["broker"] == f"mqtts://127.0.0.1:{broker.port}"

        # Without a client certificate the broker refuses the box, and it says so.
        agent.stop()
        agent.config["mqtt"]["tls"] = {"ca": tls["ca"]}
        agent.write_config()
        agent.start()
        st = eventually(lambda: (s := json.loads(agent.cli("status", "--json").stdout))["link_error"] and s,
                        what="TLS refusal reported")
        assert not st["connected"]
    finally:
        broker.stop()
