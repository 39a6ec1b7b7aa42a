"""The one place a paho-mqtt 2 client is built: the link's, `loa doctor`'s and the console's are the same client.

Callback API 2, MQTT 5 or 3.1.1 (`mqtt.protocol`) behind one API, the connect timeout (paho applies it to the TCP
connect and to the TLS handshake), TCP_NODELAY, TLS from `mqtt.tls` with the per-host overrides of `mqtt.hosts`,
and the user name with its password read from `mqtt.password_file` at call time.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties

AUTH_FAILURES = {134, 135, 138, 140}  # CONNACK: bad user name or password, not authorized, banned, bad auth method
# (paho maps MQTT 3.1.1's return codes 4 and 5 to 134 and 135, so the set holds for both protocols)


class Client(mqtt.Client):
    """paho's client whose `connect` takes the MQTT 5 arguments whatever the protocol: with 3.1.1 the session is
    chosen when the client is built (`clean_session`), so `clean_start` and the CONNECT properties are dropped."""

    def __init__(self, client_id: str, mq: dict[str, Any], *, manual_ack: bool, persistent: bool):
        self.v5 = str(mq.get("protocol", "5")) == "5"
        super().__init__(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311,
                         clean_session=None if self.v5 else not persistent, manual_ack=manual_ack)
        self.tls_by_host: TlsByHost | None = None

    def connect(self, host: str, port: int = 1883, keepalive: int = 60, bind_address: str = "",
                bind_port: int = 0, clean_start: Any = mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                properties: Properties | None = None) -> mqtt.MQTTErrorCode:
        if self.tls_by_host is not None:
            self.tls_by_host.select(host, port)
        if not self.v5:
            clean_start, properties = mqtt.MQTT_CLEAN_START_FIRST_ONLY, None
        return super().connect(host, port, keepalive, bind_address, bind_port, clean_start, properties)


class TlsByHost:
    """An ssl.SSLContext per broker of `mqtt.hosts` (they may trust another CA or carry another server name).

    paho holds this object as its one context (`tls_set_context`) and only calls `wrap_socket` and reads
    `check_hostname`; `Client.connect` selects the host's context before paho opens the socket."""

    check_hostname = True  # each context checks the server's name itself (paho then does not repeat it)

    def __init__(self, mq: dict[str, Any]):
        tls = mq["tls"]
        by_ca: dict[str | None, ssl.SSLContext] = {}

        def context(ca: str | None) -> ssl.SSLContext:  # None: the system's CAs (loa-console with only a cert)
            if ca not in by_ca:
                ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
                if tls.get("cert"):
                    ctx.load_cert_chain(str(tls["cert"]), _path(tls.get("key")))
                by_ca[ca] = ctx
            return by_ca[ca]

        self.default = (context(_path(tls.get("ca"))), tls.get("server_name"))
        self.hosts: dict[tuple[str, int], tuple[ssl.SSLContext, str | None]] = {}
        for h in mq.get("hosts") or ():
            own = h.get("tls") or {}
            self.hosts[(h["host"], h["port"])] = (context(_path(own.get("ca") or tls.get("ca"))),
                                                  own.get("server_name") or tls.get("server_name"))
        self.selected = self.default

    def select(self, host: str, port: int) -> None:
        self.selected = self.hosts.get((host, port), self.default)

    def wrap_socket(self, sock: socket.socket, server_hostname: str | None = None, **kw: Any) -> ssl.SSLSocket:
        ctx, name = self.selected
        return ctx.wrap_socket(sock, server_hostname=name or server_hostname, **kw)


def _nodelay(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    """paho leaves Nagle's algorithm on: an ack right after an `accepted` would wait for the broker's delayed
    ACK (~40 ms on Linux). Commands, acks and events are small and must go at once."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):  # not a TCP socket (a unix socket, a websocket wrapper)
        pass


def new_client(client_id: str, mq: dict[str, Any], *, connect_timeout: float = 10.0,
               manual_ack: bool = False, persistent: bool = False) -> Client:
    """A client for the `mqtt` config section `mq` (tls, no credentials yet: see set_credentials).

    `persistent`: with MQTT 3.1.1, a session the broker keeps (`clean_session=False`); with MQTT 5 the caller
    says it at connect (`clean_start`, SessionExpiryInterval). Raises OSError or ValueError when the TLS files
    cannot be loaded (ssl.SSLError is an OSError).
    """
    c = Client(client_id, mq, manual_ack=manual_ack, persistent=persistent)
    c.connect_timeout = connect_timeout
    c.on_socket_open = _nodelay
    if mq.get("tls"):
        c.tls_by_host = TlsByHost(mq)
        c.tls_set_context(c.tls_by_host)  # type: ignore[arg-type]  # duck-typed: see TlsByHost
    return c


def set_credentials(client: mqtt.Client, mq: dict[str, Any]) -> None:
    """mqtt.username with the password read from mqtt.password_file now (OSError if it cannot be read)."""
    if not mq.get("username"):
        return
    password = None
    if mq.get("password_file"):
        with open(mq["password_file"], encoding="utf-8") as f:
            password = f.read().strip()
    client.username_pw_set(mq["username"], password)


def _path(p: Any) -> str | None:
    return str(p) if p else None
