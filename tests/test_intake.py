"""Every message on a command topic gets exactly one final ack with the right code; the agent keeps working."""

from __future__ import annotations

import json
import time

import pytest

from loa_console.keys import load_private_key, make_claims, sign

CMD = "ttcs/v1/dev/GL-0001/cmd"


def test_status_get_is_done_with_a_heartbeat(agent, province):
    jti = province.send("status.get")
    ack = province.ack(jti)
    assert ack["status"] == "done" and ack["code"] == "ok" and ack["type"] == "status.get"
    assert ack["device_id"] == "GL-0001" and ack["result"]["device_id"] == "GL-0001"
    assert ack["at"].endswith("Z")


def crafted(province, keys):
    """(name, payload, expected code, expected id or None) for each envelope error code."""
    other = load_private_key(keys["prov-2"])
    now = int(time.time())
    no_jti = make_claims("status.get")
    del no_jti["jti"]
    jti_unsigned, unsigned = province.token("status.get", signed=False)
    jti_kid, unknown_kid = province.token("status.get", kid="prov-2", key=other)
    jti_sig, bad_sig = province.token("status.get", kid="prov-1", key=other)
    jti_exp, expired = province.token("status.get", iat=now - 7200, lifetime_s=600)
    jti_fut, future = province.token("status.get", iat=now + 7200)
    jti_type, unknown_type = province.token("launch.missiles")
    jti_aud, other_aud = province.token("status.get", aud="GL-9999")
    jti_bad, bad_params = province.token("logs.get", {"lines": "many"})
    return [
        ("malformed JSON", b'{"jti": "x", ', "bad_payload", None),
        ("300 KiB", b"{" + b" " * (300 * 1024) + b"}", "bad_payload", None),
        ("missing jti", sign(no_jti, province.key, "prov-1"), "bad_schema", None),
        ("unsigned", unsigned, "unsigned", jti_unsigned),
        ("unknown kid", unknown_kid, "unknown_key", None),
        ("bad signature", bad_sig, "bad_signature", None),
        ("expired", expired, "expired", jti_exp),
        ("far-future iat", future, "not_yet_valid", jti_fut),
        ("unknown type", unknown_type, "unknown_type", jti_type),
        ("not for me", other_aud, "not_for_me", jti_aud),
        ("bad params", bad_params, "bad_schema", jti_bad),
    ]


def test_each_error_code_then_still_answering(agent, province, keys):
    for name, payload, code, jti in crafted(province, keys):
        mark = province.mark()
        province.publish(CMD, payload)
        ack = province.wait(lambda r: r.kind == "ack" and r.payload.get("status") == "rejected", after=mark).payload
        assert ack["code"] == code, (name, ack)
        if jti is not None:
            assert ack["id"] == jti, name
        if code == "bad_schema":
            assert ack["message"].split(":")[0] in ("jti", "params.lines"), ack["message"]
        # No bad input stops the agent: a good command right after is done.
        good = province.send("status.get")
        assert province.ack(good)["status"] == "done", name
    assert agent.proc.poll() is None


def test_replayed_command_is_rejected(agent, province):
    jti, token = province.token("status.get")
    province.publish(CMD, token)
    assert province.ack(jti)["status"] == "done"
    mark = province.mark()
    province.publish(CMD, token)
    ack = province.ack(jti, after=mark)
    assert (ack["status"], ack["code"]) == ("rejected", "replayed")
    assert [a["status"] for a in province.acks(jti)] == ["done", "rejected"]


def test_replay_guard_survives_a_restart(agent, province):
    jti, token = province.token("status.get")
    province.publish(CMD, token)
    province.ack(jti)
    agent.stop()
    mark = province.mark()
    agent.start()
    province.status("online", after=mark)
    province.publish(CMD, token)
    assert province.ack(jti, after=mark)["code"] == "replayed"


def test_rejection_is_also_a_durable_event(agent, province):
    mark = province.mark()
    province.publish(CMD, b"garbage")
    ev = province.event("command.rejected", after=mark)
    assert ev["data"]["code"] == "bad_payload" and ev["data"]["topic"] == CMD


@pytest.mark.parametrize("target", ["area:64", "area:64.23581", "all"])
def test_area_and_fleet_topics_reach_the_device(agent, province, target):
    jti = province.send("status.get", to=target)
    assert province.ack(jti)["status"] == "done"


def test_unsigned_accepted_in_lab_mode(make_agent, province):
    mark = province.mark()
    make_agent(signed=False).start()
    province.status("online", after=mark)
    jti, payload = province.token("status.get", signed=False)
    province.publish(CMD, payload)
    assert province.ack(jti)["status"] == "done"
    assert json.loads(payload)["jti"] == jti
