"""A week without network: the stored schedule plays every programme from the cache on an injected clock
that runs through seven days, and every proof of play reaches the province once the link is back.

The core runs in this process (the same wiring as the daemon: `agent.daemon.build`) so its wall clock can
be injected; audio is the `null` backend (real time, no device), SQLite and the broker are real.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from zoneinfo import ZoneInfo

import yaml
from support.agentproc import eventually
from support.incore import InjectedClock
from support.media_files import sine_file
from support.mosquitto import free_port
from support.province import Province

from agent import config
from agent.daemon import build
from agent.media import MediaCache
from agent.messages import Call
from agent.store import Store
from loa_console.keys import load_private_key, make_claims, sign

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def test_a_week_offline_plays_everything_and_delivers_proof_later(tmp_path, keys, broker):
    state = tmp_path / "state"
    cfg = config.parse(yaml.safe_dump({
        "device": {"id": "GL-0001", "areas": ["64"]},
        "mqtt": {"port": broker.port, "boot_jitter_s": 0, "reconnect": {"base_s": 0.1, "cap_s": 0.5}},
        "security": {"keys": {"prov-1": str(keys["prov-1"].with_suffix(".pub"))}},
        "paths": {"state_dir": str(state), "socket": str(tmp_path / "agent.sock")},
        "audio": {"backend": "null"}, "amp": {"warmup_s": 0, "hold_s": 0.2},
        "schedule": {"clock_check_s": 0.05},
    }))
    media = MediaCache(state / "cache").add_file(sine_file(tmp_path / "sang.mp3", (440, 0.6)))
    dead = f"http://127.0.0.1:{free_port()}"  # the media server is gone for the whole week

    broker.stop()  # no broker for the whole week
    monday = datetime(2026, 11, 23, 0, 0, tzinfo=TZ).timestamp()
    clock = InjectedClock(monday - 3600)
    store = Store(state)
    core = build(cfg, store, clock=clock, connect=True)  # the link starts only when the broker is back
    link = core.link
    assert link is not None
    runner = threading.Thread(target=core.run, daemon=True)
    runner.start()

    doc = make_claims("schedule", None, lifetime_s=None, iat=int(clock()) - 60, version=1,
                      tz="Asia/Ho_Chi_Minh", items=[
        {"id": "sang", "title": "Thời sự sáng", "start": "2026-11-23T06:00:00", "rrule": "FREQ=DAILY",
         "source": {"kind": "file", "url": f"{dead}/sang.mp3", "sha256": media}},
        {"id": "chieu", "title": "Bản tin chiều", "start": "2026-11-23T17:30:00", "rrule": "FREQ=DAILY;COUNT=7",
         "source": {"kind": "tone", "name": "chime"}}])
    token = sign(doc, load_private_key(keys["prov-1"]), "prov-1").encode()
    core.post(Call(lambda: core.intake("ttcs/v1/dev/GL-0001/schedule", "schedule", token, ack=lambda: None)))

    reader = Store(state, readonly=True)

    def events(kind: str) -> list[dict]:
        rows = reader.db.execute("SELECT payload FROM outbox ORDER BY seq").fetchall()
        return [p["data"] for p in map(lambda r: json.loads(r[0]), rows) if p.get("kind") == kind]

    eventually(lambda: events("schedule.applied"), what="schedule applied")
    occurrences = core.parts.scheduler.schedule.between(monday, monday + 7 * 86400)
    assert len(occurrences) == 14
    for occ in occurrences:
        clock.jump(occ.at - 0.5)  # the week passes; each programme's moment comes in turn
        eventually(lambda o=occ: any(e["id"] == o.id for e in events("play.end")), timeout=20,
                   what=f"{occ.id} played")

    ends = events("play.end")
    assert [e["id"] for e in ends] == [o.id for o in occurrences]
    assert all(e["completed"] and e["reason"] == "finished" for e in ends), ends
    assert all(abs(e["started"] - o.at) < 1.0 for e, o in zip(ends, occurrences, strict=True))

    # The link comes back: every proof of play goes out, in order.
    broker.start()
    province = Province(broker.port, keys["prov-1"])
    try:
        mark = province.mark()
        link.start()
        last = occurrences[-1].id
        province.event("play.end", after=mark, pred=lambda e: e["data"]["id"] == last, timeout=30)
        got = [r.payload["data"]["id"] for r in province.received[mark:]
               if r.kind == "event" and r.payload["kind"] == "play.end"]
        assert got == [o.id for o in occurrences]
        eventually(lambda: reader.outbox_count() == 0, what="outbox drained")
    finally:
        province.close()
        core.stop()
        runner.join(10)
        link.stop()
        reader.close()
