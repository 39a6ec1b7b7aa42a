"""Run the real agent as a subprocess, as systemd would: NOTIFY_SOCKET is a real datagram socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class NotifySocket:
    """The receiving end of sd_notify, as systemd holds it. `follow` reads it on a thread of its own, so that
    every datagram is stamped when it arrives (benchmarks time restarts with it); otherwise it is read while
    `wait_for` waits."""

    def __init__(self, path: Path, follow: bool = False):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[tuple[float, str]] = []
        self.cond = threading.Condition()
        self.following = follow
        if follow:
            threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096).decode()
            except OSError:
                return
            if not data:
                return  # shut down by close()
            with self.cond:
                self.messages.append((time.monotonic(), data))
                self.cond.notify_all()

    def mark(self) -> int:
        with self.cond:
            return len(self.messages)

    def wait_for(self, line: str, timeout: float = 15.0, after: int = 0) -> float:
        """Block until a datagram containing `line` arrives (or arrived, from index `after` on); return its
        arrival time (monotonic)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, msg in self.messages[after:]:
                    if line in msg.splitlines():
                        return t
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {line} on NOTIFY_SOCKET within {timeout} s; got {self.messages}")
                if self.following:
                    self.cond.wait(left)
                    continue
                self.sock.settimeout(left)
                try:
                    data = self.sock.recv(4096).decode()
                except TimeoutError:
                    continue
                self.messages.append((time.monotonic(), data))

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the follower's recv
        except OSError:
            pass
        self.sock.close()


class Agent:
    def __init__(self, tmp: Path, port: int, keys: dict[str, Path] | None = None, device_id: str = "GL-0001",
                 config: dict[str, Any] | None = None):
        self.tmp = tmp
        self.dir = tmp / f"agent-{device_id}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.device_id = device_id
        self.config_path = self.dir / "agent.yaml"
        base = {
            "device": {"id": device_id, "areas": ["64", "64.23581"], "heartbeat_s": 60,
                       "location": {"lat": 13.98, "lon": 108.0},
                       "capabilities": ["speaker"]},
            "mqtt": {"host": "127.0.0.1", "port": port, "boot_jitter_s": 0,
                     "reconnect": {"base_s": 0.1, "cap_s": 0.5, "stable_s": 5, "auth_retry_s": 2}},
            "security": {"require_signed": bool(keys), "keys": {k: str(v) for k, v in (keys or {}).items()}},
            "paths": {"state_dir": str(self.dir / "state"), "socket": str(self.dir / "run" / "agent.sock")},
            "audio": {"backend": "null"},
            "log": {"level": "debug"},
        }
        self.config = deep_merge(base, config or {})
        if "hosts" in self.config["mqtt"]:  # a broker list replaces the one-host shorthand (not both)
            del self.config["mqtt"]["host"]
        self.write_config()
        self.proc: subprocess.Popen | None = None
        self.notify: NotifySocket | None = None
        self.log_path = self.dir / "agent.log"
        self.started_at = 0.0
        self.preexec: Callable[[], None] | None = None  # run in the child before exec (e.g. join a cgroup)

    def write_config(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config))

    @property
    def state_dir(self) -> Path:
        return Path(self.config["paths"]["state_dir"])

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env.update(extra)
        return env

    def start(self, wait_ready: bool = True, **env: str) -> Agent:
        assert self.proc is None or self.proc.poll() is not None, "agent already running"
        if self.notify:
            self.notify.close()
        npath = self.dir / "notify.sock"
        npath.unlink(missing_ok=True)
        self.notify = NotifySocket(npath)
        log = open(self.log_path, "ab")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "agent", "--config", str(self.config_path)],
                                     env=self.env(NOTIFY_SOCKET=str(npath), **env), stdout=log,
                                     stderr=subprocess.STDOUT, cwd=self.dir, preexec_fn=self.preexec)
        log.close()
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 20.0) -> float:
        assert self.notify and self.proc
        try:
            return self.notify.wait_for("READY=1", timeout)
        except TimeoutError:
            raise AssertionError(f"agent did not become ready; log:\n{self.log()}") from None

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cli(self, *args: str, timeout: float = 30.0, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "agent.cli", *args, "--config", str(self.config_path)],
                              env=self.env(**env), capture_output=True, text=True, timeout=timeout)

    def close(self) -> None:
        self.kill()
        if self.notify:
            self.notify.close()


def eventually(check, timeout: float = 15.0, interval: float = 0.05, what: str = "condition"):
    """Poll a condition that has no event to wait on (a file, a row count); returns its truthy value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(interval)


def audio_config(backend: str = "pyaudio", **extra: object) -> dict:
    """Fast-reacting audio settings for tests; `extra` adds or overrides config sections."""
    cfg: dict = {"audio": {"backend": backend, "stall_s": 1.5, "retry_s": 0.2, "stream_rounds": 2},
                 "amp": {"warmup_s": 0.2, "hold_s": 1.5}}
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    return cfg
