"""The contract checks of scripts/interop (and tests/test_interop.py), run against any broker: a real agent
process (null audio, no display) and a signing province client, on a broker target that may be one Mosquitto,
a primary and a standby, or the nodes of a cluster.

A target says which checks are known to fail on it and why (`limits`): such a failure is reported as `limit`
with its note, never as a pass; any other failure is `FAIL`, and makes scripts/interop exit non-zero."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt

from agent.store import Store

from .agentproc import Agent, eventually
from .mosquitto import Mosquitto
from .otherbrokers import Amqtt, amqtt_path, amqtt_version
from .province import FINAL, PREFIX, Province, Received
from .rabbit import RabbitCluster, version
from .rabbit import available as rabbit_available
from .schedules import publish_schedule, tone_item

CHECKS = {
    "online/lost": "retained `online` on connect, `lost` by the last will on kill -9 (live, and at a new subscriber)",
    "command": "a signed command on the device topic and one on the commune's area topic (64.23581), both `done`",
    "offline": "a command published while the box is stopped runs when it comes back (persistent session)",
    "schedule": "a retained schedule published before a new box first connects is applied by it",
    "failover": "kill -9 the broker node in use while the outbox drains: the box moves to the next of mqtt.hosts, "
                "every queued event arrives, in order, and a command sent there is executed",
}

class Shortfall(AssertionError):
    """A check's requirement not met (a `limit` where the target documents why)."""


class Fail(Shortfall):
    """Not met, and never excused by a documented limitation."""


@dataclass
class Result:
    status: str  # pass | FAIL | limit | skip
    note: str = ""
    seconds: float = 0.0


# --- broker targets ---------------------------------------------------------------------------
class Target:
    name = "?"
    protocol = "5"  # the agent's mqtt.protocol
    province_protocol = "5"
    limits: dict[str, str] = {}  # check -> the documented limitation that makes it fail on this broker
    notes: list[str] = []  # what holds on this broker whatever the checks say

    def unavailable(self) -> str | None:
        return None

    def start(self, workdir: Path) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def hosts(self) -> list[dict]:
        """The agent's mqtt.hosts, in order."""
        raise NotImplementedError

    def province_ports(self) -> list[int]:
        """Where the province's server listens: it publishes on the first that is alive."""
        raise NotImplementedError

    def kill(self, address: str) -> None:
        """kill -9 the broker (node) at host:port."""
        raise NotImplementedError


class Pair(Target):
    """A primary and a standby broker, independent (no bridge): the province's server uses both; a box uses the
    primary and moves to the standby when it dies."""

    limits = {"failover": "a primary and a standby share nothing: events the primary had acknowledged (PUBACK) "
                          "but not yet passed to the province die with it on kill -9 (Mosquitto writes its "
                          "persistence file at a clean stop and every autosave_interval); a clean stop keeps them "
                          "for its restart, and a cluster with replicated queues (RabbitMQ quorum) keeps them"}

    def __init__(self) -> None:
        self.brokers: list = []  # each with .port, .proc, start(), stop()

    def make(self, workdir: Path):
        raise NotImplementedError

    def start(self, workdir: Path) -> None:
        self.brokers = [self.make(workdir / name) for name in ("primary", "standby")]
        for b in self.brokers:
            b.start()

    def stop(self) -> None:
        for b in self.brokers:
            b.stop()

    def hosts(self) -> list[dict]:
        return [{"host": "127.0.0.1", "port": b.port} for b in self.brokers]

    def province_ports(self) -> list[int]:
        return [b.port for b in self.brokers]

    def alive(self, port: int) -> bool:
        return any(b.port == port and b.proc and b.proc.poll() is None for b in self.brokers)

    def kill(self, address: str) -> None:
        b = next(b for b in self.brokers if address.endswith(f":{b.port}"))
        b.proc.kill()
        b.proc.wait(10)


