"""The broker client: publishes to the fleet's topics and watches what the devices send."""

from __future__ import annotations

import os
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from agent.mqttclient import new_client, set_credentials

from . import PROG

Callback = Callable[[str, bytes, bool], None]


class Broker:
    """A thin paho-mqtt 2 client (MQTT 5), built by the box's own builder (agent/mqttclient.py):
    connects on construction, publishes with PUBACK, watches topics.

    Subscriptions made with watch() are renewed when paho reconnects.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 1883, *, tls_ca: str | Path | None = None,
                 cert: str | Path | None = None, key: str | Path | None = None, username: str | None = None,
                 password_file: str | Path | None = None, client_id: str | None = None,
                 connect_timeout: float = 10.0):
        self.url = f"{'mqtts' if tls_ca or cert else 'mqtt'}://{host}:{port}"
        self._cond = threading.Condition()
        self._connected: Any = None  # the CONNACK reason code, once it came
        self._lost: Any = None  # why the connection dropped before any CONNACK (TLS refused, ...)
        self._subacks: dict[int, list] = {}
        self._pubacks: dict[int, Any] = {}
        self._watches: dict[str, Callback] = {}
        self._closed = False
        mq = {"tls": {"ca": tls_ca, "cert": cert, "key": key} if tls_ca or cert else None,
              "username": username, "password_file": password_file}
        if password_file and not username:
            raise ValueError("a password file needs a username")
        c = new_client(client_id or f"loa-console-{os.getpid()}-{uuid.uuid4().hex[:8]}", mq,
                       connect_timeout=connect_timeout)  # the box's own client (agent/mqttclient.py)
        c.reconnect_delay_set(0.2, 5)
        set_credentials(c, mq)
        c.on_connect = self._on_connect
        c.on_subscribe = self._on_subscribe
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        c.on_disconnect = self._on_disconnect
        self.client = c
        try:
            c.connect(host, port, keepalive=30, clean_start=True)
        except (OSError, ValueError) as e:
            raise ConnectionError(f"cannot connect to {self.url}: {e}") from e
        c.loop_start()
        with self._cond:
            self._cond.wait_for(lambda: self._connected is not None or self._lost is not None, connect_timeout)
            reason, lost = self._connected, self._lost
        if reason is None or reason.is_failure:
            self.close()
            if reason is not None:
                raise ConnectionError(f"broker {self.url} refused the connection: {reason}")
            if lost is not None:
                hint = "a client certificate or the CA?" if self.url.startswith("mqtts") else "a TLS-only port?"
                raise ConnectionError(f"{self.url} closed the connection before accepting it: {lost} ({hint})")
            raise ConnectionError(f"no answer from {self.url} within {connect_timeout} s")

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # paho's network thread
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self._cond:
            self._connected = reason
            self._cond.notify_all()
            filters = list(self._watches)
        if not reason.is_failure:
            for f in filters:  # after a reconnect: a clean session has lost them
                client.subscribe(f, qos=1)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self._cond:
            if self._connected is None:
                self._lost = reason
                self._cond.notify_all()

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: list, props: Any) -> None:
        with self._cond:
            self._subacks[mid] = list(reasons)
            self._cond.notify_all()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._cond:  # paho calls this before it marks the message published
            self._pubacks[mid] = reason

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            callbacks = [cb for f, cb in self._watches.items() if mqtt.topic_matches_sub(f, msg.topic)]
        for cb in callbacks:
            try:
                cb(msg.topic, msg.payload, bool(msg.retain))
            except Exception as e:  # an exception escaping here would kill paho's thread
                print(f"{PROG}: error in message callback for {msg.topic}: {e!r}", file=sys.stderr)

    # API
    def publish(self, topic: str, payload: str | bytes, *, qos: int = 1, retain: bool = False,
                timeout: float = 10.0) -> None:
        """Publish and wait until the broker has it (PUBACK for QoS 1); raise if it did not."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as e:
            raise ConnectionError(f"publish to {topic} on {self.url} failed: {e}") from e
        if not info.is_published():
            raise TimeoutError(f"no PUBACK from {self.url} for {topic} within {timeout} s")
        with self._cond:
            reason = self._pubacks.pop(info.mid, None)
        if reason is not None and getattr(reason, "is_failure", False):
            raise ConnectionError(f"broker {self.url} refused the publish to {topic}: {reason}")

    def watch(self, topic_filter: str, callback: Callback, *, timeout: float = 10.0) -> None:
        """Subscribe (QoS 1) and wait for the SUBACK; callback(topic, payload, retain) runs in paho's thread."""
        with self._cond:
            self._watches[topic_filter] = callback
        rc, mid = self.client.subscribe(topic_filter, qos=1)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"cannot subscribe to {topic_filter} on {self.url}: {mqtt.error_string(rc)}")
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self._subacks, timeout):
                raise TimeoutError(f"no SUBACK from {self.url} for {topic_filter} within {timeout} s")
            reasons = self._subacks.pop(mid)
        failed = [r for r in reasons if getattr(r, "is_failure", False)]
        if failed:
            raise ConnectionError(f"broker {self.url} refused the subscription to {topic_filter}: {failed[0]}")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
