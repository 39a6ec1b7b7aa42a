"""`loa`: the technician's CLI. Talks to the running agent over its local socket.

Read commands take `--json`. Errors print `loa: error: ...` and exit non-zero;
"the agent is not running" exits 3, like `systemctl status` for a stopped unit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, NoReturn

from . import __version__, config, i18n
from .errors import ConfigError, IpcError, Rejection
from .i18n import C_, Msg, Size, _, duration, n_, number, p_, render, when

NOT_RUNNING = 3
# Protocol words shown to the technician (translated where shown; --json keeps them as they are).
WORDS = (C_("level", "normal"), C_("level", "priority"), C_("level", "emergency"), C_("audio", "idle"),
         C_("audio", "playing"), C_("audio", "alert"), C_("kind", "file"), C_("kind", "stream"), C_("kind", "tts"),
         C_("kind", "tone"), C_("status", "accepted"), C_("status", "done"), C_("status", "failed"),
         C_("status", "rejected"))
_configs: dict[str, dict] = {}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    lang, config_path = _early(argv)
    path = config_path or os.environ.get("LOA_CONFIG", config.DEFAULT_PATH)
    i18n.setup(i18n.choose(lang, lambda: _configured_lang(path)))
    args = _parser().parse_args(argv)
    path = getattr(args, "config", None) or os.environ.get("LOA_CONFIG", config.DEFAULT_PATH)
    try:
        return COMMANDS[args.cmd](args, path)
    except ConfigError as e:
        for problem in e.problems:
            print(_("loa: error: config: %(problem)s", problem=render(problem)), file=sys.stderr)
        return 2
    except Rejection as e:  # what the MQTT command's ack would say, e.g. "params.volume: must be 0-100"
        print(_("loa: error: %(message)s", message=render(e.message)), file=sys.stderr)
        return 2
    except IpcError as e:
        print(f"loa: {render(e.args[0] if e.args else e)}", file=sys.stderr)
        return NOT_RUNNING if "not running" in str(e) else 1


class _Lenient(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def _early(argv: list[str]) -> tuple[str | None, str | None]:
    """--lang and --config as typed, read before the real parser exists (its texts need the language); the real
    parser checks them again. After `say`, --lang is the speech's language, not the CLI's."""
    options = _Lenient(add_help=False, allow_abbrev=False)
    options.add_argument("--lang")
    options.add_argument("--config")
    split = _Lenient(add_help=False, allow_abbrev=False, parents=[options])
    split.add_argument("rest", nargs=argparse.REMAINDER)  # the subcommand and what follows it
    try:
        top = split.parse_known_args(argv)[0]
        after = options.parse_known_args(top.rest[1:] if top.rest and top.rest[0] != "say" else [])[0]
    except ValueError:
        return None, None
    return after.lang or top.lang, after.config or top.config


def _load(path: str) -> dict:
    """The config, loaded once per run (the language and the command both need it)."""
    if path not in _configs:
        _configs[path] = config.load(path)
    return _configs[path]


def _configured_lang(path: str) -> str | None:
    try:
        return _load(path)["cli"].get("lang")
    except ConfigError:  # its problems are reported in the language of the other sources
        return None


def _parser() -> argparse.ArgumentParser:
    config_only = argparse.ArgumentParser(add_help=False)
    config_only.add_argument("--config", default=argparse.SUPPRESS,
                             help=_("agent config file (default: $LOA_CONFIG or %(path)s)", path=config.DEFAULT_PATH))
    common = argparse.ArgumentParser(add_help=False, parents=[config_only])
    common.add_argument("--lang", choices=i18n.LANGS, default=argparse.SUPPRESS,
                        help=_("language of loa's messages (default: $LOA_LANG, cli.lang in the config, the locale)"))
    json_help = _("machine-readable output (never translated)")
    ap = argparse.ArgumentParser(prog="loa", parents=[common], description=_("Field tool for the loa-agent box"))
    ap.add_argument("--version", action="version", version=f"loa {__version__}",
                    help=_("show the version and exit"))
    sub = ap.add_subparsers(dest="cmd", required=True, metavar=_("COMMAND"))

    def command(name: str, help: str, parents: list = [common]) -> argparse.ArgumentParser:  # noqa: B006
        return sub.add_parser(name, parents=parents, help=help, description=help)

    p = command("status", _("is the agent up and connected? (default summary)"))
    p.add_argument("--json", action="store_true", help=json_help)
    p = command("config", _("check or show the configuration"))
    csub = p.add_subparsers(dest="action", required=True, metavar=_("ACTION"))
    csub.add_parser("check", parents=[common], help=_("validate the config file, start nothing"))
    show = csub.add_parser("show", parents=[common], help=_("print the effective config, secrets masked"))
    show.add_argument("--json", action="store_true", help=json_help)
    p = command("logs", _("the agent's last log lines"))
    p.add_argument("-n", "--lines", type=int, default=50, help=_("how many lines (default 50)"))
    p.add_argument("--json", action="store_true", help=json_help)
    command("restart", _("restart the agent"))

    levels = ("normal", "priority")
    level_help = _("normal or priority (default priority)")
    zone_help = _("only this zone (repeat for several; default: all)")
    p = command("play", _("play a local file, a stream URL or a tone (priority)"))
    p.add_argument("what", nargs="?", help=_("a file path or a stream URL"))
    p.add_argument("--tone", choices=("siren", "chime", "test"), help=_("a generated tone instead"))
    p.add_argument("--duration", type=float, help=_("seconds (tones, streams)"))
    p.add_argument("--level", choices=levels, default="priority", help=level_help)
    p.add_argument("--volume", type=int, help=_("0-100 (default: the zone's)"))
    p.add_argument("--repeat", type=int, default=1, help=_("how many times (default 1)"))
    p.add_argument("--zone", action="append", dest="zones", help=zone_help)
    p = command("say", _("speak a text (Vietnamese by default)"), [config_only])
    p.add_argument("text", help=_("the text to speak"))
    p.add_argument("--lang", default="vi", help=_("the language spoken (default vi); loa's own language: "
                                                  "loa --lang LANG say ..."))
    p.add_argument("--level", choices=levels, default="priority", help=level_help)
    p.add_argument("--zone", action="append", dest="zones", help=zone_help)
    p.add_argument("--dry-run", action="store_true", help=_("print the words that would be spoken; speak nothing"))
    command("stop", _("stop everything but an emergency"))
    p = command("volume", _("set the default (or a zone's) volume, 0-100"))
    p.add_argument("volume", type=int, help=_("0-100"))
    p.add_argument("--zone", action="append", dest="zones", help=zone_help)
    p = command("amp", _("switch the amplifier relays on or off"))
    p.add_argument("state", choices=("on", "off"), help=_("on or off"))
    p.add_argument("--zone", action="append", dest="zones", help=zone_help)
    p = command("schedule", _("upcoming programmes (time, item, level, cached?)"))
    p.add_argument("--hours", type=float, default=24, help=_("how far ahead (default 24)"))
    p.add_argument("--json", action="store_true", help=json_help)
    p = command("report", _("what the box aired per day: seconds on air per level, programmes, alerts, uptime"))
    p.add_argument("--date", help=_("the last day shown, YYYY-MM-DD (default today)"))
    p.add_argument("--days", type=int, default=1, help=_("how many days, ending with --date (default 1)"))
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help=json_help)
    out.add_argument("--csv", action="store_true", help=_("one line per day, for a spreadsheet"))
    p = command("cache", _("the media cache: status, prefetch (with progress), purge"))
    p.add_argument("action", choices=("status", "prefetch", "purge"), nargs="?", default="status",
                   help=_("status (default), prefetch or purge"))
    p.add_argument("--json", action="store_true", help=json_help)
    p = command("display", _("the e-board: status, screenshot FILE, on, off, clear"))
    p.add_argument("action", choices=("status", "screenshot", "on", "off", "clear"), nargs="?", default="status",
                   help=_("status (default), screenshot, on, off or clear"))
    p.add_argument("file", nargs="?", default="screenshot.png", help=_("where a screenshot goes (PNG)"))
    p.add_argument("--json", action="store_true", help=json_help)
    p = command("selftest", _("test tone through each zone: relays, feedback, microphone"))
    p.add_argument("--calibrate", action="store_true", help=_("take the microphone's reference level (at install)"))
    p.add_argument("--json", action="store_true", help=json_help)
    p = command("doctor", _("check config, secrets, broker, certificates, clock, audio, GPIO, display, fonts, disk, "
                            "cache, outbox, schedule (daemon running or not)"))
    p.add_argument("--json", action="store_true", help=json_help)
    p = command("test", _("a chime and a 1 kHz tone through every zone"))
    p.add_argument("--json", action="store_true", help=json_help)
    p = command("update", _("software update: status, rollback, or install a signed bundle from a FILE (USB stick) "
                            "or a URL"))
    p.add_argument("what", nargs="?", default="status", help=_("status (default), rollback, a bundle file or a URL"))
    p.add_argument("--sha256", help=_("the bundle's SHA-256 (required with a URL)"))
    p.add_argument("--version", dest="bundle_version", help=_("the bundle's version (required with a URL)"))
    p.add_argument("--allow-downgrade", action="store_true", help=_("install even if older than the running version"))
    p.add_argument("--json", action="store_true", help=json_help)
    return ap


def _socket(path: str) -> str:
    return _load(path)["paths"]["socket"]


def _tz(path: str) -> str:
    return _load(path)["device"]["tz"]


def _print(data: Any, as_json: bool, human: Any) -> None:
    if as_json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        human(data)


def _rows(rows: list[tuple[str, str]]) -> None:
    """`label:  value` lines, the values aligned whatever the language's labels."""
    width = max(len(label) for label, _value in rows) + 2
    for label, value in rows:
        print(f"  {label + ':':<{width}}{value}" if label else f"  {'':<{width}}{value}")


