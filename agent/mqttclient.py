"""The one place a paho-mqtt 2 client is built: the link's, `loa doctor`'s and the console's are the same client.

Callback API 2 and MQTT 5, the connect timeout (paho applies it to the TCP connect and to the TLS handshake),
TLS from `mqtt.tls` and the user name with its password read from `mqtt.password_file` at call time.
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt

AUTH_FAILURES = {134, 135, 138, 140}  # CONNACK: bad user name or password, not authorized, banned, bad auth method


def new_client(client_id: str, mq: dict[str, Any], *, connect_timeout: float = 10.0,
               manual_ack: bool = False) -> mqtt.Client:
    """A client for the `mqtt` config section `mq` (tls, no credentials yet: see set_credentials).

    Raises OSError or ValueError when the TLS files cannot be loaded (ssl.SSLError is an OSError).
    """
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                    manual_ack=manual_ack)
    c.connect_timeout = connect_timeout
    tls = mq.get("tls")
    if tls:
        c.tls_set(ca_certs=_path(tls.get("ca")), certfile=_path(tls.get("cert")), keyfile=_path(tls.get("key")))
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
