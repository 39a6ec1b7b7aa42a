"""The provincial server's side, for tests: signs and publishes commands, records what devices send."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.topics import target
from loa_console.keys import load_private_key, make_claims, sign

PREFIX = "ttcs/v1"
FINAL = {"done", "rejected", "failed"}


@dataclass
class Received:
    topic: str
    payload: Any
    retain: bool
    at: float  # monotonic arrival time

    @property
    def kind(self) -> str:
        return self.topic.rsplit("/", 1)[-1]

    @property
    def device(self) -> str:
        return self.topic.split("/")[-2]


class Province:
    def __init__(self, port: int, key: Path | None = None, kid: str = "prov-1", client_id: str = "province",
                 username: str | None = None, password: str | None = None, protocol: str = "5"):
        self.port = port
        self.key = load_private_key(key) if key else None
        self.kid = kid
        self.received: list[Received] = []
        self.cond = threading.Condition()
        # MQTT 3.1.1 for brokers without 5 (RabbitMQ before 3.13): its persistent session is clean_session=False.
        v5 = protocol == "5"
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, clean_session=None if v5 else False)
        self.client.on_message = self._on_message
        self._subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.connected = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.reconnect_delay_set(0.1, 0.5)
        if username:
            self.client.username_pw_set(username, password)
        # A persistent session: what devices send while the province reconnects is queued, not lost.
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        if v5:
            self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        else:
            self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("province client could not subscribe")

    def _on_connect(self, client: mqtt.Client, *args: Any) -> None:
        # Subscribing on every connect keeps the province listening across broker restarts.
        client.subscribe(f"{PREFIX}/dev/+/+", qos=1)
        self.connected.set()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.endswith(("/cmd", "/schedule")):
            return
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            payload = msg.payload
        with self.cond:
            self.received.append(Received(msg.topic, payload, bool(msg.retain), time.monotonic()))
            self.cond.notify_all()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    # --- sending --------------------------------------------------------------------------
    def token(self, type_: str, params: dict | None = None, *, signed: bool = True, kid: str | None = None,
              key: Any = None, **claims: Any) -> tuple[str, str]:
        body = make_claims(type_, params, **claims)
        if not signed:
            return body["jti"], json.dumps(body)
        return body["jti"], sign(body, key or self.key, kid or self.kid)

    def send(self, type_: str, params: dict | None = None, *, to: str = "dev:GL-0001", **kw: Any) -> str:
        jti, payload = self.token(type_, params, **kw)
        self.publish(target(PREFIX, to, "cmd"), payload)
        return jti

    def publish(self, topic: str, payload: str | bytes, *, qos: int = 1, retain: bool = False) -> None:
        if not self.connected.wait(30):
            raise TimeoutError("the province is not connected to the broker")
        self.client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(10)

    # --- waiting ----------------------------------------------------------------------------
    def wait(self, pred: Callable[[Received], bool], timeout: float = 15.0, after: int = 0) -> Received:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for r in self.received[after:]:
                    if pred(r):
                        return r
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"nothing matched within {timeout} s; received {len(self.received)}: "
                                       f"{[(r.topic, r.payload) for r in self.received[-5:]]}")
                self.cond.wait(left)

    def ack(self, jti: str | None, *, final: bool = True, timeout: float = 15.0, device: str = "GL-0001",
            after: int = 0) -> dict:
        return self.wait(lambda r: r.kind == "ack" and r.device == device and isinstance(r.payload, dict)
                         and r.payload.get("id") == jti and (not final or r.payload.get("status") in FINAL),
                         timeout, after).payload

    def done(self, jti: str, timeout: float = 30.0, **kw: Any) -> dict:
        """The final ack, which must be `done`."""
        ack = self.ack(jti, timeout=timeout, **kw)
        assert ack["status"] == "done", ack
        return ack

    def acks(self, jti: str | None, device: str = "GL-0001") -> list[dict]:
        with self.cond:
            return [r.payload for r in self.received if r.kind == "ack" and r.device == device
                    and r.payload.get("id") == jti]

    def status(self, state: str, *, device: str = "GL-0001", timeout: float = 15.0, after: int = 0) -> dict:
        return self.wait(lambda r: r.kind == "status" and r.device == device and r.payload.get("state") == state,
                         timeout, after).payload

    def heartbeat(self, *, device: str = "GL-0001", timeout: float = 15.0, after: int = 0) -> dict:
        return self.wait(lambda r: r.kind == "heartbeat" and r.device == device, timeout, after).payload

    def event(self, kind: str, *, device: str = "GL-0001", timeout: float = 15.0, after: int = 0,
              pred: Callable[[dict], bool] = lambda p: True) -> dict:
        return self.wait(lambda r: r.kind == "event" and r.device == device and r.payload.get("kind") == kind
                         and pred(r.payload), timeout, after).payload

    def mark(self) -> int:
        with self.cond:
            return len(self.received)
