"""`loa-agent --config PATH`: wire the layers together and run until stopped (systemd Type=notify)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from . import __version__, config
from .errors import ConfigError, DriverError, IpcError

if TYPE_CHECKING:
    from .core import Core
    from .store import Store

log = logging.getLogger("agent")


def build(cfg: dict, store: Store, **core_args: Any) -> Core:
    """The core with its player, scheduler and prefetcher (no frontends): the daemon's, or a test's."""
    from .alerting import Alerts
    from .audio.player import Player
    from .core import Core
    from .maintenance import Maintenance
    from .monitor import Monitor
    from .prefetch import Prefetcher
    from .scheduler import Scheduler
    from .selftest import SelfTest
    from .sensors import Sensors

    core = Core(cfg, store, **core_args)
    core.player = Player(core)
    core.scheduler = Scheduler(core)
    core.prefetcher = Prefetcher(core)
    core.alerts = Alerts(core)
    core.selftest = SelfTest(core)
    core.sensors = Sensors(core)
    core.monitor = Monitor(core)
    core.maintenance = Maintenance(core)
    if "display" in cfg["device"]["capabilities"]:
        from .display.board import Board

        core.board = Board(core)
    return core


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="loa-agent", description="Edge agent for commune IP loudspeakers and e-boards")
    ap.add_argument("--config", default=os.environ.get("LOA_CONFIG", config.DEFAULT_PATH), help="YAML config file")
    ap.add_argument("--version", action="version", version=f"loa-agent {__version__}")
    args = ap.parse_args(argv)

    try:
        cfg = config.load(args.config)
    except ConfigError as e:
        for problem in e.problems:
            print(f"loa-agent: config: {problem}", file=sys.stderr)
        return 2

    from .ipc import IpcServer
    from .link import Link
    from .logbuffer import setup
    from .sdnotify import Notifier
    from .store import Store

    ring = setup(cfg["log"]["level"], cfg["log"]["buffer_lines"])
    try:
        store = Store(cfg["paths"]["state_dir"])
    except OSError as e:
        log.error("cannot open the state directory %s: %s", cfg["paths"]["state_dir"], e)
        return 1
    overrides = store.get_json("config_overrides", {})
    if overrides:
        try:
            cfg = config.load(args.config, overrides)
        except ConfigError as e:  # the file changed under old overrides: the file wins
            log.error("ignoring remote config overrides that no longer fit: %s", e)
    try:
        core = build(cfg, store, notifier=Notifier(), ring=ring)
    except DriverError as e:  # a backend the config names but this box cannot load: say so, do not guess
        log.error("%s", e)
        return 2
    core.link = Link(cfg, core.post, boot_id=core.boot_id, areas=cfg["device"]["areas"])
    ipc = IpcServer(cfg["paths"]["socket"], core.post)
    try:
        ipc.start()
    except (OSError, IpcError) as e:
        log.error("cannot open the control socket: %s", e)
        return 1

    def on_signal(signum: int, frame: object) -> None:
        core.running = False
        core.post(("noop",))  # SimpleQueue.put is reentrant: safe from a signal handler

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("loa-agent %s starting as %s (boot %s)", __version__, cfg["device"]["id"], core.boot_id)
    core.link.start()
    core.run()

    core.notify("STOPPING=1")
    core.link.stop()
    ipc.stop()
    store.close()
    log.info("stopped%s", " for a restart" if core.restart_requested else "")
    if core.restart_requested:
        logging.shutdown()
        os.execv(sys.executable, [sys.executable, "-m", "agent", "--config", args.config])
    return 0


if __name__ == "__main__":
    sys.exit(main())