def _on(on: bool) -> str:
    return _("on") if on else _("off")


def _zones_on(zones: dict[str, bool]) -> str:
    return ", ".join(f"{z} {_on(on)}" for z, on in zones.items())


def _faults(faults: list[dict]) -> str:
    return ", ".join(f"{f['code']} ({render(f['message'])})" for f in faults) or _("none")


def cmd_status(args: argparse.Namespace, path: str) -> int:
    from .ipc import request

    st = request(_socket(path), "status")

    def human(st: dict) -> None:
        hb, tz = st["heartbeat"], _tz(path)
        print(_("loa-agent %(version)s on %(device)s: running %(uptime)s (boot %(boot)s)",
                version=st["agent_version"], device=st["device_id"], uptime=duration(hb["uptime_s"]),
                boot=st["boot_id"][:8]))
        rows = [(_("broker"), f"{st['broker']} " + (_("connected") if st["connected"] else _("NOT CONNECTED")))]
        if not st["connected"] and st["link_error"]:
            rows.append((_("last error"), st["link_error"]))
        if st["auth_failed"]:
            rows.append(("", _("the broker refuses our credentials: check mqtt.username, mqtt.password_file or the "
                               "client certificate")))
        rows.append((_("last heartbeat"), when(st["last_heartbeat_at"], tz) if st["last_heartbeat_at"]
                     else _("none sent yet")))
        rows.append((_("outbox"), n_("%(n)d message waiting for the broker", "%(n)d messages waiting for the broker",
                                     st["outbox_pending"])))
        audio = st.get("audio")
        if audio:
            p = audio["playing"]
            what = _("%(state)s %(level)s %(title)r at volume %(volume)s", state=p_("audio", audio["state"]),
                     level=p_("level", p["level"]), title=p["title"] or p_("kind", p["kind"]),
                     volume=p["volume"]) if p else p_("audio", "idle")
            rows.append((_("audio"), _("%(what)s; %(queued)d waiting; amplifier %(zones)s", what=what,
                                       queued=audio["queued"], zones=_zones_on(audio["amp"]["zones"]))))
        rows.append((_("faults"), _faults(st["faults"])))
        s = hb["sys"]
        rows.append((_("system"), _("load %(load)s, memory %(mem)s %%, disk free %(disk)s, CPU %(temp)s °C",
                                    load=number(s["load1"], 2), mem=number(s["mem_used_pct"]),
                                    disk=Size(s["disk_free_mb"] * 2**20).localized(),
                                    temp="?" if s["cpu_temp_c"] is None else number(s["cpu_temp_c"], 1))))
        _rows(rows)

    _print(st, args.json, human)
    return 0