class MosquittoPair(Pair):
    """Two Mosquitto processes; set_tcp_nodelay as config/mosquitto/loa.conf (tests/support/mosquitto.py)."""

    def __init__(self, protocol: str = "5"):
        super().__init__()
        self.protocol = protocol
        self.name = "Mosquitto, MQTT 5" if protocol == "5" else "Mosquitto, agent on MQTT 3.1.1"
        self.notes = [("set_tcp_nodelay true (the reference config): without it every small command waits ~38 ms "
                      "(Nagle)")]
        if protocol != "5":
            self.notes = [*self.notes, ("3.1.1: no session expiry (the broker's persistent_client_expiration "
                          "decides, default never) and no user properties")]

    def make(self, workdir: Path) -> Mosquitto:
        return Mosquitto(workdir)


class AmqttPair(Pair):
    """amqtt (PyPI, pure Python asyncio), MQTT 3.1.1 only, sessions and retained messages in memory."""

    protocol = province_protocol = "3.1.1"
    name = "amqtt (PyPI), two single nodes"

    def __init__(self) -> None:
        super().__init__()
        self.limits = {**Pair.limits, "offline": (
            "amqtt does not queue QoS 1 messages for a persistent session (clean_session=False) whose client is "
            "offline: seen here with the agent and with mosquitto_sub -c alike, so a box misses what was sent "
            "while it was away")}
        self.notes = [(f"amqtt {amqtt_version() or '?'}: MQTT 3.1.1 only, no clustering, sessions and retained "
                      "messages in memory (a restart forgets them); not for production fleets"),
                      "no TCP_NODELAY setting"]

    def unavailable(self) -> str | None:
        return None if amqtt_path() else "amqtt not found (pip install amqtt in its own venv; LOA_AMQTT=path)"

    def make(self, workdir: Path) -> Amqtt:
        return Amqtt(workdir, amqtt_path())


class Rabbit(Target):
    """RabbitMQ (Debian's) with its MQTT plugin, three nodes clustered on this machine. The agent lists the three
    nodes; the province's server uses the third (the cluster routes between nodes)."""

    protocol = province_protocol = "3.1.1"

    def __init__(self, queues: str = "quorum"):
        self.queues = queues
        self.name = f"RabbitMQ {version()} cluster (3 nodes), {queues} queues"
        retained = ("retained messages are stored per node (mqtt.retained_message_store, local DETS/ETS): a box "
                    "or a server on another node never sees them; live publishes are routed cluster-wide")
        self.limits = {"online/lost": retained, "schedule": retained}
        if queues == "classic":
            self.limits["failover"] = ("a persistent session is a classic queue on the node the box first used: "
                                       "when that node dies, every other node accepts the box's connection and "
                                       "closes it when the session resubscribes (its queue's home is down), so the "
                                       "box loops between live nodes and little gets out until the node returns; "
                                       "set mqtt.durable_queue_type = quorum")
        self.notes = [
            (f"RabbitMQ {version()} speaks MQTT 3.1 and 3.1.1 only (MQTT 5 from 3.13): the agent runs "
            "mqtt.protocol 3.1.1"),
            "QoS 2 is downgraded to QoS 1 (the contract uses QoS 0 and 1 only)",
            ("the MQTT plugin needs a majority of nodes up to accept connections (client ids are tracked in Raft): "
            "use 3 or 5 nodes, never 2"),
            ("mqtt.subscription_ttl (default 1 day) ends an idle persistent session: set it to the agent's 7 days "
            "(604800000 ms); this cluster does"),
            "mqtt.tcp_listen_options.nodelay = true is the equivalent of Mosquitto's set_tcp_nodelay",
        ]
        self.cluster: RabbitCluster | None = None

    def unavailable(self) -> str | None:
        return rabbit_available()

    def start(self, workdir: Path) -> None:
        self.cluster = RabbitCluster(workdir, queues=self.queues)
        self.cluster.start()

    def stop(self) -> None:
        if self.cluster:
            self.cluster.stop()

    def hosts(self) -> list[dict]:
        return [n.address for n in self.cluster.nodes]

    def province_ports(self) -> list[int]:
        return [self.cluster.nodes[-1].port]

    def alive(self, port: int) -> bool:
        return any(n.port == port and n.alive() for n in self.cluster.nodes)

    def kill(self, address: str) -> None:
        next(n for n in self.cluster.nodes if address.endswith(f":{n.port}")).kill()


