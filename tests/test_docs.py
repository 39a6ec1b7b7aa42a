"""docs/protocol.md's examples hold against the real code; the Vietnamese guide shows what `loa` prints."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent.commands import REGISTRY
from agent.envelope import CLAIMS

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs/protocol.md"
EXAMPLE = re.compile(r"<!-- example: ([\w.-]+) -->\s*```json\n(.*?)```", re.S)


def examples() -> dict[str, dict]:
    return {name: json.loads(body) for name, body in EXAMPLE.findall(DOC.read_text())}


def test_every_example_is_valid_json():
    assert {"command", "ack-rejected", "ack-done", "config.set", "status", "heartbeat", "event"} <= examples().keys()


@pytest.mark.parametrize("name", ["command", "config.set", "config.set-announcements", "play-emergency", "alert",
                                  "display.show", "update"])
def test_command_examples_pass_the_envelope_and_params_schemas(name):
    claims = CLAIMS.check(examples()[name], "")
    REGISTRY.get(claims["type"]).check(claims["params"])


def test_schedule_example_compiles_and_recurs():
    from agent.schedule import Schedule

    doc = examples()["schedule"]
    sched = Schedule({"ttcs/v1/dev/GL-0001/schedule": doc})
    week = sched.between(1795363200, 1795363200 + 7 * 86400)  # 2026-11-23 00:00 +07, a Monday, for 7 days
    ids = [o.id.split("@")[0] for o in week]
    assert ids.count("thoi-su-sang") == 6 and ids.count("tiep-song-vov") == 3  # one exdate; Mon, Wed, Fri


def test_ack_examples_have_the_agents_ack_fields(make_agent):
    from agent import config
    from agent.daemon import build
    from agent.runtime import Result
    from agent.store import Store

    agent = make_agent(signed=False)
    core = build(config.load(agent.config_path), Store(agent.state_dir))
    real = core.outbox._ack("x", "status.get", Result())
    for name in ("ack-rejected", "ack-done"):
        assert examples()[name].keys() == real.keys()


def test_heartbeat_example_has_the_real_heartbeats_fields(make_agent):
    from agent import config
    from agent.daemon import build
    from agent.store import Store

    agent = make_agent(signed=False)
    core = build(config.load(agent.config_path), Store(agent.state_dir))
    real = core.heartbeat()
    doc = examples()["heartbeat"]
    assert doc.keys() == real.keys()
    assert doc["sys"].keys() == real["sys"].keys() and doc["net"].keys() == real["net"].keys()
    assert real["display"] is None  # a speaker-only box; the example is a board's


def test_display_examples_hold_on_a_board(tmp_path, keys):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from support.incore import InCore

    from agent.display import playlist
    from agent.schedule import Schedule

    doc = examples()["display-schedule"]
    items = playlist.display_items(Schedule({"ttcs/v1/dev/GL-0001/schedule": doc}))
    now = datetime(2026, 11, 24, 9, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh")).timestamp()
    assert [it.item["id"] for it in playlist.slides(items, now)] == ["lich-tiem", "ban-do-lu"]
    assert playlist.ticker_text(items, now) == doc["items"][2]["scene"]["text"]
    assert list(playlist.media_between(items, now, now + 3600)) == [doc["items"][1]["scene"]["sha256"]]
    board = {"device": {"capabilities": ["speaker", "display"]},
             "display": {"backend": "png", "png_dir": str(tmp_path / "png"), "width": 320, "height": 180}}
    with InCore(tmp_path, keys, board, start=now) as box:
        real = box.call(lambda: box.core.heartbeat(advance=False))["display"]
        assert real.keys() == examples()["heartbeat"]["display"].keys()
        assert real["showing"].keys() == examples()["heartbeat"]["display"]["showing"].keys()
        shown = examples()["display.shown"]["data"]
        assert set(shown) == set(real["showing"]) | {"started", "ended", "seconds", "completed", "reason"}


def test_play_end_example_has_the_players_fields():
    from agent.audio.arbiter import Play
    from agent.audio.player import proof_of_play

    proof = proof_of_play(Play(id="a7", source={"kind": "tone", "name": "siren"}, started_at=1.0), ["main"])
    doc = examples()["play.end"]["data"]
    assert set(proof) | {"ended", "seconds", "completed", "reason", "plays", "runs"} == set(doc)


def test_bundle_examples_are_what_the_builder_writes_and_the_verifier_accepts(tmp_path, release_keys):
    import jwt
    from support.bundles import member, read_members, resign, tiny_bundle, write_members

    from agent.bundle import load_release_keys, open_bundle

    doc, header = examples()["bundle-manifest"], examples()["bundle-signature-header"]
    built = dict((i.name, d) for i, d in read_members(tiny_bundle(tmp_path, release_keys["rel-1"], "rel-1")))
    assert json.loads(built["manifest.json"]).keys() == doc.keys()
    assert jwt.get_unverified_header(built["manifest.sig"].decode()) == header
    # The example itself, signed, with wheels of its sizes: the verifier takes it (extract would check the sha256).
    signed = resign([member(name, data) for name, data in built.items() if name.startswith("manifest.")],
                    release_keys["rel-1"], "rel-1", lambda m: (m.clear(), m.update(doc)))
    wheels = [member(name, bytes(entry["size"])) for name, entry in doc["files"].items()]
    trusted = load_release_keys({"rel-1": release_keys["rel-1"].with_suffix(".pub")})
    assert open_bundle(write_members(tmp_path / "doc.tar", signed + wheels), trusted).raw == doc


@pytest.mark.slow
def test_the_vietnamese_guide_shows_what_loa_prints():
    """docs/vi/huong-dan-ky-thuat.md's command outputs are regenerated from a real box by scripts/guide; a message
    changed in the code and not in the guide fails here (numbers, times and identifiers aside)."""
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "guide"), "--check"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