def cmd_config(args: argparse.Namespace, path: str) -> int:
    cfg = _load(path)
    if args.action == "check":
        print(_("%(path)s: OK", path=path))
        return 0
    from .store import read_overrides

    overrides = read_overrides(cfg["paths"]["state_dir"])
    if overrides:
        cfg = config.load(path, overrides)

    def human(cfg: dict) -> None:
        import yaml

        print(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False).rstrip())
        if overrides:
            print(_("# set remotely (config.set): %(keys)s", keys=", ".join(sorted(overrides))))

    _print(config.masked(cfg), args.json, human)
    return 0


def cmd_logs(args: argparse.Namespace, path: str) -> int:
    from .ipc import request

    lines = request(_socket(path), "logs", lines=args.lines)["lines"]
    _print({"lines": lines}, args.json, lambda d: print("\n".join(d["lines"])))
    return 0


def cmd_restart(args: argparse.Namespace, path: str) -> int:
    _command(path, "restart")
    print(_("loa: the agent is restarting"))
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
        raise IpcError(Msg("say what to play: a file, a URL or --tone NAME"))
    print(_("loa: playing (%(level)s), id %(id)s", level=p_("level", args.level), id=out["id"]))
    return 0


def cmd_say(args: argparse.Namespace, path: str) -> int:
    if args.dry_run:  # the reader runs here, from the same config: no agent needed
        from .audio.reading import reader_for, reads

        print(reader_for(_load(path)).read(args.text) if reads(args.lang) else args.text)
        return 0
    out = _command(path, "play", source={"kind": "tts", "text": args.text, "lang": args.lang}, level=args.level,
                   zones=args.zones)
    print(_("loa: speaking, id %(id)s", id=out["id"]))
    return 0


