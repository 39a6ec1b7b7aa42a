"""The release layout on the box: agent/releases.py on real venvs, and scripts/loa-boot as a real process on real
layouts (releases whose loa-agent is a tiny script): which release starts, when an update on trial is rolled back,
and that no crash, kill -9 or torn write leaves the box without a version to start."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support.layout import (
    NOW,
    boot_command,
    boot_env,
    build_wheel,
    clean_env,
    fake_release,
    install_boot,
    pending,
    point,
    read_state,
    run_boot,
    write_state,
)

from agent.releases import Layout, ReleaseError, install_by_hand, running_layout, version_key

OLD, V1, V2 = "0.9.0", "1.0.0", "1.1.0"
LIMIT_S = 2 * 300 + 60  # pending() has health_timeout_s 300
GATE = "health gate: no broker and the self-test failed"


def started(out: subprocess.CompletedProcess) -> str:
    """The version whose loa-agent ran (the fake agent prints it)."""
    assert out.stdout.startswith("loa-agent "), (out.stdout, out.stderr)
    return out.stdout.split()[1]


def said(out: subprocess.CompletedProcess) -> list[str]:
    lines = out.stderr.splitlines()
    assert all(line.startswith("loa-boot: ") for line in lines), lines
    return [line.removeprefix("loa-boot: ") for line in lines]


# --- agent/releases.py on real venvs ---


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels of this project as V1 and V2 (built offline, --no-deps)."""
    work = tmp_path_factory.mktemp("wheels")
    for version in (V1, V2):
        build_wheel(work, version, work / "wheels")
    return work / "wheels"


@pytest.fixture(scope="module")
def venvs(tmp_path_factory: pytest.TempPathFactory, wheels: Path) -> Layout:
    """V1 and V2 installed side by side, V2 over the leftovers of a killed attempt (a few seconds each)."""
    layout = Layout(tmp_path_factory.mktemp("box") / "opt/loa-agent")
    leftover = layout.releases / V2
    leftover.mkdir(parents=True)
    (leftover / "from-a-killed-attempt").touch()
    for version in (V1, V2):
        layout.install(version, wheels, f"loa-agent=={version}", {"version": version, "by": "test"},
                       system_site_packages=True)
    return layout


def agent_of(python: Path) -> tuple[str, Path]:
    """The agent package that interpreter imports: version and file."""
    out = subprocess.run([str(python), "-c", "import agent; print(agent.__version__); print(agent.__file__)"],
                         capture_output=True, text=True, env=clean_env(), cwd="/", timeout=60)
    assert out.returncode == 0, out.stderr
    version, file = out.stdout.split()
    return version, Path(file)


def test_install_builds_one_complete_venv_per_version(venvs: Layout):
    assert venvs.installed() == [V1, V2]
    assert not (venvs.releases / V2 / "from-a-killed-attempt").exists()
    for version in (V1, V2):
        release = venvs.release(version)
        assert (release / ".complete").is_file()
        assert json.loads((release / "release.json").read_text()) == {"version": version, "by": "test"}
        imported, file = agent_of(release / "bin/python")
        assert imported == version and file.is_relative_to(release)
        # Built in place: its scripts name its own interpreter, so they run through any link (current, bin).
        assert (release / "bin/loa-agent").read_text().splitlines()[0] == f"#!{release}/bin/python"


def test_installing_a_complete_release_again_does_nothing(venvs: Layout, wheels: Path):
    marker = (venvs.release(V1) / ".complete").stat()
    # No pip, no venv: the wheels directory does not even exist.
    assert venvs.install(V1, wheels / "nowhere", "loa-agent==0", {}) == venvs.release(V1)
    assert (venvs.release(V1) / ".complete").stat().st_mtime_ns == marker.st_mtime_ns


def test_a_failed_install_says_why_and_leaves_nothing(venvs: Layout, wheels: Path):
    with pytest.raises(ReleaseError) as failed:
        venvs.install("9.9.9", wheels, "loa-agent==9.9.9", {}, system_site_packages=True)
    message = str(failed.value)
    assert "pip could not install loa-agent==9.9.9" in message
    assert "No matching distribution found for loa-agent==9.9.9" in message  # pip's own last line
    assert not venvs.release("9.9.9").exists() and venvs.installed() == [V1, V2]


