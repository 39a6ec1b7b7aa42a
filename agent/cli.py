"""`loa`: the technician's CLI. Talks to the running agent over its local socket.

Read commands take `--json`. Errors print `loa: error: ...` and exit non-zero;
"the agent is not running" exits 3, like `systemctl status` for a stopped unit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from . import __version__, config
from .errors import ConfigError, IpcError

NOT_RUNNING = 3


def main(argv: list[str] | None = None) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS,
                        help=f"agent config file (default: $LOA_CONFIG or {config.DEFAULT_PATH})")
    ap = argparse.ArgumentParser(prog="loa", parents=[common], description="Field tool for the loa-agent box")
    ap.add_argument("--version", action="version", version=f"loa {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    p = sub.add_parser("status", parents=[common], help="is the agent up and connected? (default summary)")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("config", parents=[common], help="check or show the configuration")
    csub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    csub.add_parser("check", parents=[common], help="validate the config file, start nothing")
    show = csub.add_parser("show", parents=[common], help="print the effective config, secrets masked")
    show.add_argument("--json", action="store_true")
    p = sub.add_parser("logs", parents=[common], help="the agent's last log lines")
    p.add_argument("-n", "--lines", type=int, default=50)
    p.add_argument("--json", action="store_true")
    sub.add_parser("restart", parents=[common], help="restart the agent")

    args = ap.parse_args(argv)
    path = getattr(args, "config", None) or os.environ.get("LOA_CONFIG", config.DEFAULT_PATH)
    try:
        return COMMANDS[args.cmd](args, path)
    except ConfigError as e:
        for problem in e.problems:
            print(f"loa: error: config: {problem}", file=sys.stderr)
        return 2
    except IpcError as e:
        print(f"loa: {e}", file=sys.stderr)
        return NOT_RUNNING if "not running" in str(e) else 1


def _socket(path: str) -> str:
    return config.load(path)["paths"]["socket"]


def _print(data: Any, as_json: bool, human: Any) -> None:
    if as_json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        human(data)


def cmd_status(args: argparse.Namespace, path: str) -> int:
    from .ipc import request

    st = request(_socket(path), "status")

    def human(st: dict) -> None:
        hb = st["heartbeat"]
        up = int(hb["uptime_s"])
        print(f"loa-agent {st['agent_version']} on {st['device_id']}: running {up // 3600}h{up % 3600 // 60:02d}m "
              f"(boot {st['boot_id'][:8]})")
        link = "connected" if st["connected"] else "NOT CONNECTED"
        print(f"  broker:         {st['broker']} {link}")
        if not st["connected"] and st["link_error"]:
            print(f"  last error:     {st['link_error']}")
        if st["auth_failed"]:
            print("                  the broker refuses our credentials: check mqtt.username, "
                  "mqtt.password_file or the client certificate")
        print(f"  last heartbeat: {st['last_heartbeat_at'] or 'none sent yet'}")
        print(f"  outbox:         {st['outbox_pending']} message(s) waiting for the broker")
        faults = ", ".join(f"{f['code']} ({f['message']})" for f in st["faults"]) or "none"
        print(f"  faults:         {faults}")
        s = hb["sys"]
        print(f"  system:         load {s['load1']}, memory {s['mem_used_pct']} %, "
              f"disk free {s['disk_free_mb']} MB, CPU {s['cpu_temp_c'] if s['cpu_temp_c'] is not None else '?'} °C")

    _print(st, args.json, human)
    return 0


def cmd_config(args: argparse.Namespace, path: str) -> int:
    cfg = config.load(path)
    if args.action == "check":
        print(f"{path}: OK")
        return 0
    from .store import read_overrides

    overrides = read_overrides(cfg["paths"]["state_dir"])
    if overrides:
        cfg = config.load(path, overrides)

    def human(cfg: dict) -> None:
        import yaml

        print(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False).rstrip())
        if overrides:
            print(f"# set remotely (config.set): {', '.join(sorted(overrides))}")

    _print(config.masked(cfg), args.json, human)
    return 0


def cmd_logs(args: argparse.Namespace, path: str) -> int:
    from .ipc import request

    lines = request(_socket(path), "logs", lines=args.lines)["lines"]
    _print({"lines": lines}, args.json, lambda d: print("\n".join(d["lines"])))
    return 0


def cmd_restart(args: argparse.Namespace, path: str) -> int:
    from .ipc import request

    request(_socket(path), "restart")
    print("loa: the agent is restarting")
    return 0


COMMANDS = {"status": cmd_status, "config": cmd_config, "logs": cmd_logs, "restart": cmd_restart}

if __name__ == "__main__":
    sys.exit(main())
