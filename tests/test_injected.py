"""Fault injection, the fast cases (the long ones are in scripts/chaos): a broker down while 10,000 events
pile up, a corrupt or truncated state database, and a full disk under the state directory."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
from support.agentproc import eventually

from agent.store import DB_NAME, Store

TOPIC = "ttcs/v1/dev/GL-0001/event"


def test_ten_thousand_events_queued_while_the_broker_is_down_arrive_in_order(make_agent, broker, province):
    n = 10_000
    agent = make_agent(config={"audio": {"backend": "null"}})
    agent.start()
    broker.stop()  # a long outage of the provincial broker
    ids = [str(uuid.uuid4()) for _ in range(n)]
    store = Store(agent.state_dir)  # a second writer, as SQLite WAL allows: events the box made meanwhile
    for i, eid in enumerate(ids):
        store.enqueue(TOPIC, {"id": eid, "device_id": "GL-0001", "at": "", "kind": "test.seq", "data": {"i": i}})
    broker.start()  # the same broker (persistent sessions), back after the outage
    province.wait(lambda r: r.kind == "event" and isinstance(r.payload, dict) and r.payload.get("id") == ids[-1],
                  timeout=180)
    got = [r.payload["id"] for r in province.received
           if r.kind == "event" and isinstance(r.payload, dict) and r.payload.get("kind") == "test.seq"]
    assert list(dict.fromkeys(got)) == ids, "every event, in order, none lost"
    eventually(lambda: store.outbox_count() == 0, timeout=30, what="outbox emptied after PUBACKs")
    store.close()


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_state_database_is_moved_aside_reported_and_the_agent_runs_on(make_agent, province, damage):
    agent = make_agent(config={"audio": {"backend": "null"}})
    mark = province.mark()
    agent.start()
    province.status("online", after=mark)
    assert province.done(province.send("status.get"))["status"] == "done"
    agent.stop()
    db = agent.state_dir / DB_NAME
    data = db.read_bytes()
    if damage == "garbage":
        db.write_bytes(data[:100] + bytes(range(256)) * 64 + data[100 + 256 * 64:])  # header kept, pages trashed
    else:
        db.write_bytes(data[:len(data) // 3 or 1024])  # a write cut short by a power failure
    mark = province.mark()
    agent.start()
    event = province.event("store.recovered", after=mark, timeout=30)
    assert Path(event["data"]["moved_to"]).name.startswith(f"{DB_NAME}.corrupt-")
    assert Path(event["data"]["moved_to"]).exists()
    assert province.done(province.send("status.get"))["status"] == "done"  # and it works on
    assert "corrupt" in agent.log()


@pytest.fixture
def tiny_fs(tmp_path: Path):
    """A 32 MB tmpfs for the state directory (needs root and mount; skipped with the reason otherwise)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_loses_nothing_accepted(make_agent, province, tiny_fs):
    agent = make_agent(config={"audio": {"backend": "null"},
                               "paths": {"state_dir": str(tiny_fs / "state")},
                               "health": {"check_s": 0.2, "disk_low_mb": 1, "disk_clear_mb": 1.5}})
    mark = province.mark()
    agent.start()
    province.status("online", after=mark)
    done = province.send("status.get")
    assert province.done(done)["status"] == "done"
    filler = tiny_fs / "filler"
    with open(filler, "wb", buffering=0) as f:  # fill the card to the last byte
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass
    mark = province.mark()
    # The WAL is rewritten in place (store.py), so small commits still fit on a full card: send commands until one
    # cannot be recorded, which happens once the database itself must grow (each is kept for the replay guard).
    for i in range(400):
        lost = province.send("config.set", {"device.heartbeat_s": 30 + i})
        try:
            province.done(lost, timeout=5)
        except TimeoutError:
            break
    else:
        raise AssertionError("400 commands were recorded on a full card")
    eventually(lambda: "disk_low" in agent.cli("status", "--json").stdout, timeout=30, what="disk_low in loa status")
    eventually(lambda: "cannot write events" in agent.log(), what="the full disk logged")
    assert province.acks(lost) == []  # it could not be recorded: not PUBACKed, so the broker keeps it
    filler.unlink()  # the technician frees space: the events held in memory go out, in order
    raised = province.event("fault.raised", after=mark, pred=lambda e: e["data"]["code"] == "disk_low", timeout=30)
    province.event("fault.cleared", after=mark, pred=lambda e: e["data"]["code"] == "disk_low", timeout=30)
    assert raised["data"]["raised_at"]
    agent.stop()  # the command is delivered again at the next session
    agent.start()
    ack = province.done(lost, timeout=30)
    assert ack["status"] == "done" and ack["result"]["applied"] == {"device.heartbeat_s": 30 + i}
    assert [a["status"] for a in province.acks(lost)] == ["done"]  # executed once