def test_switch_moves_current_and_keeps_the_old_one_as_previous(venvs: Layout):
    venvs.switch(V1)
    assert (venvs.current_version(), venvs.previous_version()) == (V1, None)
    assert agent_of(venvs.current_link / "bin/python")[0] == V1
    venvs.switch(V2)
    assert (venvs.current_version(), venvs.previous_version()) == (V2, V1)
    assert os.readlink(venvs.current_link) == f"releases/{V2}"  # relative: the same under any prefix
    assert agent_of(venvs.current_link / "bin/python")[0] == V2
    venvs.switch(V2)  # already current: previous stays
    assert venvs.previous_version() == V1
    assert not list(venvs.root.glob(".*.tmp"))


# --- agent/releases.py on fake releases (real files, no venv) ---


@pytest.fixture
def box(tmp_path: Path) -> Path:
    """<root> with loa-boot and three complete releases whose loa-agent prints who it is and exits 0."""
    root = tmp_path.resolve() / "opt/loa-agent"
    for version in (OLD, V1, V2):
        fake_release(root, version)
    install_boot(root)
    return root


def test_switch_refuses_incomplete_releases_and_names_that_are_paths(box: Path):
    layout = Layout(box)
    fake_release(box, "2.0.0", complete=False)
    with pytest.raises(ReleaseError, match="release 2.0.0 is not complete"):
        layout.switch("2.0.0")
    for bad in ("../../etc", "", ".hidden", "a/b"):
        with pytest.raises(ReleaseError, match="not a release version"):
            layout.install(bad, box, "loa-agent", {})
    assert layout.current_version() is None and layout.installed() == [OLD, V1, V2]


def test_gc_keeps_current_and_previous_only(box: Path):
    layout = Layout(box)
    fake_release(box, "2.0.0", complete=False)
    layout.switch(V1)
    layout.switch(V2)
    (box / ".update.json.4242.tmp").write_text("{")  # a writer killed before its rename
    assert layout.gc() == [OLD, "2.0.0"]
    assert sorted(p.name for p in layout.releases.iterdir()) == [V1, V2]
    assert not list(box.glob(".*.tmp"))
    assert layout.gc() == []


def test_state_round_trips_and_an_unreadable_one_reads_as_empty(box: Path):
    layout = Layout(box)
    assert layout.read_state() == {}
    state = {"committed": V1, "highest": V1, "pending": pending(V2, V1), "last": None, "x-later": [1]}
    layout.write_state(state)
    assert layout.read_state() == state
    for torn in ('{"committed": "1.0', "", "[]"):
        layout.state_path.write_text(torn)
        assert layout.read_state() == {}


def test_versions_sort_by_pep_440():
    assert sorted(["1.10.0", "1.9.0", "1.10.0rc1", "0.2"], key=version_key) == ["0.2", "1.9.0", "1.10.0rc1", "1.10.0"]


def test_running_layout_is_the_one_loa_boot_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv("LOA_ROOT", raising=False)
    assert running_layout() is None
    monkeypatch.setenv("LOA_ROOT", str(tmp_path))
    layout = running_layout()
    assert layout is not None and layout.root == tmp_path and layout.boot == tmp_path / "loa-boot"


def test_a_hand_install_commits_supersedes_a_trial_and_collects(box: Path):
    """install.sh's `python -m agent.releases install`, on a release already complete (so no venv is built)."""
    layout = Layout(box)
    layout.switch(OLD)
    layout.switch(V1)
    layout.write_state({"committed": OLD, "highest": "5.0", "pending": pending(V1, OLD), "last": None})
    done = install_by_hand(layout, V2, box / "no-wheels", f"loa-agent=={V2}")
    assert done == [f"kept release {V2}, complete already (a changed checkout needs a new __version__)",
                    f"current {V2}, previous {V1}, highest 5.0", f"removed release {OLD}"]
    assert layout.read_state() == {"committed": V2, "highest": "5.0", "pending": None, "last": None}


