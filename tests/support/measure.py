"""Small measuring helpers shared by the benchmarks (scripts/bench_*): percentiles, memory, the agent log's
time stamps, the first sound at a tap, and stopping what a benchmark started."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np


def pct(xs: list[float], p: float) -> float:
    """Nearest-rank percentile (p99 of 50 samples is the largest)."""
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def rss_mb(pid: int) -> float:
    """Resident set size of a process now, in MB (0 when it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    return int(next(x for x in status.splitlines() if x.startswith("VmRSS:")).split()[1]) / 1024


def stop(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    """End a process this benchmark started: SIGTERM, then SIGKILL after the grace period."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def logged_ms(log: str, pattern: str, wall0: float) -> float | None:
    """When the agent's log first has a line matching `pattern` (a regex), in ms after the wall-clock time
    wall0; the log stamps lines to the millisecond."""
    m = re.search(rf"^(\S+ \S+) .*?{pattern}", log, re.M)
    if not m:
        return None
    try:
        return (datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() - wall0) * 1000
    except ValueError:
        return None


def first_loud(data: bytes, mark: int, arrivals: list[tuple[float, int]], threshold: int = 0
               ) -> tuple[float, int] | None:
    """(arrival time, byte offset) of the first S16LE sample after byte `mark` whose magnitude is over
    `threshold`, given the tap's (arrival time, total bytes after it) stamps; None while there is none."""
    mark -= mark % 2
    raw = bytes(data[mark:])
    samples = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.int32)
    loud = np.flatnonzero(np.abs(samples) > threshold)
    if not len(loud):
        return None
    offset = mark + 2 * int(loud[0])
    return next(t for t, total in arrivals if total > offset), offset


def wait_quiet(last_arrival: Callable[[], float], quiet_s: float, timeout: float) -> None:
    """Return once nothing has reached a tap for quiet_s (last_arrival() gives the latest monotonic arrival)."""
    deadline = time.monotonic() + timeout
    while True:
        idle = time.monotonic() - last_arrival()
        if idle >= quiet_s:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the tap did not go quiet within {timeout} s")
        time.sleep(quiet_s - idle + 0.001)  # the tap is a file another process writes: nothing to wait on


def interrupt_on(*signals: int, once: bool = False) -> None:
    """Turn these signals into KeyboardInterrupt, so a benchmark's ExitStack stops all it started. With `once`,
    later ones are ignored, so that clean-up runs to its end."""
    def interrupted(signum: int, frame: object) -> None:
        if once:
            for sig in signals:
                signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt(f"signal {signum}")
    for sig in signals:
        signal.signal(sig, interrupted)
