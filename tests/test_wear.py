"""SD-card wear (docs/sd-card.md): the idle agent writes nothing per heartbeat. Between as-run ticks the only write
at rest is the storage probe, at most once per PROBE_EVERY health checks, and none when the database committed
since the last probe. Measured on the real agent's /proc/PID/io over heartbeats received at a real Mosquitto."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from agent.monitor import PROBE_EVERY

PAGE = 4096  # /proc/PID/io write_bytes counts each page a write dirties


def write_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise AssertionError("no write_bytes in /proc/PID/io")


def changed_since(state: Path, t: float) -> list[str]:
    return sorted(str(p.relative_to(state)) for p in state.rglob("*") if p.is_file() and p.stat().st_mtime >= t)


def test_the_idle_agent_writes_nothing_per_heartbeat(make_agent, province):
    check_s, heartbeats = 1.0, 6
    agent = make_agent(config={"device": {"heartbeat_s": 5}, "health": {"check_s": check_s},
                               "log": {"level": "info"}})
    agent.start(PYTHONDONTWRITEBYTECODE="1")  # a lazy import must not count as the agent's writes
    pid = agent.proc.pid
    idle = lambda r: r.kind == "heartbeat" and r.payload["outbox_pending"] == 0  # noqa: E731

    # The counter sees this file system (not a tmpfs): one command is a few commits, each at least a page.
    province.wait(idle, 20)
    before = write_bytes(pid)
    province.done(province.send("report.get"))
    province.wait(idle, 20, province.mark())
    if write_bytes(pid) - before < PAGE:
        pytest.skip("the state directory's file system does not account writes in /proc/PID/io")

    mark = province.mark()
    province.wait(idle, 20, mark)  # the window opens on a heartbeat, with nothing left to deliver
    t0, wall0, w0 = time.monotonic(), time.time(), write_bytes(pid)
    seqs = []
    for _ in range(heartbeats):
        mark = province.mark()
        seqs.append(province.heartbeat(after=mark, timeout=20)["seq"])
    written, window = write_bytes(pid) - w0, time.monotonic() - t0

    assert seqs == list(range(seqs[0], seqs[0] + heartbeats))
    # Each probe rewrites one page of .health-probe; timers drift and the reading lags the heartbeat: one spare.
    probes = math.ceil(window / (check_s * PROBE_EVERY)) + 1
    assert written <= probes * PAGE, (
        f"{written} bytes written over {heartbeats} heartbeats ({window:.1f} s), more than {probes} storage "
        f"probe(s); changed: {changed_since(agent.state_dir, wall0)}")