def targets(names: list[str] | None = None) -> dict[str, Callable[[], Target]]:
    all_ = {"mosquitto5": lambda: MosquittoPair("5"), "mosquitto311": lambda: MosquittoPair("3.1.1"),
            "rabbitmq": lambda: Rabbit("quorum"), "rabbitmq-classic": lambda: Rabbit("classic"),
            "amqtt": AmqttPair}
    return {k: v for k, v in all_.items() if not names or k in names}


# --- the run's context --------------------------------------------------------------------------
@dataclass
class Run:
    target: Target
    tmp: Path
    key: Path  # the province's private key (prov-1); its .pub beside it
    provinces: dict[int, Province] = field(default_factory=dict)
    agents: list[Agent] = field(default_factory=list)
    seq: int = 0

    def connect(self) -> None:
        for port in self.target.province_ports():
            self.provinces[port] = Province(port, self.key, client_id=f"province-{port}",
                                            protocol=self.target.province_protocol)

    @property
    def province(self) -> Province:
        """The province client on the first live node."""
        return next(p for port, p in self.provinces.items() if self.target.alive(port))

    def agent(self, hosts: list[dict] | None = None) -> Agent:
        self.seq += 1
        hosts = hosts or self.target.hosts()[:1]
        a = Agent(self.tmp, hosts[0]["port"], {"prov-1": self.key.with_suffix(".pub")}, f"GL-I{self.seq:03d}",
                  config={"device": {"heartbeat_s": 3600}, "display": {"backend": "none"}})
        mq = a.config["mqtt"]
        if len(hosts) > 1:
            mq.pop("host")
            mq["hosts"] = hosts
        if self.target.protocol != "5":
            mq["protocol"] = self.target.protocol
        a.write_config()
        self.agents.append(a)
        return a

    def mark(self) -> dict[int, int]:
        return {port: p.mark() for port, p in self.provinces.items()}

    def received(self, since: dict[int, int]) -> list[Received]:
        """What every province client received after `since`, in arrival order."""
        out = []
        for port, p in self.provinces.items():
            with p.cond:
                out += p.received[since.get(port, 0):]
        return sorted(out, key=lambda r: r.at)

    def wait(self, pred: Callable[[Received], bool], since: dict[int, int], timeout: float = 30.0) -> Received:
        deadline = time.monotonic() + timeout
        while True:
            for p in self.provinces.values():
                with contextlib.suppress(TimeoutError):
                    return p.wait(pred, timeout=0.05, after=since.get(p.port, 0))
            if time.monotonic() > deadline:
                raise Shortfall(f"nothing matched within {timeout} s")

    def status(self, device: str, state: str, since: dict[int, int], timeout: float = 30.0) -> None:
        try:
            self.wait(lambda r: r.kind == "status" and r.device == device and isinstance(r.payload, dict)
                      and r.payload.get("state") == state, since, timeout)
        except Shortfall:
            raise Shortfall(f"no `{state}` status from {device} within {timeout} s") from None

    def done(self, device: str, jti: str, since: dict[int, int], timeout: float = 30.0) -> dict:
        try:
            ack = self.wait(lambda r: r.kind == "ack" and r.device == device and isinstance(r.payload, dict)
                            and r.payload.get("id") == jti and r.payload.get("status") in FINAL, since, timeout).payload
        except Shortfall:
            raise Shortfall(f"no final ack for {jti[:8]} from {device} within {timeout} s") from None
        if ack["status"] != "done":
            raise Shortfall(f"ack {ack['status']}/{ack['code']}: {ack.get('message')}")
        return ack

    def send(self, device: str, type_: str, params: dict | None = None, to: str | None = None) -> str:
        return self.province.send(type_, params, to=to or f"dev:{device}")

    def close(self) -> None:
        for a in self.agents:
            a.close()
        for p in self.provinces.values():
            with contextlib.suppress(Exception):
                p.close()


