"""Faults raised and cleared once each way; periodic readings with hysteresis (docs/protocol.md, "Faults")."""

from __future__ import annotations

from agent.faults import Faults


def faults() -> tuple[Faults, list[tuple[str, dict]]]:
    events: list[tuple[str, dict]] = []
    now = iter(range(100, 1000, 10))
    return Faults(lambda kind, data: events.append((kind, data)), lambda: next(now)), events


def test_an_edge_raises_once_and_clears_once_with_its_duration():
    f, events = faults()
    assert f.raise_("mqtt_auth", "refused") and not f.raise_("mqtt_auth", "refused again")
    assert f.codes() == ["mqtt_auth"]
    assert f.clear("mqtt_auth") and not f.clear("mqtt_auth")
    assert [k for k, _ in events] == ["fault.raised", "fault.cleared"]
    assert events[1][1] == {"code": "mqtt_auth", "raised_at": 100, "cleared_at": 110, "duration_s": 10}


def test_set_raises_with_a_message_and_clears_with_none():
    f, events = faults()
    f.set("relay", "no answer")
    f.set("relay", None)
    assert [k for k, _ in events] == ["fault.raised", "fault.cleared"] and not f.active()


def test_readings_change_the_state_only_after_enough_verdicts_in_a_row():
    f, events = faults()
    f.observe("temp", True, "81 °C")
    f.observe("temp", False)
    f.observe("temp", True, "82 °C")
    assert not events  # a bad reading between good ones is not a fault
    f.observe("temp", True, "83 °C")
    assert f.active()[0]["message"] == "83 °C"
    f.observe("temp", True, "85 °C")
    assert f.active()[0]["message"] == "85 °C"  # the latest figure, no second event
    for _ in range(5):
        f.observe("temp", None)  # inside the hysteresis band: nothing changes
    f.observe("temp", False)
    assert f.codes() == ["temp"]
    f.observe("temp", False)
    assert [k for k, _ in events] == ["fault.raised", "fault.cleared"]
