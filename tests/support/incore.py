"""The core in this test's process (the daemon's own wiring, `agent.daemon.build`) on an injected wall
clock, with no link: commands go straight to the intake, events are read back from the real SQLite
outbox. For what needs the clock moved (a week of schedules, a board's playlist, a power schedule)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from agent import config
from agent.daemon import build
from agent.messages import Call, Wake
from agent.store import Store
from loa_console.keys import load_private_key, make_claims, sign


class InjectedClock:
    """Wall time that runs at real speed from wherever the test last set it."""

    def __init__(self, start: float):
        self.offset = start - time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def jump(self, to: float) -> None:
        self.offset = to - time.monotonic()


class InCore:
    def __init__(self, tmp: Path, keys: dict[str, Path], settings: dict, *, start: float):
        self.state = tmp / "state"
        base = {
            "device": {"id": "GL-0001", "areas": ["64"]},
            "security": {"keys": {"prov-1": str(keys["prov-1"].with_suffix(".pub"))}},
            "paths": {"state_dir": str(self.state), "socket": str(tmp / "agent.sock")},
            "audio": {"backend": "null"}, "amp": {"warmup_s": 0, "hold_s": 0.2},
        }
        for key, value in settings.items():
            base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
        self.cfg = config.parse(yaml.safe_dump(base, allow_unicode=True))
        self.key = load_private_key(keys["prov-1"])
        self.clock = InjectedClock(start)
        self.core = build(self.cfg, Store(self.state), clock=self.clock)
        self.reader = Store(self.state, readonly=True)
        self.runner = threading.Thread(target=self.core.run, daemon=True)

    def __enter__(self) -> InCore:
        self.runner.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.core.stop()
        self.core.post(Wake())
        self.runner.join(15)
        self.reader.close()

    def send(self, type_: str, params: dict | None = None, *, topic: str = "ttcs/v1/dev/GL-0001/cmd",
             kind: str = "cmd", **claims: Any) -> str:
        body = make_claims(type_, params, iat=int(self.clock()) - 1, **claims)
        token = sign(body, self.key, "prov-1").encode()
        self.core.post(Call(lambda: self.core.intake(topic, kind, token, ack=lambda: None)))
        return body["jti"]

    def schedule(self, version: int, items: list[dict], tz: str = "Asia/Ho_Chi_Minh") -> str:
        return self.send("schedule", None, topic="ttcs/v1/dev/GL-0001/schedule", kind="schedule", lifetime_s=None,
                         version=version, tz=tz, items=items)

    def outbox(self) -> list[dict]:
        rows = self.reader.db.execute("SELECT payload FROM outbox ORDER BY seq").fetchall()
        return [json.loads(r[0]) for r in rows]

    def events(self, kind: str) -> list[dict]:
        return [p["data"] for p in self.outbox() if p.get("kind") == kind]

    def acks(self, jti: str) -> list[dict]:
        return [p for p in self.outbox() if "status" in p and p.get("id") == jti]

    def local(self, type_: str, params: dict) -> Any:
        """A technician's operation (`loa`), as the local socket runs it."""
        return self.call(lambda: self.core.local(type_, params, lambda jti, result: None))

    def call(self, fn: Any, timeout: float = 10.0) -> Any:
        """Run fn on the core thread and return its result."""
        done = threading.Event()
        out: dict = {}

        def run() -> None:
            try:
                out["value"] = fn()
            finally:
                done.set()
        self.core.post(Call(run))
        if not done.wait(timeout):
            raise TimeoutError("the core did not answer")
        return out.get("value")