def retained(port: int, topic: str, protocol: str = "5", timeout: float = 3.0) -> dict | None:
    """The retained message a new subscriber on this broker (node) gets for `topic`, or None."""
    got: list[dict] = []
    done = threading.Event()

    def on_message(c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        if msg.retain:
            got.append(json.loads(msg.payload))
        done.set()

    v5 = protocol == "5"
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"newcomer-{uuid.uuid4().hex[:8]}",
                    protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
    c.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
    c.on_message = on_message
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        done.wait(timeout)  # a retained message comes right after SUBACK; none comes when there is none
    finally:
        c.loop_stop()
        c.disconnect()
    return got[0] if got else None


# --- the checks -----------------------------------------------------------------------------------
def check_status(run: Run) -> str:
    a = run.agent()
    topic = f"{PREFIX}/dev/{a.device_id}/status"
    port = run.province.port
    since = run.mark()
    a.start()
    run.status(a.device_id, "online", since)
    seen = retained(port, topic, run.target.province_protocol)
    since = run.mark()
    a.kill()  # kill -9: no `offline`, the broker sends the will
    run.status(a.device_id, "lost", since)
    after = retained(port, topic, run.target.province_protocol)
    missing = [s for s, got in (("online", seen), ("lost", after)) if (got or {}).get("state") != s]
    if missing:
        raise Shortfall(f"live online and lost: yes; retained {' and '.join(missing)} at a new subscriber on the "
                        "province's node: no")
    return ""


def check_command(run: Run) -> str:
    a = run.agent().start()
    since = run.mark()
    run.status(a.device_id, "online", {})
    for to in (f"dev:{a.device_id}", "area:64.23581"):
        run.done(a.device_id, run.send(a.device_id, "volume", {"volume": 40}, to=to), since)
    return ""


def check_offline(run: Run) -> str:
    a = run.agent()
    since = run.mark()
    a.start()
    run.status(a.device_id, "online", since)
    a.stop()
    run.status(a.device_id, "offline", since)
    jti = run.send(a.device_id, "volume", {"volume": 55})
    since = run.mark()
    a.start()
    run.done(a.device_id, jti, since)
    return ""


def check_schedule(run: Run) -> str:
    a = run.agent()
    jti = publish_schedule(run.province, 1, [tone_item("s1", time.time() + 3600)], to=f"dev:{a.device_id}")
    since = run.mark()
    a.start()
    run.status(a.device_id, "online", since)
    try:
        run.wait(lambda r: r.kind == "event" and r.device == a.device_id and r.payload.get("kind") ==
                 "schedule.applied", since, timeout=10)
    except Shortfall:
        raise Shortfall("the retained schedule (published on the province's node) never reached the new box") \
            from None
    run.done(a.device_id, jti, since)
    return ""


EVENTS = 500


def check_failover(run: Run) -> str:
    hosts = run.target.hosts()
    a = run.agent(hosts)
    since = run.mark()
    a.start()
    run.status(a.device_id, "online", since)
    used = run.done(a.device_id, run.send(a.device_id, "status.get"), since)["result"]["net"].get("broker")
    if not used:
        raise Shortfall("the heartbeat's net.broker does not name the broker in use")
    store = Store(a.state_dir)  # a second writer, as SQLite WAL allows (tests/test_outbox.py)
    topic = f"{PREFIX}/dev/{a.device_id}/event"
    ids = [str(uuid.uuid4()) for _ in range(EVENTS)]
    since = run.mark()
    try:
        for i, eid in enumerate(ids):
            store.enqueue(topic, {"id": eid, "device_id": a.device_id, "at": "", "kind": "test.seq", "data": {"i": i}})
        run.send(a.device_id, "status.get")  # its ack, queued behind them, wakes the outbox (a second writer does not)
        eventually(lambda: store.outbox_count() < EVENTS - 20, interval=0.001, what="drain started")
        run.target.kill(used)  # the node in use dies in the middle of the drain
        left = store.outbox_count()
        if not left:
            raise Shortfall("the outbox had drained before the node died: nothing was tested")

        def is_seq(r: Received) -> bool:
            return r.kind == "event" and r.device == a.device_id and r.payload.get("kind") == "test.seq"

        try:
            run.wait(lambda r: is_seq(r) and r.payload["id"] == ids[-1], since, timeout=60)
        except Shortfall:
            got = {r.payload["id"] for r in run.received(since) if is_seq(r)}
            raise Shortfall(f"{len(got)}/{EVENTS} events arrived within 60 s of the node's death") from None
        got = [r.payload["id"] for r in run.received(since) if is_seq(r)]
        first_seen = list(dict.fromkeys(got))
        lost = [i for i, e in enumerate(ids) if e not in set(first_seen)]
        if [e for e in ids if e in set(first_seen)] != first_seen:
            raise Fail("events out of order")
        since = run.mark()
        now = run.done(a.device_id, run.send(a.device_id, "status.get"), since)["result"]["net"].get("broker")
        if now == used:
            raise Fail(f"net.broker still names the dead node {used}")
    finally:
        store.close()
    summary = f"{left} of {EVENTS} events queued at the kill; moved {used} -> {now}; in order"
    if lost:
        # Those the outbox still held went out again on the next broker; lost ones had been acknowledged
        # (PUBACK) by the node that died, so the box had let them go: the loss is the broker's.
        raise Shortfall(f"{summary}, but {len(lost)} events (#{lost[0]}-#{lost[-1]}) acknowledged by the dead "
                        "broker never reached the province")
    return f"{summary}; {len(got) - EVENTS} sent twice (same id)"


CHECK_FUNCS: dict[str, Callable[[Run], str]] = {
    "online/lost": check_status, "command": check_command, "offline": check_offline, "schedule": check_schedule,
    "failover": check_failover}


def run_target(target: Target, tmp: Path, key: Path, log: Callable[[str], None] = print) -> dict[str, Result]:
    """Start the target, run every check (failover last: it kills a node), stop it; a Result per check."""
    why = target.unavailable()
    if why:
        return {c: Result("skip", why) for c in CHECKS}
    results: dict[str, Result] = {}
    t0 = time.monotonic()
    target.start(tmp / "broker")
    log(f"  {target.name}: broker up in {time.monotonic() - t0:.1f} s")
    run = Run(target, tmp, key)
    try:
        run.connect()
        for check, fn in CHECK_FUNCS.items():
            t = time.monotonic()
            try:
                note = fn(run)
                results[check] = Result("pass", note)
            except (Shortfall, AssertionError, TimeoutError) as e:
                kind = "limit" if check in target.limits and not isinstance(e, Fail) else "FAIL"
                results[check] = Result(kind, str(e))
            results[check].seconds = time.monotonic() - t
            log(f"  {target.name}: {check}: {results[check].status} ({results[check].seconds:.1f} s) "
                f"{results[check].note}".rstrip())
    finally:
        run.close()
        target.stop()
    return results


def table(rows: dict[str, tuple[Target, dict[str, Result]]]) -> str:
    """broker x check, then the notes: each failure's reason, each limitation found, each broker's caveats."""
    w = max(len(t.name) for t, _ in rows.values()) + 2
    head = f"{'broker':<{w}}" + "".join(f"{c:<13}" for c in CHECKS)
    lines = [head, "-" * len(head)]
    notes: list[str] = []
    said: dict[str, int] = {}  # a limitation's text -> the note that gave it first
    for target, res in rows.values():
        cells = []
        for c in CHECKS:
            r = res.get(c, Result("skip"))
            mark = r.status
            if r.status in ("limit", "FAIL") or (r.status == "skip" and r.note):
                why = target.limits.get(c, "") if r.status == "limit" else ""
                if why in said:
                    why = f"as [{said[why]}]"
                elif why:
                    said[why] = len(notes) + 1
                notes.append(f"[{len(notes) + 1}] {target.name}, {c}: {r.status}: {why + ' — ' if why else ''}"
                             f"{r.note}")
                mark = f"{r.status} [{len(notes)}]"
            cells.append(f"{mark:<13}")
        lines.append(f"{target.name:<{w}}" + "".join(cells))
    lines.append("")
    lines += notes
    for target, res in rows.values():
        for c, r in res.items():
            if r.status == "pass" and r.note:
                lines.append(f"- {target.name}, {c}: {r.note}")
    seen: set[str] = set()
    for target, _ in rows.values():
        lines += [f"- {target.name}: {n}" for n in target.notes if n not in seen]
        seen.update(target.notes)
    return "\n".join(lines)


def failed(rows: dict[str, tuple[Target, dict[str, Result]]]) -> list[str]:
    return [f"{t.name}: {c}" for t, res in rows.values() for c, r in res.items() if r.status == "FAIL"]
