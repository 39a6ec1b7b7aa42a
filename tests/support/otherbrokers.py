"""Brokers beside Mosquitto and RabbitMQ that install from the registries reachable here, for scripts/interop:
amqtt (PyPI), kept out of the project's venv (its dependencies are not the agent's): `python3 -m venv
/opt/amqtt && /opt/amqtt/bin/pip install amqtt`, then LOA_AMQTT=/opt/amqtt/bin/amqtt or amqtt on PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .measure import stop
from .mosquitto import free_port, wait_port


def amqtt_path() -> str | None:
    return os.environ.get("LOA_AMQTT") or shutil.which("amqtt")


def amqtt_version() -> str | None:
    path = amqtt_path()
    if not path:
        return None
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    return out.stdout.strip().split()[-1] if out.returncode == 0 and out.stdout.strip() else None


class Amqtt:
    """One amqtt broker on a free loopback port, anonymous, its logs in its work directory."""

    def __init__(self, workdir: Path, exe: str):
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.exe = exe
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> Amqtt:
        conf = self.dir / "amqtt.yaml"
        conf.write_text(f"listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:{self.port}\nplugins:\n"
                        "  amqtt.plugins.authentication.AnonymousAuthPlugin:\n    allow_anonymous: true\n")
        with open(self.dir / "amqtt.log", "ab") as log:
            self.proc = subprocess.Popen([self.exe, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
        wait_port(self.port, timeout=30, proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc:
            stop(self.proc)
