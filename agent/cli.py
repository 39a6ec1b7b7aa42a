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
from .errors import ConfigError, IpcError, Rejection

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

    p = sub.add_parser("play", parents=[common], help="play a local file, a stream URL or a tone (priority)")
    p.add_argument("what", nargs="?", help="a file path or a stream URL")
    p.add_argument("--tone", choices=("siren", "chime", "test"))
    p.add_argument("--duration", type=float, help="seconds (tones, streams)")
    p.add_argument("--level", choices=("normal", "priority"), default="priority")
    p.add_argument("--volume", type=int)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--zone", action="append", dest="zones")
    p = sub.add_parser("say", parents=[common], help="speak a text (Vietnamese by default)")
    p.add_argument("text")
    p.add_argument("--lang", default="vi")
    p.add_argument("--level", choices=("normal", "priority"), default="priority")
    p.add_argument("--zone", action="append", dest="zones")
    sub.add_parser("stop", parents=[common], help="stop everything but an emergency")
    p = sub.add_parser("volume", parents=[common], help="set the default (or a zone's) volume, 0-100")
    p.add_argument("volume", type=int)
    p.add_argument("--zone", action="append", dest="zones")
    p = sub.add_parser("amp", parents=[common], help="switch the amplifier relays on or off")
    p.add_argument("state", choices=("on", "off"))
    p.add_argument("--zone", action="append", dest="zones")
    p = sub.add_parser("schedule", parents=[common], help="upcoming programmes (time, item, level, cached?)")
    p.add_argument("--hours", type=float, default=24)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("cache", parents=[common], help="the media cache: status, prefetch (with progress), purge")
    p.add_argument("action", choices=("status", "prefetch", "purge"), nargs="?", default="status")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("display", parents=[common], help="the e-board: status, screenshot FILE, on, off, clear")
    p.add_argument("action", choices=("status", "screenshot", "on", "off", "clear"), nargs="?", default="status")
    p.add_argument("file", nargs="?", default="screenshot.png", help="where a screenshot goes (PNG)")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("selftest", parents=[common], help="test tone through each zone: relays, feedback, microphone")
    p.add_argument("--calibrate", action="store_true", help="take the microphone's reference level (at install)")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("doctor", parents=[common], help="check config, secrets, broker, certificates, clock, "
                       "audio, GPIO, display, fonts, disk, cache, outbox, schedule (daemon running or not)")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("test", parents=[common], help="a chime and a 1 kHz tone through every zone")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("update", parents=[common], help="software update: status, rollback, or install a signed "
                       "bundle from a FILE (USB stick) or a URL")
    p.add_argument("what", nargs="?", default="status", help="status (default), rollback, a bundle file or a URL")
    p.add_argument("--sha256", help="the bundle's SHA-256 (required with a URL)")
    p.add_argument("--version", dest="bundle_version", help="the bundle's version (required with a URL)")
    p.add_argument("--allow-downgrade", action="store_true", help="install even if older than the running version")
    p.add_argument("--json", action="store_true")

    args = ap.parse_args(argv)
    path = getattr(args, "config", None) or os.environ.get("LOA_CONFIG", config.DEFAULT_PATH)
    try:
        return COMMANDS[args.cmd](args, path)
    except ConfigError as e:
        for problem in e.problems:
            print(f"loa: error: config: {problem}", file=sys.stderr)
        return 2
    except Rejection as e:  # what the MQTT command's ack would say, e.g. "params.volume: must be 0-100"
        print(f"loa: error: {e.message}", file=sys.stderr)
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
        audio = st.get("audio")
        if audio:
            p = audio["playing"]
            what = f"{audio['state']} {p['level']} {p['title'] or p['kind']!r} at volume {p['volume']}" if p \
                else "idle"
            amp = ", ".join(f"{z} {'on' if on else 'off'}" for z, on in audio["amp"]["zones"].items())
            print(f"  audio:          {what}; {audio['queued']} waiting; amplifier {amp}")
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
    _command(path, "restart")
    print("loa: the agent is restarting")
    return 0


def _ask(path: str, op: str, /, **args: Any) -> Any:
    from .ipc import request

    return request(_socket(path), op, **{k: v for k, v in args.items() if v is not None})


def _command(path: str, type_: str, /, **params: Any) -> Any:
    """Run the MQTT command of that name locally: the same schema and handler (None values left out)."""
    return _ask(path, "command", type=type_, params={k: v for k, v in params.items() if v is not None})


