"""Shared fixtures: a real Mosquitto, provincial keys, the real agent process, the province's client, release keys
and real release bundles (support/bundles.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.agentproc import Agent, audio_config
from support.bundles import make_bundle, release_keys  # noqa: F401 (fixtures)
from support.mosquitto import Mosquitto
from support.province import Province
from support.tap import Tap

from loa_console.keys import generate_keypair


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two provincial key pairs (for rotation tests); returns kid -> private key path."""
    d = tmp_path_factory.mktemp("keys")
    return {kid: generate_keypair(d, kid)[0] for kid in ("prov-1", "prov-2")}


def public(private: Path) -> Path:
    return private.with_suffix(".pub")


@pytest.fixture
def make_agent(tmp_path: Path, broker: Mosquitto, keys: dict[str, Path]) -> Iterator[Callable[..., Agent]]:
    agents: list[Agent] = []

    def make(device_id: str = "GL-0001", signed: bool = True, config: dict | None = None) -> Agent:
        a = Agent(tmp_path, broker.port, {"prov-1": public(keys["prov-1"])} if signed else None, device_id,
                  config)
        agents.append(a)
        return a

    yield make
    for a in agents:
        a.close()


@pytest.fixture
def province(broker: Mosquitto, keys: dict[str, Path]) -> Iterator[Province]:
    p = Province(broker.port, keys["prov-1"])
    yield p
    p.close()


@pytest.fixture
def mqtt_protocol() -> str:
    """The `agent` fixture's mqtt.protocol: a module overrides this fixture to run its tests with each version."""
    return "5"


@pytest.fixture
def agent(make_agent: Callable[..., Agent], province: Province, mqtt_protocol: str) -> Agent:
    """A running, connected agent (its `online` status seen by the province)."""
    mark = province.mark()
    a = make_agent(config={"mqtt": {"protocol": mqtt_protocol}}).start()
    province.status("online", after=mark)
    return a


@pytest.fixture
def tap(tmp_path: Path) -> Iterator[Tap]:
    """The agent's ALSA default PCM, captured (real time, via pv)."""
    t = Tap(tmp_path / "home")
    yield t
    t.close()


@pytest.fixture
def start_audio_agent(make_agent: Callable[..., Agent], province: Province, tap: Tap, tmp_path: Path):
    """Start a connected agent whose audio goes to the tap and whose sim GPIO logs to gpio.jsonl."""
    def start(backend: str = "pyaudio", config: dict | None = None, **extra: object) -> Agent:
        cfg = config or audio_config(backend, **extra)
        cfg.setdefault("gpio", {})["sim_log"] = str(tmp_path / "gpio.jsonl")
        mark = province.mark()
        agent = make_agent(config=cfg).start(**tap.env)
        province.status("online", after=mark)
        return agent
    return start
