"""The commands of the foundation: config.set (persisted, areas resubscribed), logs.get, restart; the CLI."""

from __future__ import annotations

import json

from support.agentproc import eventually


def test_config_set_applies_persists_and_resubscribes(agent, province):
    jti = province.send("config.set", {"device.heartbeat_s": 5, "device.areas": ["65"],
                                       "quiet_hours": [{"from": "22:00", "to": "05:00", "max_volume": 10}]})
    ack = province.ack(jti)
    assert ack["status"] == "done", ack
    assert ack["result"]["applied"]["device.areas"] == ["65"]
    # The new area's topic reaches the box; the old one no longer does.
    assert province.ack(province.send("status.get", to="area:65"))["status"] == "done"
    old = province.send("status.get", to="area:64")
    # Heartbeats now come every 5 s.
    hb = province.heartbeat(after=province.mark(), timeout=12)
    assert hb["areas"] == ["65"]
    assert not province.acks(old)

    mark = province.mark()
    agent.stop()
    agent.start()
    province.status("online", after=mark)
    hb = province.heartbeat(after=mark, timeout=12)  # still 5 s after a restart
    assert hb["areas"] == ["65"]
    shown = json.loads(agent.cli("config", "show", "--json").stdout)
    assert shown["device"]["heartbeat_s"] == 5 and shown["quiet_hours"][0]["max_volume"] == 10


def test_config_set_refuses_other_keys(agent, province):
    ack = province.ack(province.send("config.set", {"mqtt.host": "evil.example"}))
    assert (ack["status"], ack["code"]) == ("rejected", "bad_schema")
    assert "params.mqtt.host" in ack["message"] and "not remotely settable" in ack["message"]
    ack = province.ack(province.send("config.set", {"device.heartbeat_s": 1}))
    assert ack["code"] == "bad_schema" and "params.device.heartbeat_s" in ack["message"]


def test_logs_get_returns_recent_lines(agent, province):
    jti = province.send("status.get")
    province.ack(jti)
    ack = province.ack(province.send("logs.get", {"lines": 20}))
    lines = ack["result"]["lines"]
    assert 0 < len(lines) <= 20 and any(jti in line for line in lines)
    cli = agent.cli("logs", "-n", "5", "--json")
    assert cli.returncode == 0 and len(json.loads(cli.stdout)["lines"]) == 5


def test_restart_is_accepted_then_done_after_the_restart(agent, province):
    before = province.status("online")
    mark = province.mark()
    jti = province.send("restart")
    accepted = province.ack(jti, final=False, after=mark)
    assert accepted["status"] == "accepted"
    done = province.ack(jti, after=mark, timeout=30)
    assert done["status"] == "done" and done["result"]["boot_id"] != before["boot_id"]
    after = province.status("online", after=mark)
    assert after["boot_id"] == done["result"]["boot_id"]
    assert [a["status"] for a in province.acks(jti)] == ["accepted", "done"]
    assert province.ack(province.send("status.get"))["status"] == "done"


def test_cli_restart(agent, province):
    before = province.status("online")
    mark = province.mark()
    out = agent.cli("restart")
    assert out.returncode == 0, out.stderr
    after = province.status("online", after=mark, timeout=30)
    assert after["boot_id"] != before["boot_id"]


def test_cli_says_plainly_when_the_agent_is_not_running(make_agent):
    agent = make_agent()
    for args in (("status",), ("status", "--json"), ("logs",)):
        out = agent.cli(*args)
        assert out.returncode == 3
        assert "the agent is not running" in out.stderr and out.stderr.startswith("loa:")


def test_recorded_but_unfinished_command_runs_after_a_crash(make_agent, province):
    """A command PUBACKed but not executed (power cut in between) is finished at the next start."""
    from agent.store import Store

    agent = make_agent()
    agent.start()
    agent.stop()
    jti, token = province.token("logs.get", {"lines": 1})
    claims = {"jti": jti, "iat": 0, "exp": 2**33, "type": "logs.get", "params": {"lines": 1}}
    store = Store(agent.state_dir)
    store.record(jti, 2**33, 0, "ttcs/v1/dev/GL-0001/cmd", claims)
    store.close()
    mark = province.mark()
    agent.start()
    assert province.ack(jti, after=mark)["status"] == "done"
    eventually(lambda: not Store(agent.state_dir).unfinished(), what="inbox emptied")
