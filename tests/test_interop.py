"""The interop table's rows (scripts/interop, docs/interop.md), with the same code: the Mosquitto rows always, the
RabbitMQ cluster where RabbitMQ is installed (skipped with the reason otherwise; CI does not install it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.interop import CHECKS, run_target, targets
from support.rabbit import available as rabbit_available

pytestmark = pytest.mark.slow


def run_row(name: str, tmp_path: Path, keys: dict[str, Path]) -> None:
    target = targets([name])[name]()
    results = run_target(target, tmp_path, keys["prov-1"], log=lambda s: None)
    assert set(results) == set(CHECKS)
    bad = {c: f"{r.status}: {r.note}" for c, r in results.items() if r.status != "pass"
           and not (r.status == "limit" and c in target.limits)}
    assert not bad, f"{target.name}: {bad}"


@pytest.mark.parametrize("name", ["mosquitto5", "mosquitto311"])
def test_mosquitto_rows(name: str, tmp_path: Path, keys: dict[str, Path]) -> None:
    run_row(name, tmp_path, keys)


@pytest.mark.skipif(rabbit_available() is not None, reason=f"RabbitMQ cluster row: {rabbit_available()}")
def test_rabbitmq_cluster_row(tmp_path: Path, keys: dict[str, Path]) -> None:
    """Three private RabbitMQ nodes (quorum queues): everything but the retained copies, which stay per node."""
    run_row("rabbitmq", tmp_path, keys)
