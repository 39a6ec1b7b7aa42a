"""mqtt.hosts: two real Mosquitto processes; the agent moves to the next when the one in use dies or stops
answering, says `online` there, executes what arrives there, and its outbox drains there in order."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.agentproc import eventually
from support.mosquitto import Mosquitto
from support.province import Province

from agent import config
from agent.ipc import request

HOST = "127.0.0.1"


@pytest.fixture
def standby(tmp_path: Path, keys: dict[str, Path]) -> Iterator[tuple[Mosquitto, Province]]:
    """The second broker of the list (the first is the `broker` fixture), and the province's client on it."""
    b = Mosquitto(tmp_path / "standby").start()
    p = Province(b.port, keys["prov-1"])
    try:
        yield b, p
    finally:
        p.close()
        b.stop()


def hosts(*brokers: Mosquitto, **mqtt: object) -> dict:
    return {"mqtt": {"hosts": [{"host": HOST, "port": b.port} for b in brokers], **mqtt}}


def test_the_agent_moves_to_the_next_broker_when_its_broker_is_killed(make_agent, broker, standby, province):
    standby, province_b = standby
    agent = make_agent(config=hosts(broker, standby)).start()
    first = province.status("online")
    assert province.done(province.send("status.get"))["result"]["net"]["broker"] == f"{HOST}:{broker.port}"

    mark = province_b.mark()
    killed = time.monotonic()
    os.kill(broker.proc.pid, signal.SIGKILL)  # no DISCONNECT, no will: the node is gone
    online = province_b.wait(lambda r: r.kind == "status" and r.payload["state"] == "online", after=mark)
    assert online.payload["boot_id"] == first["boot_id"]  # the same process, moved
    print(f"failover: {1000 * (online.at - killed):.0f} ms from the kill to `online` on the second broker")

    ack = province_b.done(province_b.send("status.get"), after=mark)  # signed, sent via the second broker
    assert ack["result"]["net"]["broker"] == f"{HOST}:{standby.port}"
    st = json.loads(agent.cli("status", "--json").stdout)
    assert st["connected"] and st["broker"] == f"mqtt://{HOST}:{standby.port}"
    assert st["heartbeat"]["net"]["broker"] == f"{HOST}:{standby.port}"


@contextlib.contextmanager
def frozen(b: Mosquitto) -> Iterator[None]:
    """The broker stops answering (SIGSTOP): its TCP connections stay up, only the keepalive can tell."""
    assert b.proc
    os.kill(b.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(b.proc.pid, signal.SIGCONT)  # so that the fixture's SIGTERM can stop it


def test_the_outbox_drains_in_order_on_the_next_broker_when_its_broker_stops_answering(make_agent, broker,
                                                                                       standby, province):
    standby, province_b = standby
    sensor = {"name": "door_open", "pin": 5, "debounce_ms": 0}
    agent = make_agent(config={**hosts(broker, standby, keepalive_s=5), "sensors": [sensor]}).start()
    province.status("online")
    sock = config.load(agent.config_path)["paths"]["socket"]
    mark = province_b.mark()
    values = [i % 2 == 0 for i in range(24)]
    with frozen(broker):
        stopped = time.monotonic()
        for v in values:  # events written to the outbox, published to a broker that never PUBACKs them
            request(sock, "sim_drive", pin=5, active=v)
            eventually(lambda v=v: request(sock, "status")["heartbeat"]["sensors"]["door_open"] is v,
                       what="the input settled")
        assert request(sock, "status")["connected"]  # nothing has noticed yet: the events wait for the move
        online = province_b.wait(lambda r: r.kind == "status" and r.payload["state"] == "online", after=mark,
                                 timeout=30)
    print(f"stopped broker left after {online.at - stopped:.1f} s (keepalive 5 s)")

    def sensor_events() -> list[dict]:
        with province_b.cond:
            return [r.payload for r in province_b.received[mark:] if r.kind == "event"
                    and r.payload["kind"] == "sensor"]

    eventually(lambda: len(sensor_events()) >= len(values), timeout=30, what="every sensor event on the standby")
    got = sensor_events()
    assert [e["data"]["value"] for e in got] == values  # all, once each, in the order they happened
    assert len({e["id"] for e in got}) == len(values)
    assert province_b.done(province_b.send("status.get"))["result"]["outbox_pending"] == 0


def test_per_host_tls_overrides_on_a_move(tmp_path, make_agent, keys):
    """Every host speaks TLS with mqtt.tls; a node whose certificate comes from another CA and names another server
    is reached with its own `tls.ca` and `tls.server_name`, and is refused without them."""
    from support.mosquitto import free_port
    from support.pki import make_pki

    from loa_console import pki

    one = make_pki(tmp_path / "pki-1", devices=())
    two = tmp_path / "pki-2"
    pki.make_pki(two, (), san=("DNS:node2.loa.example",), days=30, ca_name="the other CA")
    tls_ports = free_port(), free_port()
    node1 = Mosquitto(tmp_path / "node1", f"listener {tls_ports[0]} 127.0.0.1\ncertfile {one}/broker.pem\n"
                                          f"keyfile {one}/broker.key\n").start()
    node2 = Mosquitto(tmp_path / "node2", f"listener {tls_ports[1]} 127.0.0.1\ncertfile {two}/broker.pem\n"
                                          f"keyfile {two}/broker.key\n").start()
    watch = Province(node2.port, keys["prov-1"])  # on the plain listener
    try:
        agent = make_agent(config={"mqtt": {"tls": {"ca": str(one / "ca.pem")}, "hosts": [
            {"host": HOST, "port": tls_ports[0]},
            {"host": "localhost", "port": tls_ports[1]},  # node 2 with the shared settings: refused
            {"host": HOST, "port": tls_ports[1], "tls": {"ca": str(two / "ca.pem"),
                                                        "server_name": "node2.loa.example"}}]}}).start()
        eventually(lambda: request(config.load(agent.config_path)["paths"]["socket"], "status")["connected"],
                   what="connected to node 1")
        mark = watch.mark()
        node1.stop()
        watch.status("online", after=mark)
        assert watch.done(watch.send("status.get"))["result"]["net"]["broker"] == f"{HOST}:{tls_ports[1]}"
        assert f"cannot connect to mqtts://localhost:{tls_ports[1]}: [SSL: CERTIFICATE_VERIFY_FAILED]" in agent.log()
    finally:
        watch.close()
        node1.stop()
        node2.stop()


def test_a_host_that_does_not_answer_costs_no_wait(make_agent, broker, province):
    from support.mosquitto import free_port

    dead = {"host": HOST, "port": free_port()}  # nothing listens: refused at once
    slow = {"base_s": 60, "cap_s": 120, "jitter": False}  # any backoff would outlast the wait below
    agent = make_agent(config={"mqtt": {"hosts": [dead, {"host": HOST, "port": broker.port}], "reconnect": slow}})
    agent.start()
    province.status("online", timeout=10)
    assert f"connecting to mqtt://{HOST}:{broker.port} (attempt 2)" in agent.log()  # the backoff: once per round