def test_the_clock_going_back_never_plays_an_occurrence_twice(tmp_path, keys):
    from collections import Counter
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from support.incore import InCore

    noon = datetime(2026, 11, 23, 12, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh")).timestamp()
    with InCore(tmp_path, keys, {"schedule": {"clock_check_s": 0.05, "late_grace_s": 5}}, start=noon - 1) as box:
        box.schedule(1, [{"id": "minute", "start": "2026-11-23T00:00:00", "rrule": "FREQ=MINUTELY",
                          "source": {"kind": "tone", "name": "chime"}}])
        played = lambda: [e["id"] for e in box.events("play.end")]  # noqa: E731
        eventually(lambda: played(), timeout=20, what="12:00 played")
        box.clock.jump(noon - 8)  # NTP pulls a fast clock back: 12:00 comes round again
        eventually(lambda: box.clock() > noon + 1, timeout=20, what="12:00 passed again")
        box.clock.jump(noon + 58)
        eventually(lambda: len(played()) >= 2, timeout=20, what="12:01 played")
        assert [i[-8:-3] for i in played()] == ["12:00", "12:01"]
        assert not [i for i, c in Counter(played()).items() if c > 1]


def _child(pid: int, needle: str) -> int:
    """The PID of the deepest descendant of `pid` whose command line contains `needle` (from /proc): ALSA
    starts the tap's pacer through a shell, and it is the pacer that must go."""
    found = None
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in map(int, (task / "children").read_text().split()):
            if needle in Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace"):
                found = child
            try:
                return _child(child, needle)
            except LookupError:
                pass
    if found is None:
        raise LookupError(f"no descendant of {pid} runs {needle}")
    return found


def test_the_sound_device_vanishing_mid_programme_is_a_fault_and_the_box_recovers(start_audio_agent, province,
                                                                                   tap):
    from support.tap import total

    agent = start_audio_agent("pyaudio")
    mark = province.mark()
    long = province.send("play", {"source": {"kind": "tone", "name": "test", "duration_s": 30}, "volume": 100})
    tap.wait_for(lambda rs: total(rs, 1000) >= 0.5 and rs)
    # The device goes away under the agent: the process behind its ALSA output (the tap's pacer, a child that
    # ALSA spawned in the agent) dies, killed by its own PID.
    os.kill(_child(agent.proc.pid, "pacer.py"), signal.SIGKILL)
    fault = province.event("fault.raised", after=mark, pred=lambda e: e["data"]["code"] == "audio_device",
                           timeout=30)
    assert "audio output" in fault["data"]["message"]
    ack = province.ack(long, timeout=30)
    assert (ack["status"], ack["code"]) == ("failed", "device_fault")  # said plainly, not a silent "finished"
    # The device comes back (the output reopens, a new pacer starts): the fault clears and the next one plays.
    province.event("fault.cleared", after=mark, pred=lambda e: e["data"]["code"] == "audio_device", timeout=30)
    heard = len(tap.data)
    after = province.send("play", {"source": {"kind": "tone", "name": "test", "duration_s": 1}, "volume": 100})
    assert province.done(after)["result"]["completed"] is True
    tap.wait_for(lambda rs: total(rs, 1000) >= 0.9 and rs, start=heard)
