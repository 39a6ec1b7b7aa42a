"""The MQTT link (frontend): owns the paho-mqtt 2 client, the subscriptions and the reconnect loop, which goes
through `mqtt.hosts` in order and moves on when the broker in use fails (docs/protocol.md, "Several brokers").

Every paho callback only posts a message (agent/messages.py) to the core and returns; each is wrapped
so that no exception can escape into paho's network thread.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from . import __version__
from .brokers import address
from .messages import LinkConnected, LinkDisconnected, LinkMessage, LinkPublished, LinkRefused, Post
from .mqttclient import AUTH_FAILURES, Client, new_client, set_credentials
from .timeutil import rfc3339
from .topics import Topics

log = logging.getLogger("agent.link")


def _guarded(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except Exception:  # an exception escaping here would silently kill paho's thread
            log.exception("error in MQTT callback %s", fn.__name__)
    return wrapper


class Link:
    def __init__(self, cfg: dict, post: Post, *, boot_id: str, areas: list[str],
                 rng: random.Random | None = None):
        self.cfg = cfg["mqtt"]
        self.device_id = cfg["device"]["id"]
        self.post = post
        self.boot_id = boot_id
        self.rng = rng or random.Random()
        self.topics = Topics(self.cfg["topic_prefix"], self.device_id)
        self.subs = self.topics.subscriptions(areas)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = False
        self.generation = 0
        self.connected_since: float | None = None
        self.attempts = 0
        self.last_error: str | None = None
        self.auth_failed = False
        self._answered = False  # a CONNACK came back on the current attempt
        self.hosts: list[dict] = self.cfg["hosts"]  # tried in order (agent/brokers.py)
        self.current = 0  # index of the broker in use, or being tried
        self._held: dict[int, set[str]] = {}  # per broker: the topics its copy of our session is subscribed to
        self.client = self._make_client()

    # --- set-up -----------------------------------------------------------------------
    def _make_client(self) -> Client:
        c = new_client(self.device_id, self.cfg, manual_ack=True, persistent=True)
        c.max_inflight_messages_set(20)
        c.will_set(self.topics.status, self._status("lost"), qos=1, retain=True)
        c.on_connect = _guarded(self._on_connect)
        c.on_disconnect = _guarded(self._on_disconnect)
        c.on_message = _guarded(self._on_message)
        c.on_publish = _guarded(self._on_publish)
        c.on_subscribe = _guarded(self._on_subscribe)
        return c

    def _load_credentials(self) -> None:
        """Read the password file before every attempt: a technician's fix applies without a restart."""
        try:
            set_credentials(self.client, self.cfg)
        except OSError as e:
            self._note_error(f"cannot read mqtt.password_file: {e}")

    def _status(self, state: str) -> bytes:
        return json.dumps({"state": state, "device_id": self.device_id, "boot_id": self.boot_id,
                           "at": rfc3339(), "agent_version": __version__}).encode()

    @property
    def broker(self) -> str:
        """The broker in use, or being tried, as a URL (`loa status` shows it)."""
        return f"{'mqtts' if self.cfg.get('tls') else 'mqtt'}://{address(self.hosts[self.current])}"

    @property
    def in_use(self) -> str | None:
        """`host:port` of the broker this box is connected to (the heartbeat's `net.broker`); None when offline."""
        return address(self.hosts[self.current]) if self.connected else None

    # --- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mqtt-link", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 3.0) -> None:
        """Clean stop: retained `offline`, then a normal DISCONNECT (so the broker drops the will)."""
        if self.connected:
            try:
                info = self.client.publish(self.topics.status, self._status("offline"), qos=1, retain=True)
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as e:
                log.warning("could not publish offline status: %s", e)
        self._stop.set()
        self.client.disconnect()
        if self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        jitter = self.rng.uniform(0, self.cfg["boot_jitter_s"])
        if jitter:
            log.info("boot jitter: first connection in %.1f s", jitter)
        if self._stop.wait(jitter):
            return
        failures = 0  # rounds (of the whole list) without a stable connection
        tried = 0  # brokers that failed to answer since the round began
        rc = self.cfg["reconnect"]
        while not self._stop.is_set():
            self._attempt()
            if self._stop.is_set():
                break
            since, self.connected_since = self.connected_since, None
            # Whatever failed, the next broker is next: a dead node is left behind, not retried first.
            self.current = (self.current + 1) % len(self.hosts)
            if since is None:  # this broker did not take us: the next one at once, the wait once per round
                tried += 1
                if tried < len(self.hosts):
                    continue
            tried = 0  # a round ends here; after losing the broker in use, a new one begins at the next
            failures = 0 if since is not None and time.monotonic() - since >= rc["stable_s"] else failures + 1
            if self.auth_failed:
                delay = rc["auth_retry_s"]
            else:  # full jitter (AWS architecture blog): spreads a province's boxes over the window
                delay = min(rc["cap_s"], rc["base_s"] * 2 ** min(failures, 30))
                delay = self.rng.uniform(0, delay) if rc["jitter"] else delay
            log.debug("reconnecting to %s in %.1f s", self.broker, delay)
            self._stop.wait(delay)

    def _attempt(self) -> None:
        """One connection to the current broker, until it closes (or never opens)."""
        h = self.hosts[self.current]
        self.attempts += 1
        log.info("connecting to %s (attempt %d)", self.broker, self.attempts)  # bench_storm counts these
        self._load_credentials()
        try:
            props = Properties(PacketTypes.CONNECT)  # MQTT 5 only: mqttclient.Client drops it for 3.1.1
            props.SessionExpiryInterval = self.cfg["session_expiry_s"]
            self.client.connect(h["host"], h["port"], keepalive=self.cfg["keepalive_s"], clean_start=False,
                                properties=props)
        except Exception as e:  # refused, unreachable, TLS: all mean "try again later"
            self._note_error(f"cannot connect to {self.broker}: {e}")
            return
        self._answered = False
        rc_loop = self._loop_until_closed()
        if not self._answered and not self._stop.is_set():
            # Closed before any CONNACK: typically TLS refusing our certificate after the handshake.
            self._note_error(f"{self.broker} closed the connection before accepting it ({rc_loop}); "
                             "check the client certificate and the broker's TLS settings")

    def _loop_until_closed(self) -> str:
        while not self._stop.is_set():
            try:
                rc = self.client.loop(timeout=0.5)
            except Exception as e:  # e.g. ssl.SSLError surfacing from a read
                return f"{type(e).__name__}: {e}"
            if rc != mqtt.MQTT_ERR_SUCCESS:
                return mqtt.error_string(rc)
        return "stopping"

    def _note_error(self, text: str) -> None:
        if text != self.last_error:
            log.warning("%s", text)
        self.last_error = text

    # --- paho callbacks (network thread): post and return -------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._answered = True
        if reason.is_failure:
            self.auth_failed = reason.value in AUTH_FAILURES
            self._note_error(f"broker {self.broker} refused the connection: {reason}"
                             + (" (check mqtt.username / password_file / client certificate)" if self.auth_failed
                                else ""))
            self.post(LinkRefused(str(reason), self.auth_failed))
            return
        with self._lock:
            self.connected = True
            self.generation += 1
            self.connected_since = time.monotonic()
            subs = dict(self.subs)
            held = self._held.get(self.current, set()) if flags.session_present else set()
            self._held[self.current] = set(subs)
        self.auth_failed = False
        self.last_error = None
        log.info("connected to %s (session present: %s)", self.broker, flags.session_present)
        gone = sorted(held - set(subs))  # areas changed while this broker kept our session
        if gone:
            self.client.unsubscribe(gone)
        # MQTT 5 renews every subscription (retainHandling 1 keeps retained schedules from coming again); 3.1.1
        # would resend every retained schedule with each SUBSCRIBE, so it subscribes only what the session lacks.
        self._subscribe(subs if self.client.v5 else {t: k for t, k in subs.items() if t not in held})
        client.publish(self.topics.status, self._status("online"), qos=1, retain=True)
        self.post(LinkConnected(self.generation, flags.session_present))

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        was = self.connected
        self.connected = False
        if was:
            self._note_error(f"disconnected from {self.broker}: {reason}")
            self.post(LinkDisconnected(str(reason)))

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        kind = self.subs.get(msg.topic)
        self.post(LinkMessage(msg.topic, kind, msg.payload, msg.mid, msg.qos, bool(msg.dup), self.generation,
                              time.monotonic()))

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self.post(LinkPublished(mid, str(reason) if reason.is_failure else None))

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        bad = [str(r) for r in reasons if r.is_failure]
        if bad:
            log.error("subscription refused by the broker: %s", ", ".join(bad))

    # --- called by the core -----------------------------------------------------------
    def _subscribe(self, subs: dict[str, str]) -> None:
        if not subs:
            return
        if not self.client.v5:  # no subscription options in 3.1.1 (see _on_connect)
            self.client.subscribe([(t, 1) for t in sorted(subs)])
            return
        # Retained schedules only when the subscription is new: the stored copy covers the rest.
        self.client.subscribe([(t, SubscribeOptions(qos=1, retainHandling=1 if k == "schedule" else 0))
                               for t, k in sorted(subs.items())])

    def set_areas(self, areas: list[str]) -> None:
        new = self.topics.subscriptions(areas)
        with self._lock:
            old, self.subs = self.subs, new
            connected = self.connected
            if connected:
                self._held[self.current] = set(new)
        if connected:
            gone = sorted(set(old) - set(new))
            if gone:
                self.client.unsubscribe(gone)
            self._subscribe({t: k for t, k in new.items() if t not in old})

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int | None:
        """Queue a publish; the mid for QoS 1 (its PUBACK comes back as `link.published`), or None."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            log.warning("publish to %s failed: %s", topic, mqtt.error_string(info.rc))
            return None
        return info.mid

    def ack(self, mid: int, qos: int, generation: int) -> None:
        """PUBACK an incoming message, only on the connection it came in on (else the broker redelivers)."""
        if qos > 0 and generation == self.generation and self.connected:
            self.client.ack(mid, qos)

