"""`loa-agent --config PATH`: wire the layers together and run until stopped (systemd Type=notify)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__, config
from .errors import ConfigError, DriverError, IpcError

if TYPE_CHECKING:
    from .audio.reading import Reader
    from .core import Core
    from .logbuffer import RingHandler
    from .sdnotify import Notifier
    from .store import Store

log = logging.getLogger("agent")


def build(cfg: dict, store: Store, *, clock: Callable[[], float] = time.time, connect: bool = False,
          boot_id: str | None = None, notifier: Notifier | None = None, ring: RingHandler | None = None) -> Core:
    """The whole agent but its local socket: the daemon's, or a test's. Every driver is made once, here, and
    every part gets what it uses in its constructor. `connect` adds the MQTT link (started by the caller)."""
    import drivers

    from .alerting import Alerts
    from .asrun import AsRun
    from .audio.amp import Amp
    from .audio.player import Player
    from .audio.tts import Speaker
    from .core import Core, Parts, self_check
    from .faults import Faults
    from .health import Health
    from .link import Link
    from .loop import Loop
    from .maintenance import Maintenance
    from .media import DownloadLimits, MediaCache
    from .monitor import Monitor
    from .outbox import Outbox
    from .prefetch import Prefetcher
    from .releases import running_layout
    from .scheduler import Scheduler
    from .selftest import SelfTest
    from .sensors import Sensors
    from .services import Services
    from .topics import Topics
    from .updater import Updater

    boot_id = boot_id or str(uuid.uuid4())
    state = Path(cfg["paths"]["state_dir"])
    loop = Loop()
    link = Link(cfg, loop.post, boot_id=boot_id, areas=cfg["device"]["areas"]) if connect else None
    outbox = Outbox(store, Topics(cfg["mqtt"]["topic_prefix"], cfg["device"]["id"]), clock, link)
    faults = Faults(outbox.event, clock, raise_after=cfg["health"]["raise_after"],
                    clear_after=cfg["health"]["clear_after"])
    rt = Services(cfg, clock, loop, outbox, faults)

    # Drivers, once each.
    gpio = drivers.load("gpio", cfg["gpio"]["backend"])(cfg["gpio"])
    audio = drivers.load("audio", cfg["audio"]["backend"])(cfg["audio"], loop.post)
    cache = MediaCache(state / "cache", DownloadLimits.of(cfg["cache"]))

    def reader() -> Reader:  # loaded when speech is first needed (config.load has checked the files)
        from .audio.reading import reader_for

        return reader_for(cfg)  # again after a lexicon file changes

    speaker = Speaker(state / "tts", reader=reader)  # every spoken text, schedules' and alerts', read alike
    amp = Amp(gpio, cfg["zones"], cfg["amp"], call_later=loop.call_later, cancel=loop.cancel, fault=faults.set)
    health = Health(str(state), proc=cfg["health"]["proc"], sys=cfg["health"]["sys"])

    # Components, each with what it uses.
    player = Player(rt, store, audio=audio, gpio=gpio, amp=amp, cache=cache, speaker=speaker)
    scheduler = Scheduler(rt, store, player=player, cache=cache, topics=outbox.topics)
    prefetcher = Prefetcher(rt, cache, scheduler.schedule)
    scheduler.on_change(prefetcher.schedule_changed)
    board = None
    if "display" in cfg["device"]["capabilities"]:
        from .display.board import Board, make_screen

        board = Board(rt, make_screen(cfg, clock, loop.post), cache, scheduler.schedule)
        scheduler.on_change(board.reload)
    alerts = Alerts(rt, store, player=player, speaker=speaker, cache=cache, board=board)
    sensors = Sensors(rt, gpio, amp)
    maintenance = Maintenance(rt, player, alerts)
    monitor = Monitor(rt, health, synced=lambda: store.synced,
                      then=(outbox.flush_unwritten, sensors.check_amp, maintenance.tick))
    updater = Updater(rt, layout=running_layout(), cache=cache, player=player, alerts=alerts,
                      healthy=lambda: self_check(store, link),
                      online=lambda: link is not None and link.generation > 0)
    parts = Parts(player=player, scheduler=scheduler, prefetcher=prefetcher, alerts=alerts, asrun=AsRun(rt, store),
                  selftest=SelfTest(rt, player=player, amp=amp, gpio=gpio), sensors=sensors, monitor=monitor,
                  maintenance=maintenance, updater=updater, board=board)
    return Core(rt, store, parts, health, link=link, boot_id=boot_id, notifier=notifier, ring=ring)


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
    from .logbuffer import setup
    from .messages import Wake
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
        core = build(cfg, store, connect=True, notifier=Notifier(), ring=ring)
    except DriverError as e:  # a backend the config names but this box cannot load: say so, do not guess
        log.error("%s", e)
        return 2
    link = core.link
    assert link is not None
    ipc = IpcServer(cfg["paths"]["socket"], core.post)
    try:
        ipc.start()
    except (OSError, IpcError) as e:
        log.error("cannot open the control socket: %s", e)
        return 1

    def on_signal(signum: int, frame: object) -> None:
        core.stop()
        core.post(Wake())  # SimpleQueue.put is reentrant: safe from a signal handler

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("loa-agent %s starting as %s (boot %s)", __version__, cfg["device"]["id"], core.boot_id)
    link.start()
    core.run()  # says STOPPING=1 as it begins to shut down
    link.stop()
    ipc.stop()
    store.close()
    log.info("stopped%s", " for a restart" if core.restart_requested else "")
    if core.restart_requested:
        logging.shutdown()
        from .releases import running_layout

        layout = running_layout()
        if layout is not None:  # through loa-boot: it counts the start and may switch the release
            os.execv(layout.boot, [str(layout.boot), "--config", args.config])
        os.execv(sys.executable, [sys.executable, "-m", "agent", "--config", args.config])
    return 0


if __name__ == "__main__":
    sys.exit(main())