# --- loa-boot ---


def test_a_plain_start_becomes_the_current_agent_with_its_arguments(box: Path):
    point(box, "current", V1)
    proc = subprocess.Popen(boot_command(box, "--config", "/etc/loa-agent/agent.yaml"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=boot_env(), cwd="/")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    # Same pid: loa-boot execs the agent, so systemd's main process (Type=notify, the watchdog) is the agent.
    assert out == f"loa-agent {V1} pid={proc.pid} root={box} args=--config /etc/loa-agent/agent.yaml\n"
    assert err.splitlines() == [f"loa-boot: starting {V1}"]
    assert not (box / "update.json").exists()  # nothing to record


def on_trial(box: Path, **fields: object) -> Layout:
    """V1 committed, then an update to V2 as the agent does it: pending written, then the switch."""
    layout = Layout(box)
    layout.switch(V1)
    layout.write_state({"committed": V1, "highest": V1, "pending": pending(V2, V1, **fields), "last": None})
    layout.switch(V2)
    return layout


def rolled_back(layout: Layout, reason: str, at: float = NOW) -> None:
    assert (layout.current_version(), layout.previous_version()) == (V1, V2)
    state = layout.read_state()
    assert state["pending"] is None and state["committed"] == V1
    assert state["last"] == {"jti": f"upd-{V2}", "version": V2, "previous": V1, "outcome": "rolled_back",
                             "reason": reason, "at": int(at), "reported": False}


def test_a_crash_loop_is_rolled_back_after_max_boots(box: Path):
    shutil.rmtree(box / "releases" / V2)
    fake_release(box, V2, exit_code=1)  # dies at once, before it could even read its config
    layout = on_trial(box)
    for n in (1, 2, 3):  # systemd's Restart=always
        out = run_boot(box, "--config", "agent.yaml")
        assert out.returncode == 1 and started(out) == V2
        trial = f"starting {V2} on trial (start {n} of at most 3, to be committed within {LIMIT_S} s of the switch)"
        assert said(out) == [trial]
        assert layout.read_state()["pending"]["boots"] == n
    out = run_boot(box, "--config", "agent.yaml")
    reason = "started 3 times without passing its health gate"
    assert out.returncode == 0 and started(out) == V1
    assert said(out) == [f"rolled back {V2} to {V1}: {reason}", f"starting {V1} (rolled back from {V2})"]
    rolled_back(layout, reason)
    out = run_boot(box)  # and it stays there
    assert started(out) == V1 and said(out) == [f"starting {V1}"]


def test_a_failed_health_gate_is_rolled_back_at_the_next_start(box: Path):
    layout = on_trial(box, boots=1, fail=GATE)
    out = run_boot(box)
    assert started(out) == V1 and said(out)[0] == f"rolled back {V2} to {V1}: {GATE}"
    rolled_back(layout, GATE)


@pytest.mark.parametrize("late", [0, 1])
def test_a_release_not_committed_in_time_is_rolled_back(box: Path, late: int):
    layout = on_trial(box, boots=1)
    out = run_boot(box, now=NOW + LIMIT_S + late)
    if late:
        reason = f"did not pass its health gate within {LIMIT_S} s of the switch"
        assert started(out) == V1 and said(out)[0] == f"rolled back {V2} to {V1}: {reason}"
        rolled_back(layout, reason, at=NOW + LIMIT_S + late)
    else:
        assert started(out) == V2 and layout.read_state()["pending"]["boots"] == 2


def test_a_switch_that_never_happened_drops_the_pending_update(box: Path):
    point(box, "current", V1)
    write_state(box, {"committed": V1, "highest": V1, "pending": pending(V2, V1), "last": None})
    out = run_boot(box)
    assert started(out) == V1
    assert said(out) == [f"the switch to {V2} never happened (current is {V1}): dropping the pending update",
                         f"starting {V1}"]
    assert read_state(box) == {"committed": V1, "highest": V1, "pending": None, "last": None}


@pytest.mark.parametrize("bad", ["yes", {"version": 3}, [V2]])
def test_a_malformed_pending_update_is_dropped(box: Path, bad: object):
    point(box, "current", V1)
    write_state(box, {"committed": V1, "pending": bad})
    out = run_boot(box)
    assert started(out) == V1 and said(out)[0].startswith("dropping a malformed pending update")
    assert read_state(box)["pending"] is None


@pytest.mark.parametrize("breakage", ["missing", "dangling", "incomplete", "outside"])
def test_a_broken_current_is_pointed_at_the_committed_release(box: Path, breakage: str):
    write_state(box, {"committed": V1, "highest": V2, "pending": None, "last": None})
    point(box, "previous", OLD)
    if breakage == "dangling":
        point(box, "current", "7.0.0")
    elif breakage == "incomplete":
        (box / "releases" / V2 / ".complete").unlink()
        point(box, "current", V2)
    elif breakage == "outside":
        (box / "current").symlink_to("/usr")
    out = run_boot(box)
    assert started(out) == V1
    assert said(out)[0].startswith("current ") and said(out)[0].endswith(f": pointed it at {V1}")
    assert Layout(box).current_version() == V1


def test_without_state_the_previous_then_the_newest_complete_release_starts(box: Path):
    point(box, "previous", OLD)
    assert started(run_boot(box)) == OLD
    for link in ("current", "previous"):
        point(box, link, None)
    fake_release(box, "1.10.0")
    out = run_boot(box)
    assert started(out) == "1.10.0" and said(out) == ["current is missing: pointed it at 1.10.0", "starting 1.10.0"]


def test_with_no_complete_release_it_fails_for_systemd_to_retry(tmp_path: Path):
    root = tmp_path / "opt/loa-agent"
    fake_release(root, V1, complete=False)
    install_boot(root)
    point(root, "current", V1)
    out = run_boot(root)
    assert out.returncode == 1 and out.stdout == ""
    assert said(out) == [f"no complete release in {root}/releases: nothing to start"]


def test_with_nothing_to_roll_back_to_the_failed_release_starts_again(tmp_path: Path):
    root = tmp_path / "opt/loa-agent"
    fake_release(root, V2)
    install_boot(root)
    point(root, "current", V2)
    write_state(root, {"pending": pending(V2, None, fail=GATE)})
    out = run_boot(root)
    assert started(out) == V2
    assert said(out) == [f"{V2} failed ({GATE}) but no other complete release exists: starting it again",
                         f"starting {V2} (start 1, nothing to roll back to)"]


@pytest.mark.parametrize("keep", [0, 0.5])
def test_a_torn_state_file_still_starts_a_complete_release(box: Path, keep: float):
    on_trial(box)
    text = json.dumps(read_state(box))
    (box / "update.json").write_text(text[: int(len(text) * keep)])
    out = run_boot(box)
    assert out.returncode == 0 and started(out) == V2
    assert said(out)[0].startswith(f"ignoring {box}/update.json") and said(out)[0].endswith("no update state")


# A rollback is: write the decision (pending.fail, last), move previous, move current, clear pending. Each state a
# crash can leave between those steps, and the start after it:
CUT_SHORT = {
    "after the decision": (V2, V1),
    "after previous moved": (V2, V2),
    "after current moved": (V1, V2),
}


@pytest.mark.parametrize("when", CUT_SHORT)
def test_a_rollback_cut_short_is_completed_by_the_next_start(box: Path, when: str):
    current, previous = CUT_SHORT[when]
    point(box, "current", current)
    point(box, "previous", previous)
    last = {"jti": f"upd-{V2}", "version": V2, "previous": V1, "outcome": "rolled_back", "reason": GATE,
            "at": int(NOW), "reported": False}
    write_state(box, {"committed": V1, "highest": V1, "pending": pending(V2, V1, boots=2, fail=GATE), "last": last})
    out = run_boot(box)
    assert started(out) == V1
    if current == V1:
        assert said(out)[0] == f"finishing the rollback of {V2} to {V1}: {GATE}"
    else:
        assert said(out)[0] == f"rolled back {V2} to {V1}: {GATE}"
    rolled_back(Layout(box), GATE)


def strace_can_kill() -> bool:
    if not shutil.which("strace"):
        return False
    return subprocess.run(["strace", "-qq", "-o", "/dev/null", "true"], capture_output=True).returncode == 0


# Every syscall of loa-boot's writes: strace kills it (SIGKILL, as kill -9) at the Nth call of one of them, N = 1, 2,
# ... until a run gets through: a kill at each step of writing a file, moving a link and flushing a directory.
KILL_POINTS = {"write": "write", "fsync": "fsync,fdatasync", "symlink": "symlink,symlinkat",
               "rename": "rename,renameat,renameat2"}


@pytest.mark.skipif(not strace_can_kill(), reason="needs strace and ptrace (scripts/setup-dev installs strace)")
@pytest.mark.parametrize("syscall", KILL_POINTS)
def test_kill_9_at_every_step_of_a_rollback_leaves_a_box_that_starts(box: Path, syscall: str):
    """loa-boot killed during its most write-heavy path (a rollback): after each kill the state file is whole,
    current names a complete release, and the next start completes the rollback."""
    layout = Layout(box)
    calls = KILL_POINTS[syscall]
    for n in range(1, 50):
        for link, version in (("current", V2), ("previous", V1)):
            point(box, link, version)
        write_state(box, {"committed": V1, "highest": V1, "pending": pending(V2, V1, boots=3), "last": None})
        killed = subprocess.run(["strace", "-f", "-qq", "-o", "/dev/null", "-e", f"trace={calls}",
                                 "-e", f"inject={calls}:signal=KILL:when={n}", *boot_command(box)],
                                capture_output=True, text=True, env=boot_env(), cwd="/", timeout=60)
        if killed.returncode == 0:
            break  # the nth call was past the end: every earlier one was a kill point
        assert killed.returncode == -9 or killed.returncode == 128 + 9, killed.stderr
        assert isinstance(json.loads((box / "update.json").read_text()), dict)  # never torn
        assert layout.complete(layout.current_version() or "")
        assert started(run_boot(box)) == V1
        rolled_back(layout, "started 3 times without passing its health gate")
    else:
        pytest.fail(f"loa-boot still killed at {calls} call {n}")
    assert n > 1, f"loa-boot made no {calls} call on its rollback path"


def test_the_agent_and_loa_boot_share_update_json(box: Path):
    """The agent writes pending and switches (agent/releases.py); loa-boot counts the starts and rolls back; the
    agent reads both; keys neither knows survive both."""
    layout = Layout(box)
    layout.switch(V1)
    layout.write_state({"committed": V1, "highest": V1, "pending": None, "last": None, "x-later": {"k": 1}})
    state = layout.read_state()
    state["pending"] = pending(V2, V1)
    layout.write_state(state)
    layout.switch(V2)
    assert started(run_boot(box)) == V2
    state = layout.read_state()
    assert state["pending"]["boots"] == 1
    state["pending"]["fail"] = GATE  # the new agent failed its gate: it says why and restarts
    layout.write_state(state)
    assert started(run_boot(box)) == V1
    rolled_back(layout, GATE)
    assert layout.read_state()["x-later"] == {"k": 1}

    # A later try passes its gate: the agent commits, and loa-boot starts it with no trial.
    state = layout.read_state()
    state.update(pending=pending(V2, V1), last=None)
    layout.write_state(state)
    layout.switch(V2)
    assert said(run_boot(box))[0].startswith(f"starting {V2} on trial")
    state = layout.read_state()
    state.update(committed=V2, highest=V2, pending=None)
    layout.write_state(state)
    out = run_boot(box)
    assert started(out) == V2 and said(out) == [f"starting {V2}"]
    assert layout.read_state()["x-later"] == {"k": 1}
    assert layout.gc() == [OLD]
