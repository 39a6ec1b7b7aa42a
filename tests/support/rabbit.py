"""A real RabbitMQ cluster on this machine, with its MQTT plugin: nodes with names, ports, data, Erlang cookie and
port mapper (epmd) all private to a work directory, started as this process's own children and stopped by PID.
Nothing of the Debian service (/var/lib/rabbitmq, the system epmd on 4369) is used or touched.

Three nodes by default: the MQTT plugin of RabbitMQ 3.8-3.12 tracks client ids in a Raft cluster and accepts no
new MQTT connection when a majority of nodes is down, so a two-node cluster cannot fail over (its docs say so)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from .mosquitto import free_port, wait_port

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
CTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")
PLUGINS = Path("/usr/lib/rabbitmq/lib")


def available() -> str | None:
    """None when a cluster can be started here, else why not."""
    if not SERVER.exists() or not shutil.which("epmd"):
        return "RabbitMQ is not installed (Debian: apt-get install rabbitmq-server)"
    if not any(PLUGINS.glob("rabbitmq_server-*/plugins/rabbitmq_mqtt-*")):
        return "RabbitMQ's MQTT plugin is missing"
    return None


def version() -> str:
    found = sorted(PLUGINS.glob("rabbitmq_server-*"))
    return found[-1].name.split("-", 1)[1] if found else "?"


class RabbitNode:
    def __init__(self, cluster: RabbitCluster, index: int):
        self.cluster = cluster
        self.name = f"loa{index}@localhost"
        self.dir = cluster.dir / f"node{index}"
        self.port = free_port()  # MQTT
        self.amqp_port = free_port()
        self.dist_port = free_port()
        self.proc: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        d = self.dir
        return {**self.cluster.env(), "RABBITMQ_NODENAME": self.name, "RABBITMQ_NODE_PORT": str(self.amqp_port),
                "RABBITMQ_DIST_PORT": str(self.dist_port), "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
                "RABBITMQ_LOG_BASE": str(d / "log"), "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
                "RABBITMQ_PID_FILE": str(d / "rabbit.pid"), "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
                "RUNNING_UNDER_SYSTEMD": "true"}  # exec the Erlang VM: our child's PID is the node itself

    def write(self) -> None:
        for sub in ("mnesia", "log"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "rabbitmq-env.conf").write_text("")
        (self.dir / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        (self.dir / "rabbitmq.conf").write_text("\n".join([
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}",
            f"mqtt.listeners.tcp.default = 127.0.0.1:{self.port}",
            "mqtt.allow_anonymous = true",
            "mqtt.tcp_listen_options.nodelay = true",  # Mosquitto's set_tcp_nodelay: no Nagle delay on commands
            "mqtt.subscription_ttl = 604800000",  # a box's session lives 7 days offline, as its own setting
            # quorum: a box's session is replicated and survives its node; classic (the default) dies with it
            f"mqtt.durable_queue_type = {self.cluster.queues}",
            "loopback_users = none",
            "log.console = false", "log.file.level = warning",
            "cluster_partition_handling = ignore",
        ]) + "\n")

    def start(self) -> None:
        self.write()
        with open(self.dir / "stdout.log", "ab") as log:
            self.proc = subprocess.Popen([str(SERVER)], env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.dir, start_new_session=True)

    def ctl(self, *args: str, timeout: float = 120) -> str:
        out = subprocess.run([str(CTL), "-n", self.name, *args], env=self.env(), capture_output=True, text=True,
                             timeout=timeout)
        if out.returncode:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {self.name}: {out.stdout}{out.stderr}")
        return out.stdout

    def await_startup(self, timeout: float = 120) -> None:
        """Until the node runs (`wait` follows its pid file from the VM's start, where await_startup would fail
        before the node has registered with epmd)."""
        self.ctl("wait", str(self.dir / "rabbit.pid"), "--timeout", str(int(timeout)), timeout=timeout + 10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9 the node (its whole process group: the VM and its port helpers), as a crash would."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)  # the VM shuts the node down cleanly on SIGTERM
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()

    @property
    def address(self) -> dict:
        return {"host": "127.0.0.1", "port": self.port}


class RabbitCluster:
    def __init__(self, workdir: Path, size: int = 3, queues: str = "quorum"):
        self.dir = workdir
        self.queues = queues
        self.dir.mkdir(parents=True, exist_ok=True)
        self.home = self.dir / "home"  # $HOME: where Erlang and rabbitmqctl read the cookie
        self.epmd_port = free_port()
        self.epmd: subprocess.Popen | None = None
        self.nodes = [RabbitNode(self, i + 1) for i in range(size)]

    def env(self) -> dict[str, str]:
        return {**os.environ, "HOME": str(self.home), "ERL_EPMD_PORT": str(self.epmd_port),
                "ERL_EPMD_ADDRESS": "127.0.0.1", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}

    def start(self) -> RabbitCluster:
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(os.urandom(16).hex().upper())
            cookie.chmod(0o400)
        self.epmd = subprocess.Popen(["epmd", "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                                     env=self.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        wait_port(self.epmd_port, proc=self.epmd)
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.await_startup()
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.name)
            node.ctl("start_app")
            node.await_startup()
        for node in self.nodes:
            wait_port(node.port, timeout=60, proc=node.proc)
        return self

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        if self.epmd and self.epmd.poll() is None:
            os.killpg(self.epmd.pid, signal.SIGTERM)
            self.epmd.wait(10)
