"""The MQTT session contract: persistent session, last will, clean stop, broker restarts, retained schedules;
with MQTT 5 and with 3.1.1 (`mqtt.protocol`: `clean_session=False` instead of a session expiry)."""

from __future__ import annotations

import time

import pytest
from support.schedules import publish_schedule, tone_item


@pytest.fixture(params=["5", "3.1.1"])
def mqtt_protocol(request: pytest.FixtureRequest) -> str:
    return request.param


def test_command_published_while_agent_stopped_runs_after_start(agent, province):
    assert agent.stop() == 0
    province.status("offline")
    jti = province.send("status.get")  # QoS 1, kept by the broker in the agent's session
    mark = province.mark()
    agent.start()
    ack = province.ack(jti, after=mark)
    assert ack["status"] == "done"


def test_kill_9_makes_the_broker_publish_lost(agent, province):
    online = province.status("online")
    mark = province.mark()
    agent.kill()
    lost = province.status("lost", after=mark)
    assert lost["boot_id"] == online["boot_id"] and lost["device_id"] == "GL-0001"


def test_clean_stop_publishes_offline_not_lost(agent, province):
    mark = province.mark()
    assert agent.stop() == 0
    province.status("offline", after=mark)
    # The will was dropped by the clean DISCONNECT: the retained status stays "offline".
    from support.province import Province
    late = Province(province.port, client_id="late-reader")
    try:
        assert late.status("offline", timeout=5)["state"] == "offline"
        assert all(r.payload.get("state") != "lost" for r in late.received if r.kind == "status")
    finally:
        late.close()


def test_status_is_retained_with_identity(agent, province):
    from support.province import Province
    late = Province(province.port, client_id="late-reader")
    try:
        st = late.wait(lambda r: r.kind == "status" and r.retain, timeout=5).payload
    finally:
        late.close()
    assert st["state"] == "online" and st["boot_id"] and st["agent_version"] and st["at"].endswith("Z")


def test_command_published_while_broker_restarts_is_not_lost(agent, province, broker):
    province.ack(province.send("status.get"))
    broker.restart()  # same port, persistence on: the agent's session and its subscriptions survive
    jti = province.send("status.get")  # likely before the agent is back: the broker queues it for the session
    assert province.ack(jti, timeout=30)["status"] == "done"


def test_agent_is_ready_without_a_broker_and_connects_later(make_agent, broker, province):
    broker.stop()
    a = make_agent().start()  # READY=1 although nothing answers: the box works offline
    st = a.cli("status", "--json")
    assert st.returncode == 0, st.stderr
    assert '"connected": false' in st.stdout
    broker.start()
    province.status("online", timeout=30)


def test_retained_schedule_applied_at_start_and_not_sent_again_on_reconnect(make_agent, province, broker,
                                                                            mqtt_protocol):
    jti = publish_schedule(province, 3, [tone_item("sang", time.time() + 3600)])  # retained before the box exists
    mark = province.mark()
    make_agent(config={"mqtt": {"protocol": mqtt_protocol}}).start()
    assert province.done(jti, after=mark)["result"] == {"version": 3, "items": 1}
    assert province.event("schedule.applied", after=mark)["data"]["version"] == 3
    province.done(province.send("status.get"))  # the schedule's PUBACK and its ack's are through: no redelivery

    broker.restart()  # the session and its subscriptions survive: the retained document must not come again
    mark = province.mark()
    province.status("online", after=mark, timeout=30)  # SUBSCRIBE (if any) went before this PUBLISH
    hb = province.done(province.send("status.get"), after=mark)["result"]  # acks leave in order: a barrier
    assert hb["schedule_versions"] == {"device": 3}
    assert len(province.acks(jti)) == 1, [(a["message"], a["at"]) for a in province.acks(jti)]
