"""`mqtt.hosts` and `mqtt.protocol`: the brokers a box may use, in order (the nodes of a cluster, or a primary and
a standby), and the MQTT version it speaks to them. Schema pieces and checks for agent/config.py's mqtt section.

`mqtt.host`/`mqtt.port` stay the one-broker shorthand; after validation `mqtt.hosts` always holds the list (each
entry with its port) and `mqtt.host`/`mqtt.port` name its first entry.
"""

from __future__ import annotations

from typing import Any

from .errors import SchemaError
from .schema import Int, Obj, Str

PROTOCOLS = ("5", "3.1.1")


class Protocol(Str):
    """`protocol: 5` reads as a number in YAML: take it as the version it names."""

    def __init__(self, **kw: Any):
        super().__init__(choices=PROTOCOLS, **kw)

    def check(self, value: Any, path: str) -> str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = f"{value:g}"
        return super().check(value, path)


# Per-host TLS: only what may differ between the nodes; the client certificate is the box's, for every node.
HOST_TLS = Obj({"ca": Str(min_len=1, optional=True), "server_name": Str(min_len=1, optional=True)}, optional=True)
HOST = Obj({"host": Str(min_len=1), "port": Int(min=1, max=65535, optional=True), "tls": HOST_TLS})
MAX_HOSTS = 16


def normalise(mq: dict, path: str) -> None:
    """The mqtt section's own check (after its fields): one list of brokers, each with its port."""
    if "host" in mq and "hosts" in mq:
        raise SchemaError(f"{path}.hosts", "give mqtt.host (one broker) or mqtt.hosts (a list), not both")
    given = mq.get("hosts") or [{"host": mq.get("host", "127.0.0.1")}]
    hosts = [{**h, "port": h.get("port", mq["port"])} for h in given]
    seen = set()
    for i, h in enumerate(hosts):
        if (h["host"], h["port"]) in seen:
            raise SchemaError(f"{path}.hosts[{i}]", f"{address(h)} is listed twice")
        seen.add((h["host"], h["port"]))
    mq["hosts"] = hosts
    mq["host"], mq["port"] = hosts[0]["host"], hosts[0]["port"]


def address(h: dict) -> str:
    """`host:port` as the heartbeat's net.broker and the logs name a broker (IPv6 in brackets)."""
    host = h["host"]
    return f"[{host}]:{h['port']}" if ":" in host else f"{host}:{h['port']}"


def problems(mq: dict) -> list[str]:
    """Per-host TLS needs the shared mqtt.tls: a box never mixes a plain node with TLS ones (a downgrade)."""
    out = []
    for i, h in enumerate(mq["hosts"]):
        if h.get("tls") and not mq.get("tls"):
            out.append(f"mqtt.hosts[{i}].tls: overrides mqtt.tls, which is not set (TLS applies to every host)")
    return out