def cmd_stop(args: argparse.Namespace, path: str) -> int:
    print(_("loa: stopped %(n)d play(s); an emergency is never stopped from here",
            n=_command(path, "stop")["stopped"]))
    return 0


def cmd_volume(args: argparse.Namespace, path: str) -> int:
    out = _command(path, "volume", volume=args.volume, zones=args.zones)
    print(_("loa: volume %(volume)s (max %(max)s), zones %(zones)s", volume=out["default"], max=out["max"],
            zones=out["zones"]))
    return 0


def cmd_amp(args: argparse.Namespace, path: str) -> int:
    out = _command(path, "amp", on=args.state == "on", zones=args.zones)
    print(_("loa: amplifier %(zones)s", zones=_zones_on(out["zones"])))
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
        raise IpcError(Msg("the test did not finish in time"))
    faults = {f["code"]: f["message"] for f in st["faults"]}
    report = {z: {"played": True, "relay_switched_on": z in seen_on,
                  "feedback_fault": faults.get("amp_no_feedback") if z in faults.get("amp_no_feedback", "") else None}
              for z in started["zones"]}
    ok = all(r["relay_switched_on"] and not r["feedback_fault"] for r in report.values())
    if args.json:
        print(json.dumps({"ok": ok, "zones": report}, indent=2))
    else:
        for z, r in report.items():
            good = r["relay_switched_on"] and not r["feedback_fault"]
            print(_("zone %(zone)s: chime and 1 kHz tone played, relay %(relay)s%(fault)s: %(verdict)s", zone=z,
                    relay=_("on") if r["relay_switched_on"] else _("NOT seen on"),
                    fault=", " + render(r["feedback_fault"]) if r["feedback_fault"] else "",
                    verdict=_("OK") if good else _("FAIL")))
    return 0 if ok else 1


def cmd_schedule(args: argparse.Namespace, path: str) -> int:
    out = _ask(path, "schedule", hours=args.hours)

    def human(out: dict) -> None:
        tz = _tz(path)
        versions = ", ".join(f"{source} v{v}" for source, v in out["schedule_versions"].items())
        print(_("schedule versions: %(versions)s", versions=versions or _("none")))
        if not out["upcoming"]:
            print(_("nothing in the next %(hours)s h", hours=number(args.hours, 0 if args.hours == int(args.hours)
                                                                     else 1)))
        cached = {True: _("cached"), False: _("NOT CACHED"), None: ""}
        levels = {o["level"]: p_("level", o["level"]) for o in out["upcoming"]}
        kinds = {o["kind"]: p_("kind", o["kind"]) if o["kind"] else "" for o in out["upcoming"]}
        lw, kw = max(map(len, levels.values()), default=0), max(map(len, kinds.values()), default=0)
        for o in out["upcoming"]:
            print(f"  {when(o['local'], tz)}  {levels[o['level']]:<{lw}}  {kinds[o['kind']]:<{kw}}  "
                  f"{o['title'] or o['id']}  {cached[o['cached']]}".rstrip())

    _print(out, args.json, human)
    return 0