def cmd_play(args: argparse.Namespace, path: str) -> int:
    common = {"level": args.level, "volume": args.volume, "repeat": args.repeat, "zones": args.zones}
    if args.tone:
        source = {"kind": "tone", "name": args.tone}
        if args.duration is not None:  # 0 too: the schema answers for it
            source["duration_s"] = args.duration
        out = _command(path, "play", source=source, **common)
    elif args.what and "://" in args.what:
        out = _command(path, "play", source={"kind": "stream", "urls": [args.what]}, duration_s=args.duration,
                       **common)
    elif args.what:
        out = _ask(path, "play_file", path=os.path.abspath(args.what), **common)
    else:
        raise IpcError("say what to play: a file, a URL or --tone NAME")
    print(f"loa: playing ({args.level}), id {out['id']}")
    return 0


def cmd_say(args: argparse.Namespace, path: str) -> int:
    out = _command(path, "play", source={"kind": "tts", "text": args.text, "lang": args.lang}, level=args.level,
                   zones=args.zones)
    print(f"loa: speaking, id {out['id']}")
    return 0


def cmd_stop(args: argparse.Namespace, path: str) -> int:
    print(f"loa: stopped {_command(path, 'stop')['stopped']} play(s); an emergency is never stopped from here")
    return 0


def cmd_volume(args: argparse.Namespace, path: str) -> int:
    out = _command(path, "volume", volume=args.volume, zones=args.zones)
    print(f"loa: volume {out['default']} (max {out['max']}), zones {out['zones']}")
    return 0


def cmd_amp(args: argparse.Namespace, path: str) -> int:
    out = _command(path, "amp", on=args.state == "on", zones=args.zones)
    print("loa: amplifier " + ", ".join(f"{z} {'on' if on else 'off'}" for z, on in out["zones"].items()))
    return 0


def cmd_test(args: argparse.Namespace, path: str) -> int:
    import time

    started = _ask(path, "test")
    ids, deadline = set(started["ids"]), time.monotonic() + 20 + 5 * len(started["ids"])
    seen_on: set[str] = set()
    while time.monotonic() < deadline:  # poll: the socket answers questions, it does not push
        st = _ask(path, "status")
        seen_on |= {z for z, on in st["audio"]["amp"]["zones"].items() if on}
        playing = st["audio"]["playing"]
        if (playing is None or playing["id"] not in ids) and st["audio"]["queued"] == 0:
            break
        time.sleep(0.2)
    else:
        raise IpcError("the test did not finish in time")
    faults = {f["code"]: f["message"] for f in st["faults"]}
    report = {z: {"played": True, "relay_switched_on": z in seen_on,
                  "feedback_fault": faults.get("amp_no_feedback") if z in faults.get("amp_no_feedback", "") else None}
              for z in started["zones"]}
    ok = all(r["relay_switched_on"] and not r["feedback_fault"] for r in report.values())
    if args.json:
        print(json.dumps({"ok": ok, "zones": report}, indent=2))
    else:
        for z, r in report.items():
            state = "OK" if r["relay_switched_on"] and not r["feedback_fault"] else "FAIL"
            print(f"zone {z}: chime and 1 kHz tone played, relay {'on' if r['relay_switched_on'] else 'NOT seen on'}"
                  f"{', ' + r['feedback_fault'] if r['feedback_fault'] else ''}: {state}")
    return 0 if ok else 1


def cmd_schedule(args: argparse.Namespace, path: str) -> int:
    out = _ask(path, "schedule", hours=args.hours)

    def human(out: dict) -> None:
        print(f"schedule versions: {out['schedule_versions'] or 'none'}")
        if not out["upcoming"]:
            print(f"nothing in the next {args.hours:g} h")
        for o in out["upcoming"]:
            cached = {True: "cached", False: "NOT CACHED", None: ""}[o["cached"]]
            print(f"  {o['local'].replace('T', ' ')}  {o['level']:<9} {o['kind'] or '':<7} "
                  f"{o['title'] or o['id']}  {cached}")

    _print(out, args.json, human)
    return 0


def cmd_cache(args: argparse.Namespace, path: str) -> int:
    import time

    out = _ask(path, "cache", action=args.action)
    if args.action == "prefetch" and not args.json:
        total = max(out["needed"], 1)
        while out["due_not_cached"] and out["fetching"]:  # poll: the socket answers, it does not push
            done = total - out["due_not_cached"]
            print(f"\r  [{'#' * (30 * done // total):<30}] {done}/{total} fetched", end="", flush=True)
            time.sleep(0.5)
            out = _ask(path, "cache")
        print(f"\r  [{'#' * 30 if not out['due_not_cached'] else '':<30}] "
              f"{total - out['due_not_cached']}/{total} fetched")

    def human(o: dict) -> None:
        print(f"cache: {o['items']} file(s), {o['bytes'] / 2**20:.1f} MB; media due soon and missing: "
              f"{o.get('due_not_cached', o['missing'])}")
        for digest, error in o.get("failures", {}).items():
            print(f"  {digest}…: {error}")
        if "removed" in o:
            print(f"  purged {o['removed']} file(s) not needed soon")

    _print(out, args.json, human)
    return 0 if not out.get("due_not_cached") else 1


