"""Many real agents on one broker, for the fan-out benchmarks (scripts/bench_alert, scripts/bench_fleet): start a
fleet in parallel, wait for the machine to calm down, and collect each box's answer to one publish."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from .agentproc import Agent
from .province import Province, Received


def cpu_idle(window_s: float = 1.0) -> float:
    """Share of the machine's CPU time that was idle over the window (from /proc/stat)."""
    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, total
    i0, t0 = sample()
    time.sleep(window_s)
    i1, t1 = sample()
    return (i1 - i0) / max(1, t1 - t0)


def wait_calm(min_idle: float = 0.9, timeout: float = 45.0) -> float:
    """Wait until the machine is mostly idle again (agents settled after their start); the last idle share."""
    deadline = time.monotonic() + timeout
    while True:
        idle = cpu_idle()
        if idle >= min_idle or time.monotonic() > deadline:
            return idle


def mem_available_mb() -> float:
    line = next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemAvailable:"))
    return int(line.split()[1]) / 1024


def first_per_device(province: Province, devices: set[str], pred: Callable[[Received], bool], after: int,
                     timeout: float) -> dict[str, Received]:
    """Per device, the first message from it matching pred, received after index `after`; those that came
    within the timeout (a device missing from the answer never answered)."""
    got: dict[str, Received] = {}
    deadline = time.monotonic() + timeout
    with province.cond:
        while len(got) < len(devices):
            for r in province.received[after:]:
                if r.device in devices and r.device not in got and pred(r):
                    got[r.device] = r
            after = len(province.received)
            left = deadline - time.monotonic()
            if len(got) == len(devices) or left <= 0:
                break
            province.cond.wait(min(1.0, left))
    return got


def online(r: Received) -> bool:
    return r.kind == "status" and isinstance(r.payload, dict) and r.payload.get("state") == "online"


def grow(fleet: list[Agent], n: int, make: Callable[[int], Agent], province: Province) -> tuple[int, float]:
    """Start agents (in parallel, none waited for alone) until the fleet has n; (how many online, seconds)."""
    mark = province.mark()
    new: set[str] = set()
    t0 = time.monotonic()
    for i in range(len(fleet), n):
        a = make(i)
        fleet.append(a)
        a.start(wait_ready=False)
        new.add(a.device_id)
    got = first_per_device(province, new, online, mark, timeout=60 + 2 * len(new))
    return n - len(new) + len(got), time.monotonic() - t0


def event_ms(r: Received, wall0: float) -> float:
    """The event's own time stamp (`at`, the agent's clock, 1 ms resolution) in ms after wall-clock wall0."""
    at = datetime.strptime(r.payload["at"].replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")
    return (at.timestamp() - wall0) * 1000