REPORT_CSV = ("date", "tz", "device_id", "on_air_s.normal", "on_air_s.priority", "on_air_s.emergency",
              "programmes.played", "programmes.completed", "programmes.cut_short", "programmes.failed",
              "programmes.skipped", "alerts", "online_s", "uptime_s", "faults_raised", "display_s")


def _field(report: dict, key: str) -> Any:
    """A report's value by its dotted CSV name (`on_air_s.normal`)."""
    for part in key.split("."):
        report = report[part]
    return report


def cmd_report(args: argparse.Namespace, path: str) -> int:
    from datetime import date

    out = _ask(path, "report", date=args.date, days=args.days)
    if args.csv:
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(REPORT_CSV)
        for r in out["reports"]:
            writer.writerow([_field(r, key) for key in REPORT_CSV])
        return 0

    def human(out: dict) -> None:
        for r in out["reports"]:
            air, prog = r["on_air_s"], r["programmes"]
            print(_("%(day)s (%(tz)s), %(device)s", day=i18n.day(date.fromisoformat(r["date"])), tz=r["tz"],
                    device=r["device_id"]))
            _rows([
                (_("on air"), ", ".join(f"{p_('level', level)} {duration(air[level])}" for level in air)),
                (_("programmes"), _("%(played)d played: %(completed)d completed, %(cut)d cut short; %(failed)d "
                                    "failed, %(skipped)d skipped", played=prog["played"],
                                    completed=prog["completed"], cut=prog["cut_short"], failed=prog["failed"],
                                    skipped=prog["skipped"])),
                (_("alerts"), str(r["alerts"])),
                (_("running"), _("%(up)s, connected %(online)s", up=duration(r["uptime_s"]),
                                 online=duration(r["online_s"]))),
                (_("faults"), _("%(n)d raised", n=r["faults_raised"])),
                (_("e-board"), duration(r["display_s"])),
            ])

    _print(out, args.json, human)
    return 0


def cmd_cache(args: argparse.Namespace, path: str) -> int:
    import time

    out = _ask(path, "cache", action=args.action)
    if args.action == "prefetch" and not args.json:
        total = max(out["needed"], 1)
        while out["due_not_cached"] and out["fetching"]:  # poll: the socket answers, it does not push
            done = total - out["due_not_cached"]
            print("\r  [{:<30}] {}".format("#" * (30 * done // total), _("%(done)d/%(total)d fetched", done=done,
                                                                            total=total)), end="", flush=True)
            time.sleep(0.5)
            out = _ask(path, "cache")
        done = total - out["due_not_cached"]
        print("\r  [{:<30}] {}".format("#" * 30 if not out["due_not_cached"] else "",
                                       _("%(done)d/%(total)d fetched", done=done, total=total)))

    def human(o: dict) -> None:
        print(_("cache: %(files)s, %(size)s; media due soon and missing: %(missing)d",
                files=n_("%(n)d file", "%(n)d files", o["items"]), size=Size(o["bytes"]).localized(),
                missing=o.get("due_not_cached", o["missing"])))
        for digest, error in o.get("failures", {}).items():
            print(f"  {digest}…: {render(error)}")
        if "removed" in o:
            print("  " + n_("purged %(n)d file not needed soon", "purged %(n)d files not needed soon", o["removed"]))

    _print(out, args.json, human)
    return 0 if not out.get("due_not_cached") else 1