def cmd_display(args: argparse.Namespace, path: str) -> int:
    import base64

    if args.action in ("on", "off", "clear"):
        out = _command(path, "display.clear") if args.action == "clear" else \
            _command(path, "display.power", on=args.action == "on")
        if out["status"] != "done":
            print(f"loa: display {args.action}: {out['status']} ({out['code']}): {out['message']}", file=sys.stderr)
            return 1
        args.action = "status"
    out = _ask(path, "display", action=args.action)
    if args.action == "screenshot":
        if not out["png_b64"]:
            print("loa: nothing has been drawn yet", file=sys.stderr)
            return 1
        with open(args.file, "wb") as f:
            f.write(base64.b64decode(out["png_b64"]))
        print(f"{args.file}: {out['size'][0]}x{out['size'][1]} PNG of the current frame")
        return 0

    def human(o: dict) -> None:
        s = o["showing"] or {}
        print(f"panel: {'on' if o['on'] else 'OFF'} ({o['backend']}), {o['frames']} frame(s) drawn")
        print(f"showing: {s.get('origin', '-')} {s.get('kind', '')} {s.get('title') or s.get('id', '')}")
        print(f"playlist: {o['playlist']} slide(s) valid now; ticker: {o['ticker'] or 'none'}")

    _print(out, args.json, human)
    return 0


def cmd_update(args: argparse.Namespace, path: str) -> int:
    if args.what == "rollback":
        out = _command(path, "update.rollback")
        print(f"loa: rolling back to {out['version']} (from {out['previous']}); the agent restarts")
        return 0
    if args.what != "status":
        params: dict[str, Any] = {"allow_downgrade": args.allow_downgrade or None}
        if "://" in args.what:
            if not (args.sha256 and args.bundle_version):
                raise IpcError("an update from a URL needs --sha256 and --version (as the update command does)")
            params.update(url=args.what, sha256=args.sha256, version=args.bundle_version)
        else:  # a file: its signature is checked here first (so the technician knows now), and again by the agent
            from pathlib import Path

            from .bundle import BundleError, load_release_keys, open_bundle
            from .media import sha256_file

            bundle = Path(args.what).resolve()
            try:
                manifest = open_bundle(bundle, load_release_keys(config.load(path)["security"]["release_keys"]))
            except (BundleError, OSError) as e:
                print(f"loa: error: {bundle}: {e}", file=sys.stderr)
                return 2
            params.update(url=bundle.as_uri(), sha256=sha256_file(bundle), version=manifest.version)
        out = _command(path, "update", **params)
        if out["status"] not in ("accepted", "done"):
            print(f"loa: update: {out['status']} ({out['code']}): {out['message']}", file=sys.stderr)
            return 1
        print(f"loa: update to {params['version']} {out['status']} (id {out['id']}): follow it with "
              "`loa update status`")
        return 0
    st = _ask(path, "update_status")

    def human(o: dict) -> None:
        if not o["layout"]:
            print(f"running {o['running']}, not from a release layout: this agent cannot update itself")
            return
        print(f"running {o['running']} (current {o['current']}, previous {o['previous'] or '-'}); committed "
              f"{o.get('committed') or '-'}, highest {o.get('highest') or '-'}")
        print(f"installed: {', '.join(o['installed'])}  ({o['layout']})")
        job, pending, last = o["job"], o.get("pending"), o.get("last")
        if job:
            size = f"/{job['size'] / 2**20:.1f}" if job["size"] else ""
            print(f"update to {job['version']}: {job['phase']} {job['detail']} ({job['bytes'] / 2**20:.1f}{size} MB)")
        if pending:
            print(f"health gate: {pending['version']} on trial (start {pending['boots']} of {pending['max_boots']})")
        if last:
            print(f"last update: {last['version']} {last['outcome']}" + (f": {last['reason']}" if last.get("reason")
                                                                         else ""))

    _print(st, args.json, human)
    return 0


def cmd_selftest(args: argparse.Namespace, path: str) -> int:
    from .selftest import cli

    return cli(args, path)


def cmd_doctor(args: argparse.Namespace, path: str) -> int:
    from .doctor import cli

    return cli(args, path)


COMMANDS = {"cache": cmd_cache, "status": cmd_status, "config": cmd_config, "logs": cmd_logs, "restart": cmd_restart,
            "play": cmd_play, "say": cmd_say, "stop": cmd_stop, "volume": cmd_volume, "amp": cmd_amp,
            "test": cmd_test, "schedule": cmd_schedule, "display": cmd_display,
            "selftest": cmd_selftest, "doctor": cmd_doctor, "update": cmd_update}

if __name__ == "__main__":
    sys.exit(main())
