"""The floor of a latency benchmark: who else hears the same publishes, doing nothing with them. A paho
subscriber in the benchmark's own process, and mosquitto_sub (C, no Python) stamping each message with its own
wall clock (`-F %U`, CLOCK_REALTIME in ns), to compare with time.time() taken beside a publish."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import paho.mqtt.client as mqtt

from .measure import stop

PROBE_TOPIC = "bench/probe"  # mosquitto_sub is ready once a publish here comes back; no agent listens to it

Match = Callable[[str, bytes], bool]


class Listener:
    """A plain paho subscriber (QoS 1): when each publish arrives, and every message in order."""

    def __init__(self, port: int, topics: list[str], client_id: str):
        self.arrived: dict[tuple[str, bytes], float] = {}
        self.messages: list[tuple[str, bytes, float]] = []
        self.cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, *a: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("the floor subscriber could not subscribe")

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        with self.cond:
            self.arrived.setdefault((msg.topic, bytes(msg.payload)), now)
            self.messages.append((msg.topic, bytes(msg.payload), now))
            self.cond.notify_all()

    def when(self, topic: str, payload: str | bytes, timeout: float = 10.0) -> float:
        """The monotonic time this publish arrived."""
        key = (topic, payload.encode() if isinstance(payload, str) else payload)
        with self.cond:
            if not self.cond.wait_for(lambda: key in self.arrived, timeout):
                raise TimeoutError("the floor subscriber did not receive the publish")
            return self.arrived[key]

    def wait(self, pred: Match, timeout: float = 30.0) -> tuple[str, bytes, float]:
        """The first message matching pred(topic, payload)."""
        with self.cond:
            found: list = []

            def check() -> bool:
                found[:] = [m for m in self.messages if pred(m[0], m[1])][:1]
                return bool(found)

            if not self.cond.wait_for(check, timeout):
                raise TimeoutError(f"no matching message within {timeout} s")
            return found[0]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Record(NamedTuple):
    wall: float  # mosquitto_sub's own receive time, time.time() seconds
    topic: str
    length: int
    payload: str  # "" unless the subscriber prints payloads


class MosquittoSub:
    """`mosquitto_sub -q 1` printing one line per message, in arrival order. Payloads are printed only when
    asked (`payloads=True`, for text payloads: a binary one could hold a newline)."""

    def __init__(self, port: int, topics: list[str], out: Path, *, payloads: bool = False,
                 client_id: str = "bench-mosquitto-sub"):
        self.out = out
        self._file = open(out, "wb")
        args = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-i", client_id,
                "-F", "%U %t %l %p" if payloads else "%U %t %l"]
        for t in [*topics, PROBE_TOPIC]:
            args += ["-t", t]
        if shutil.which("stdbuf"):
            args = ["stdbuf", "-oL", *args]  # line by line, so a waiter sees each message when it comes
        self.proc = subprocess.Popen(args, stdout=self._file, stderr=subprocess.STDOUT)

    def wait_ready(self, publish: Callable[[str, bytes], object], timeout: float = 10.0) -> None:
        """Publish probes until one comes back: from then on every publish is seen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            publish(PROBE_TOPIC, b"probe")
            if self.wait(lambda topic, payload: topic == PROBE_TOPIC, timeout=0.1, probes=True) is not None:
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto_sub exited: {self.out.read_text(errors='replace')[-300:]}")
        raise TimeoutError("mosquitto_sub did not receive the probe")

    def records(self, probes: bool = False) -> list[Record]:
        out = []
        for line in self.out.read_text(errors="replace").splitlines():
            parts = line.split(" ", 3)
            if len(parts) >= 3 and (probes or parts[1] != PROBE_TOPIC):
                with contextlib.suppress(ValueError):
                    out.append(Record(float(parts[0]), parts[1], int(parts[2]), parts[3] if len(parts) > 3 else ""))
        return out

    def wait(self, pred: Callable[[str, str], bool], timeout: float = 10.0, probes: bool = False) -> float | None:
        """The wall-clock time of the first record matching pred(topic, payload), or None."""
        deadline = time.monotonic() + timeout
        while True:
            for r in self.records(probes):
                if pred(r.topic, r.payload):
                    return r.wall
            if time.monotonic() > deadline or self.proc.poll() is not None:
                return None
            time.sleep(0.005)  # following a file another process appends to: nothing to wait on

    def close(self) -> None:
        stop(self.proc)
        self._file.close()


class FloorProcess:
    """The paho floor subscriber as a process of its own (`python -m support.floor`), so that it can be confined
    like the agent (a CPU quota: `preexec` joins a cgroup before exec). It prints, per message, the monotonic
    time of on_message (CLOCK_MONOTONIC is the machine's: comparable with this process's) and the payload's
    SHA-1."""

    def __init__(self, port: int, topics: list[str], client_id: str, preexec: Callable[[], None] | None = None):
        import os
        import sys

        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                             os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen([sys.executable, "-m", "support.floor", str(port), client_id, *topics],
                                     stdout=subprocess.PIPE, text=True, env=env, preexec_fn=preexec)
        self.arrived: dict[str, float] = {}
        self.cond = threading.Condition()
        self._ready = threading.Event()
        threading.Thread(target=self._follow, daemon=True).start()
        if not self._ready.wait(20):
            stop(self.proc)
            raise TimeoutError("the floor process did not subscribe")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _follow(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip() == "subscribed":
                self._ready.set()
                continue
            at, digest = line.split()
            with self.cond:
                self.arrived.setdefault(digest, float(at))
                self.cond.notify_all()

    def when(self, payload: str | bytes, timeout: float = 10.0) -> float:
        import hashlib

        digest = hashlib.sha1(payload.encode() if isinstance(payload, str) else payload).hexdigest()
        with self.cond:
            if not self.cond.wait_for(lambda: digest in self.arrived, timeout):
                raise TimeoutError("the floor process did not receive the publish")
            return self.arrived[digest]

    def close(self) -> None:
        stop(self.proc)


def _serve(port: int, client_id: str, topics: list[str]) -> None:
    """FloorProcess's side: subscribe, then one line per message."""
    import hashlib
    import sys

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        sys.stdout.write(f"{now:.6f} {hashlib.sha1(msg.payload).hexdigest()}\n")
        sys.stdout.flush()

    def on_subscribe(*args: object) -> None:
        sys.stdout.write("subscribed\n")
        sys.stdout.flush()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.on_connect = lambda c, *a: c.subscribe([(t, 1) for t in topics])
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_forever()


if __name__ == "__main__":
    import sys

    _serve(int(sys.argv[1]), sys.argv[2], sys.argv[3:])
