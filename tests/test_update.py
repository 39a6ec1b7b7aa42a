"""Software updates over the air, for real: bundles of this very project built by `loa-console bundle`'s code, a
box installed from one into a temporary prefix and run by loa-boot under a supervisor that restarts it as
systemd does, the update command through a real Mosquitto, the bundle from a local HTTP server
(tests/support/updatelab.py)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.agentproc import eventually
from support.bundles import Bundles, flip_byte
from support.updatelab import UpdateLab

pytestmark = pytest.mark.slow


@pytest.fixture
def lab(tmp_path: Path, make_bundle: Bundles, keys: dict[str, Path],
        release_keys: dict[str, Path]) -> Iterator[UpdateLab]:
    lab = UpdateLab(tmp_path, make_bundle, command_key=keys["prov-1"], release_key=release_keys["rel-1"])
    yield lab
    lab.close()


def test_update_commits_a_healthy_version_and_rolls_back_a_crashing_one(lab: UpdateLab,
                                                                       keys: dict[str, Path]) -> None:
    v1, v2, v3 = lab.build("1.0.0"), lab.build("2.0.0"), lab.build("3.0.0", broken=True)
    province = lab.province
    box = lab.install(v1)
    assert lab.start()["agent_version"] == "1.0.0"

    # 1.0.0 -> 2.0.0, not before `at`: downloaded, installed beside 1.0.0, switched, healthy for 2 s, committed.
    mark = province.mark()
    not_before = datetime.now(UTC) + timedelta(seconds=2)
    jti = lab.update(v2, at=not_before.isoformat())
    assert province.ack(jti, final=False)["status"] == "accepted"
    done = province.done(jti, timeout=180)
    assert done["result"] == {"version": "2.0.0", "previous": "1.0.0"}
    downloaded = province.event("update.downloaded", after=mark)
    assert downloaded["data"]["version"] == "2.0.0"
    assert datetime.fromisoformat(downloaded["at"]) >= not_before - timedelta(milliseconds=10)  # ms precision
    assert province.event("update.installed", after=mark)["data"]["version"] == "2.0.0"
    assert province.event("update.committed", after=mark)["data"] == {"version": "2.0.0", "previous": "1.0.0"}
    assert province.status("online", after=mark)["agent_version"] == "2.0.0"
    root = box.root
    assert lab.running() == "2.0.0" and (root / "previous").resolve().name == "1.0.0"
    state = json.loads((root / "update.json").read_text())
    assert state["committed"] == state["highest"] == "2.0.0" and state["pending"] is None

    # A technician goes back to 1.0.0, which starts on the state 2.0.0 wrote, then installs 2.0.0 from a file
    # (a USB stick): already unpacked beside it, it is switched to and committed again.
    mark = province.mark()
    out = box.run_cli("update", "rollback")
    assert out.returncode == 0 and "rolling back to 1.0.0" in out.stdout, out.stdout + out.stderr
    assert province.status("online", after=mark, timeout=60)["agent_version"] == "1.0.0"
    assert province.event("update.rolled_back", after=mark)["data"] == {
        "version": "2.0.0", "previous": "1.0.0", "reason": "rollback requested"}
    mark = province.mark()
    out = box.run_cli("update", str(v2.path))
    assert out.returncode == 0 and "update to 2.0.0 accepted" in out.stdout, out.stdout + out.stderr
    assert province.event("update.committed", after=mark, timeout=120)["data"]["version"] == "2.0.0"
    assert province.status("online", after=mark)["agent_version"] == "2.0.0"

    # 2.0.0 -> 3.0.0, which dies at every start: loa-boot switches back by itself after max_boots starts.
    starts = box.starts
    mark = province.mark()
    jti = lab.update(v3)
    final = province.ack(jti, timeout=240)
    assert (final["status"], final["code"]) == ("failed", "rolled_back"), final
    assert final["result"]["version"] == "3.0.0" and final["result"]["previous"] == "2.0.0"
    rolled = province.event("update.rolled_back", after=mark, timeout=30)["data"]
    assert rolled["version"] == "3.0.0" and rolled["previous"] == "2.0.0" and "start" in rolled["reason"]
    assert lab.running() == "2.0.0" and json.loads((root / "update.json").read_text())["committed"] == "2.0.0"
    assert "broken build" in box.log() and box.starts >= starts + 2  # the supervisor restarted the crashing one

    # Refused, each with its code; the box stays on 2.0.0.
    cmdkey = lab.build("2.5.0", key=keys["prov-1"], kid="prov-1")  # a stolen command key cannot install code
    path, _ = lab.bundles("2.6.0", lab.release_key, lab.kid)
    flip_byte(path, "wheels/loa_agent-2.6.0-py3-none-any.whl")  # changed after signing
    tampered = lab.serve(path, hashlib.sha256(path.read_bytes()).hexdigest(), "2.6.0")
    older = lab.build("0.9.0")
    for built, code in ((cmdkey, "bad_signature"), (tampered, "bad_signature"), (older, "downgrade")):
        ack = province.ack(lab.update(built), timeout=120)
        assert (ack["status"], ack["code"]) == ("rejected", code), (built.version, ack)
    for url in (lab.url(v2), lab.server.url("none.tar")):  # a wrong sha256 for a real bundle; no bundle at all
        ack = province.ack(province.send("update", {"version": "2.7.0", "url": url, "sha256": "0" * 64}),
                           timeout=120)
        assert (ack["status"], ack["code"]) == ("failed", "media_unavailable"), (url, ack)
    ack = province.ack(lab.update(v2), timeout=30)
    assert ack["status"] == "done" and "already running" in ack["message"]
    ack = province.ack(province.send("update.rollback"), timeout=30)  # back to 3.0.0, which was rolled back
    assert (ack["status"], ack["code"]) == ("rejected", "device_fault"), ack

    st = eventually(lambda: _status(box.run_cli("update", "status", "--json")), timeout=30, what="update status")
    assert st["running"] == st["current"] == "2.0.0" and st["last"]["outcome"] == "rolled_back"
    assert lab.running() == "2.0.0"


def _status(out: subprocess.CompletedProcess) -> dict | None:
    """`loa update status --json`, None while the agent is not up (exit 3)."""
    if out.returncode == 3:
        return None
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


@pytest.fixture
def slow_lab(tmp_path: Path, make_bundle: Bundles, keys: dict[str, Path],
             release_keys: dict[str, Path]) -> Iterator[UpdateLab]:
    """Bundles served at 8 MB/s, so that a download lasts long enough to be killed."""
    lab = UpdateLab(tmp_path, make_bundle, command_key=keys["prov-1"], release_key=release_keys["rel-1"],
                    rate=8 * 2**20, config={"update": {"max_boots": 3}})
    yield lab
    lab.close()


@pytest.mark.parametrize("target", ["agent", "updater"])
def test_kill_9_at_each_step_leaves_a_box_that_starts_a_complete_version(slow_lab: UpdateLab, target: str) -> None:
    lab, province = slow_lab, slow_lab.province
    lab.install(lab.build("1.0.0"))
    lab.start()
    running = "1.0.0"
    for n, step in enumerate(("download", "unpack", "switch", "first-start"), start=1):
        built = lab.build(f"1.{n}.0")
        jti = lab.update(built)
        eventually(lambda: lab.reached(built, step), timeout=120, interval=0.01, what=f"step {step}")  # noqa: B023
        killed = lab.kill(target)
        final = province.ack(jti, timeout=300)
        # Killed, the agent resumes the command and finishes it; a killed pip fails this attempt, cleanly.
        assert final["status"] == "done" or (target == "updater" and final["code"] == "device_fault"), \
            (step, killed, final)
        running = built.version if final["status"] == "done" else running
        st = eventually(lambda: _status(lab.box.run_cli("update", "status", "--json")), timeout=60,  # noqa: B023
                        what="loa update status")
        assert st["running"] == st["current"] == lab.running() == running, (step, killed, final, st)
