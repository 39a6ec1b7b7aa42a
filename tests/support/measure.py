"""Small measuring helpers shared by the benchmarks (scripts/bench_*)."""

from __future__ import annotations

from pathlib import Path


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