def cmd_display(args: argparse.Namespace, path: str) -> int:
    import base64

    if args.action in ("on", "off", "clear"):
        out = _command(path, "display.clear") if args.action == "clear" else \
            _command(path, "display.power", on=args.action == "on")
        if out["status"] != "done":
            print(_("loa: display %(action)s: %(status)s (%(code)s): %(message)s", action=args.action,
                    status=p_("status", out["status"]), code=out["code"], message=render(out["message"])),
                  file=sys.stderr)
            return 1
        args.action = "status"
    out = _ask(path, "display", action=args.action)
    if args.action == "screenshot":
        if not out["png_b64"]:
            print(_("loa: nothing has been drawn yet"), file=sys.stderr)
            return 1
        with open(args.file, "wb") as f:
            f.write(base64.b64decode(out["png_b64"]))
        print(_("%(file)s: %(width)dx%(height)d PNG of the current frame", file=args.file, width=out["size"][0],
                height=out["size"][1]))
        return 0

    def human(o: dict) -> None:
        s = o["showing"] or {}
        showing = f"{s.get('origin', '-')} {s.get('kind', '')} {s.get('title') or s.get('id', '')}"
        for label, value in ((_("panel"), _("%(state)s (%(backend)s), %(frames)s drawn", backend=o["backend"],
                                             state=_("on") if o["on"] else _("OFF"),
                                             frames=n_("%(n)d frame", "%(n)d frames", o["frames"]))),
                             (_("showing"), showing),
                             (_("playlist"), _("%(slides)s valid now; ticker: %(ticker)s",
                                               slides=n_("%(n)d slide", "%(n)d slides", o["playlist"]),
                                               ticker=o["ticker"] or _("none")))):
            print(f"{label}: {value}")

    _print(out, args.json, human)
    return 0


def cmd_update(args: argparse.Namespace, path: str) -> int:
    if args.what == "rollback":
        out = _command(path, "update.rollback")
        print(_("loa: rolling back to %(version)s (from %(previous)s); the agent restarts", version=out["version"],
                previous=out["previous"]))
        return 0
    if args.what != "status":
        params: dict[str, Any] = {"allow_downgrade": args.allow_downgrade or None}
        if "://" in args.what:
            if not (args.sha256 and args.bundle_version):
                raise IpcError(Msg("an update from a URL needs --sha256 and --version (as the update command does)"))
            params.update(url=args.what, sha256=args.sha256, version=args.bundle_version)
        else:  # a file: its signature is checked here first (so the technician knows now), and again by the agent
            from pathlib import Path

            from .bundle import BundleError, load_release_keys, open_bundle
            from .media import sha256_file

            bundle = Path(args.what).resolve()
            try:
                manifest = open_bundle(bundle, load_release_keys(_load(path)["security"]["release_keys"]))
            except (BundleError, OSError) as e:
                print(_("loa: error: %(message)s", message=": ".join((str(bundle), str(e)))), file=sys.stderr)
                return 2
            params.update(url=bundle.as_uri(), sha256=sha256_file(bundle), version=manifest.version)
        out = _command(path, "update", **params)
        if out["status"] not in ("accepted", "done"):
            print(_("loa: update: %(status)s (%(code)s): %(message)s", status=p_("status", out["status"]),
                    code=out["code"], message=render(out["message"])), file=sys.stderr)
            return 1
        print(_("loa: update to %(version)s %(status)s (id %(id)s): follow it with `loa update status`",
                version=params["version"], status=p_("status", out["status"]), id=out["id"]))
        return 0
    st = _ask(path, "update_status")

    def human(o: dict) -> None:
        if not o["layout"]:
            print(_("running %(version)s, not from a release layout: this agent cannot update itself",
                    version=o["running"]))
            return
        print(_("running %(running)s (current %(current)s, previous %(previous)s); committed %(committed)s, highest "
                "%(highest)s", running=o["running"], current=o["current"], previous=o["previous"] or "-",
                committed=o.get("committed") or "-", highest=o.get("highest") or "-"))
        print(_("installed: %(versions)s  (%(layout)s)", versions=", ".join(o["installed"]), layout=o["layout"]))
        job, pending, last = o["job"], o.get("pending"), o.get("last")
        if job:
            done = Size(job["bytes"]).localized()
            print(_("update to %(version)s: %(phase)s %(detail)s (%(done)s)", version=job["version"],
                    phase=job["phase"], detail=render(job["detail"]),
                    done=_("%(done)s of %(size)s", done=done, size=Size(job["size"]).localized()) if job["size"]
                    else done))
        if pending:
            print(_("health gate: %(version)s on trial (start %(boots)s of %(max)s)", version=pending["version"],
                    boots=pending["boots"], max=pending["max_boots"]))
        if last:
            reason = ": " + render(last["reason"]) if last.get("reason") else ""
            print(_("last update: %(version)s %(outcome)s%(reason)s", version=last["version"],
                    outcome=last["outcome"], reason=reason))

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
            "test": cmd_test, "schedule": cmd_schedule, "display": cmd_display, "report": cmd_report,
            "selftest": cmd_selftest, "doctor": cmd_doctor, "update": cmd_update}

if __name__ == "__main__":
    sys.exit(main())
