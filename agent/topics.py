"""MQTT topic names, built and parsed in one place (docs/protocol.md, "Topics").

`P/dev/D/{cmd,schedule,ack,status,heartbeat,event}`, `P/area/A/{cmd,schedule}`
and `P/all/cmd`. The link subscribes with these, the core publishes acks and
events to them, the scheduler keys its documents by them and the provincial
console addresses boxes with `target()`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_BAD_CHARS = set("/+#\0")  # never inside one topic level
INBOUND = ("cmd", "schedule")


def _check_prefix(prefix: str) -> str:
    prefix = prefix.rstrip("/")
    if not prefix or _BAD_CHARS & set(prefix.replace("/", "")):
        raise ValueError(f"bad topic prefix {prefix!r}")
    return prefix


@dataclass(frozen=True)
class Inbound:
    """What an inbound topic addresses: `scope` is "dev", "area" or "all"; `name` the device id or area code."""

    kind: str
    scope: str
    name: str = ""

    @property
    def schedule_key(self) -> str:
        """How `schedule_versions` in the heartbeat names a schedule document's source."""
        return "device" if self.scope == "dev" else self.name


class Topics:
    """The topics of one device."""

    def __init__(self, prefix: str, device_id: str):
        self.prefix = _check_prefix(prefix)
        self.device_id = device_id
        self.base = base = f"{self.prefix}/dev/{device_id}"  # the device's topics are base/KIND
        self.ack, self.status, self.heartbeat, self.event = (f"{base}/{k}" for k in ("ack", "status", "heartbeat",
                                                                                      "event"))
        self.cmd, self.schedule = f"{base}/cmd", f"{base}/schedule"

    def area(self, code: str, kind: str) -> str:
        return f"{self.prefix}/area/{code}/{kind}"

    def subscriptions(self, areas: list[str]) -> dict[str, str]:
        """topic -> kind ("cmd" or "schedule") for the device, each area and the fleet."""
        subs = {self.cmd: "cmd", f"{self.prefix}/all/cmd": "cmd", self.schedule: "schedule"}
        for code in areas:
            subs[self.area(code, "cmd")] = "cmd"
            subs[self.area(code, "schedule")] = "schedule"
        return subs

    def schedules(self, areas: list[str]) -> set[str]:
        """The schedule topics this device merges: its own and each of its areas'."""
        return {t for t, kind in self.subscriptions(areas).items() if kind == "schedule"}

    def parse(self, topic: str) -> Inbound | None:
        """An inbound topic of this prefix, or None for anything else."""
        if not topic.startswith(self.prefix + "/"):
            return None
        parts = topic[len(self.prefix) + 1:].split("/")
        if parts == ["all", "cmd"]:
            return Inbound("cmd", "all")
        if len(parts) == 3 and parts[0] in ("dev", "area") and parts[2] in INBOUND and parts[1]:
            return Inbound(parts[2], parts[0], parts[1])
        return None


def target(prefix: str, target: str, kind: str) -> str:
    """The topic for a target ("dev:ID", "area:CODE" or "all") and kind ("cmd" or "schedule").

    There is no fleet-wide schedule topic: ("all", "schedule") is a ValueError, like any bad input.
    """
    if kind not in INBOUND:
        raise ValueError(f"bad topic kind {kind!r}: expected 'cmd' or 'schedule'")
    prefix = _check_prefix(prefix)
    if target == "all":
        if kind != "cmd":
            raise ValueError("schedules go to dev:ID or area:CODE; there is no fleet-wide schedule topic")
        return f"{prefix}/all/cmd"
    scope, sep, name = target.partition(":")
    if sep and scope == "dev":
        if not DEVICE_ID.fullmatch(name):
            raise ValueError(f"bad device id in {target!r}: expected 1-64 of A-Z a-z 0-9 _ -")
        return f"{prefix}/dev/{name}/{kind}"
    if sep and scope == "area":
        if not name or _BAD_CHARS & set(name):
            raise ValueError(f"bad area code in {target!r}")
        return f"{prefix}/area/{name}/{kind}"
    raise ValueError(f"bad target {target!r}: expected dev:ID, area:CODE or all")
