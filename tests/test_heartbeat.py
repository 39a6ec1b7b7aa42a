"""Heartbeats carry PROTOCOL.md's fields; `loa status --json` tells the same; sd_notify READY and WATCHDOG."""

from __future__ import annotations

import json

FIELDS = {"device_id", "seq", "at", "boot_id", "uptime_s", "agent_version", "state", "playing", "volume", "amp",
          "schedule_versions", "next_item", "cache", "outbox_pending", "sys", "net", "clock_synced", "sensors",
          "faults", "capabilities"}
SYS = {"cpu_temp_c", "load1", "mem_used_pct", "disk_free_mb", "undervoltage"}


def test_heartbeat_fields_and_cli_status_agree(make_agent, province):
    mark = province.mark()
    agent = make_agent(config={"device": {"heartbeat_s": 5, "capabilities": ["speaker", "display"]}}).start()
    hb1 = province.heartbeat(after=mark)
    hb2 = province.heartbeat(after=province.mark())
    assert FIELDS <= hb1.keys(), FIELDS - hb1.keys()
    assert SYS <= hb1["sys"].keys()
    assert hb2["seq"] == hb1["seq"] + 1 and hb1["boot_id"] == hb2["boot_id"]
    assert hb1["state"] == "idle" and hb1["capabilities"] == ["speaker", "display"]
    assert isinstance(hb1["sys"]["load1"], float) and 0 < hb1["sys"]["mem_used_pct"] < 100
    assert hb1["sys"]["disk_free_mb"] > 0 and hb1["outbox_pending"] >= 0
    assert isinstance(hb1["faults"], list)

    out = agent.cli("status", "--json")
    assert out.returncode == 0, out.stderr
    st = json.loads(out.stdout)
    assert st["connected"] is True and st["device_id"] == "GL-0001"
    assert st["heartbeat"]["boot_id"] == hb1["boot_id"] and st["boot_id"] == hb1["boot_id"]
    assert st["last_heartbeat_at"] >= hb2["at"]
    assert st["heartbeat"]["capabilities"] == hb1["capabilities"] and st["faults"] == []
    assert FIELDS <= st["heartbeat"].keys()

    human = agent.cli("status")
    assert human.returncode == 0 and "connected" in human.stdout and "outbox" in human.stdout


def test_ready_then_watchdog_pings(make_agent):
    agent = make_agent()
    agent.start(WATCHDOG_USEC="400000")  # ping every 0.2 s
    ready = agent.wait_ready()
    first = agent.notify.wait_for("WATCHDOG=1", timeout=10)
    assert first >= ready
    assert ready - agent.started_at < 10
    agent.notify.messages.clear()
    agent.notify.wait_for("WATCHDOG=1", timeout=10)  # and again: it keeps pinging from the loop


def test_the_first_watchdog_ping_comes_at_start_not_half_a_period_later(make_agent):
    """A restart into a new release is an exec within the same service: its first ping cannot wait 30 s."""
    agent = make_agent()
    agent.start(WATCHDOG_USEC="120000000")  # WatchdogSec=120: pings every 60 s after the first
    ready = agent.wait_ready()
    assert agent.notify.wait_for("WATCHDOG=1", timeout=10) - ready < 5


def test_no_heartbeat_is_queued_while_offline(make_agent, broker, province):
    agent = make_agent(config={"device": {"heartbeat_s": 5}})
    broker.stop()
    agent.start()
    st = json.loads(agent.cli("status", "--json").stdout)
    assert st["connected"] is False and st["outbox_pending"] == 0
