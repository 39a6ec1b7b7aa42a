"""A real Eclipse Mosquitto on a free loopback port, with persistence so sessions survive a restart."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on port {port} after {timeout} s") from None
            time.sleep(0.02)  # polling a port has no event to wait on


class Mosquitto:
    def __init__(self, workdir: Path, extra_conf: str = "", port: int | None = None, nodelay: bool = True):
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.extra_conf = extra_conf
        self.nodelay = nodelay  # as config/mosquitto/loa.conf; False only to measure Mosquitto's default (Nagle)
        self.proc: subprocess.Popen | None = None
        self.log = self.dir / "mosquitto.log"

    def conf(self) -> str:
        anonymous = "false" if "password_file" in self.extra_conf else "true"
        lines = [f"listener {self.port} 127.0.0.1", f"allow_anonymous {anonymous}",
                 "persistence true", f"persistence_location {self.dir}/",
                 "max_queued_messages 100000", f"set_tcp_nodelay {str(self.nodelay).lower()}",
                 "log_type error", "log_type warning", "log_type notice", "log_dest stderr"]
        if os.geteuid() == 0:
            lines.append("user root")
        return "\n".join(lines) + "\n" + self.extra_conf + "\n"

    def start(self) -> Mosquitto:
        path = self.dir / "mosquitto.conf"
        path.write_text(self.conf())
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(["mosquitto", "-c", str(path)], stdout=log, stderr=subprocess.STDOUT)
        wait_port(self.port, proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: mosquitto saves its persistence file
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


def passwd(path: Path, user: str, password: str) -> None:
    path.touch(mode=0o600)
    subprocess.run(["mosquitto_passwd", "-b", str(path), user, password], check=True, capture_output=True)
