"""Topic names of docs/protocol.md, built and parsed in one module."""

from __future__ import annotations

import pytest

from agent.topics import Inbound, Topics, target


def test_device_topics_and_subscriptions():
    t = Topics("ttcs/v1/", "GL-0001")
    assert (t.ack, t.status, t.heartbeat, t.event) == tuple(f"ttcs/v1/dev/GL-0001/{k}"
                                                            for k in ("ack", "status", "heartbeat", "event"))
    assert t.subscriptions(["64"]) == {"ttcs/v1/dev/GL-0001/cmd": "cmd", "ttcs/v1/all/cmd": "cmd",
                                       "ttcs/v1/dev/GL-0001/schedule": "schedule", "ttcs/v1/area/64/cmd": "cmd",
                                       "ttcs/v1/area/64/schedule": "schedule"}
    assert t.schedules(["64"]) == {"ttcs/v1/dev/GL-0001/schedule", "ttcs/v1/area/64/schedule"}


@pytest.mark.parametrize("topic, inbound", [
    ("ttcs/v1/dev/GL-0001/cmd", Inbound("cmd", "dev", "GL-0001")),
    ("ttcs/v1/area/64/schedule", Inbound("schedule", "area", "64")),
    ("ttcs/v1/all/cmd", Inbound("cmd", "all")),
    ("ttcs/v1/all/schedule", None),
    ("ttcs/v1/dev/GL-0001/ack", None),
    ("ttcs/v1/dev//cmd", None),
    ("other/v1/dev/GL-0001/cmd", None),
])
def test_parse(topic, inbound):
    assert Topics("ttcs/v1", "GL-0001").parse(topic) == inbound


def test_schedule_keys_name_the_source_as_the_heartbeat_does():
    assert Inbound("schedule", "dev", "GL-0001").schedule_key == "device"
    assert Inbound("schedule", "area", "64").schedule_key == "64"


def test_target_round_trips_through_parse():
    t = Topics("ttcs/v1", "GL-0001")
    for tgt, kind in (("dev:GL-0001", "cmd"), ("area:64", "schedule"), ("all", "cmd")):
        assert t.parse(target("ttcs/v1", tgt, kind)).kind == kind


@pytest.mark.parametrize("tgt, kind, message", [
    ("all", "schedule", "no fleet-wide schedule"),
    ("dev:GL/1", "cmd", "bad device id"),
    ("area:6#", "cmd", "bad area code"),
    ("box:1", "cmd", "bad target"),
    ("dev:GL-0001", "ack", "bad topic kind"),
])
def test_bad_targets_are_value_errors(tgt, kind, message):
    with pytest.raises(ValueError, match=message):
        target("ttcs/v1", tgt, kind)


def test_bad_prefix():
    with pytest.raises(ValueError, match="bad topic prefix"):
        Topics("ttcs/#", "GL-0001")
