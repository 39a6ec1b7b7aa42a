"""An update lab: a real Mosquitto, the province's client, an HTTP server for bundles and one box installed from a
bundle into a temporary prefix and run by loa-boot under a supervisor (tests/support/supervised.py).
tests/test_update.py and scripts/update-drill use it."""

from __future__ import annotations

import json
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .agentproc import deep_merge
from .bundles import Bundles
from .fileserver import FileServer
from .mosquitto import Mosquitto
from .province import Province
from .supervised import SupervisedBox
from .updates import broken_source, install_box

# Fast for a lab: the gate, the boot counter and the retries of a real box take minutes.
LAB_UPDATE = {"health_timeout_s": 2, "max_boots": 2, "retry_s": 0.2, "download_retries": 1}


@dataclass(frozen=True)
class Built:
    path: Path
    sha256: str
    version: str


class UpdateLab:
    def __init__(self, tmp: Path, bundles: Bundles, *, command_key: Path, release_key: Path, kid: str = "rel-1",
                 rate: int | None = None, config: dict[str, Any] | None = None):
        self.tmp, self.bundles, self.release_key, self.kid = tmp, bundles, release_key, kid
        self.broker = Mosquitto(tmp / "broker").start()
        self.province = Province(self.broker.port, command_key)
        self.www = tmp / "www"
        self.www.mkdir(parents=True, exist_ok=True)
        self.server = FileServer(self.www, rate).__enter__()
        self.command_key = command_key
        self.config = deep_merge({
            "security": {"release_keys": {kid: str(release_key.with_suffix(".pub"))}},
            "update": LAB_UPDATE,
        }, config or {})
        self.box: SupervisedBox | None = None

    def build(self, version: str, *, broken: bool = False, key: Path | None = None, kid: str | None = None) -> Built:
        """A bundle of this checkout stamped `version` (`broken`: its agent dies at start), served over HTTP."""
        source = broken_source(self.tmp / f"src-{version}") if broken else None
        path, digest = self.bundles(version, key or self.release_key, kid or self.kid, source=source)
        return self.serve(path, digest, version)

    def serve(self, path: Path, digest: str, version: str) -> Built:
        (self.www / digest).mkdir(exist_ok=True)
        shutil.copy(path, self.www / digest / path.name)
        return Built(path, digest, version)

    def url(self, built: Built) -> str:
        return self.server.url(f"{built.sha256}/{built.path.name}")

    def install(self, built: Built) -> SupervisedBox:
        """The box, installed from `built` (not started)."""
        layout = install_box(self.tmp / "prefix", built.path, {self.kid: self.release_key.with_suffix(".pub")})
        self.box = SupervisedBox(self.tmp, self.broker.port, layout.root,
                                 keys={"prov-1": self.command_key.with_suffix(".pub")}, config=self.config)
        return self.box

    def start(self, timeout: float = 60.0) -> dict:
        """Start the box; its retained `online` status once it is connected."""
        assert self.box is not None
        mark = self.province.mark()
        self.box.start(wait_ready=False)
        return self.province.status("online", after=mark, timeout=timeout)

    def update(self, built: Built, **extra: Any) -> str:
        """Send the signed `update` command for `built`; its jti."""
        return self.province.send("update", {"version": built.version, "url": self.url(built),
                                             "sha256": built.sha256, **extra})

    def reached(self, built: Built, step: str) -> bool:
        """Whether the update to `built` is at `step`, read from the box's files (cheap enough to poll):
        download (a partial file is growing), unpack (its release directory exists, not yet complete),
        switch (update.json names it pending), first-start (it is current and still pending)."""
        assert self.box is not None
        root, state = self.box.root, self.box.root / "update.json"
        pending = (json.loads(state.read_text() or "{}").get("pending") or {}) if state.exists() else {}
        release = root / "releases" / built.version
        if step == "download":
            part = self.box.state_dir / "cache" / f".part-{built.sha256}"
            return part.exists() and part.stat().st_size > 0
        if step == "unpack":
            return release.exists() and not (release / ".complete").exists()
        if step == "switch":
            return pending.get("version") == built.version
        if step == "first-start":
            return pending.get("version") == built.version and self.running() == built.version
        raise ValueError(step)

    def kill(self, target: str = "agent") -> str:
        """kill -9 of the agent's main process, or of `updater`: a child the agent runs (pip installing a
        release), else the main process. Returns what was killed."""
        assert self.box is not None and self.box.proc is not None
        main = self.box.proc.pid
        if target == "updater":
            for child in _children(main):
                os.kill(child, signal.SIGKILL)
                return f"child {child}"
        self.box.kill()
        return f"agent {main}"

    def running(self) -> str | None:
        """The version `current` points at (None if it points nowhere complete)."""
        assert self.box is not None
        current = (self.box.root / "current").resolve()
        return current.name if (current / ".complete").exists() else None

    def close(self) -> None:
        if self.box is not None:
            self.box.close()
        self.server.__exit__(None, None, None)
        self.province.close()
        self.broker.stop()


def _children(pid: int) -> list[int]:
    """Processes of `pid`'s process group other than itself (loa-boot runs as its own group's leader)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != pid:
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pid:  # pgrp
                out.append(int(entry.name))
    return out
