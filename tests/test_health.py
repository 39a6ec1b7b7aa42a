"""Health: faults with hysteresis from a fake sysfs/procfs tree, sensors on simulated GPIO with debounce,
the nightly restart window, and all of it in the heartbeat."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from support.agentproc import eventually
from support.incore import InCore

from agent import config
from agent.ipc import request

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NOON = datetime(2026, 11, 23, 12, 0, tzinfo=TZ).timestamp()


def fake_tree(root: Path, state: Path) -> dict[str, Path]:
    """The files Health reads, under root/proc and root/sys."""
    files = {
        "temp": root / "sys/class/thermal/thermal_zone0/temp",
        "throttled": root / "sys/devices/platform/soc/soc:firmware/get_throttled",
        "mounts": root / "proc/self/mounts",
        "loadavg": root / "proc/loadavg",
        "meminfo": root / "proc/meminfo",
    }
    for p in files.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    files["temp"].write_text("52000\n")
    files["throttled"].write_text("0x0\n")
    files["loadavg"].write_text("0.25 0.20 0.10 1/123 4567\n")
    files["meminfo"].write_text("MemTotal: 1000000 kB\nMemAvailable: 600000 kB\n")
    mounts(files, state, "rw")
    return files


def mounts(files: dict[str, Path], state: Path, mode: str) -> None:
    files["mounts"].write_text(f"/dev/root / ext4 rw,noatime 0 0\n/dev/mmcblk0p3 {state} ext4 {mode},noatime 0 0\n")


def health_settings(tmp: Path, **extra: object) -> dict:
    return {"health": {"check_s": 0.05, "raise_after": 2, "clear_after": 2, "proc": str(tmp / "root/proc"),
                       "sys": str(tmp / "root/sys")}, **extra}


def fault_events(box: InCore, code: str) -> list[str]:
    return [p["kind"] for p in box.outbox() if p.get("kind", "").startswith("fault.") and p["data"]["code"] == code]


def test_thresholds_raise_and_clear_faults_once_each_way(tmp_path, keys):
    files = fake_tree(tmp_path / "root", tmp_path / "state")
    with InCore(tmp_path, keys, health_settings(tmp_path), start=NOON) as box:
        hb = lambda: box.call(lambda: box.core.heartbeat(advance=False))  # noqa: E731
        checks = lambda: box.call(lambda: box.core.parts.monitor.checks)  # noqa: E731
        assert hb()["sys"]["cpu_temp_c"] == 52.0 and hb()["sys"]["load1"] == 0.25
        assert hb()["sys"]["mem_used_pct"] == 40.0 and hb()["faults"] == []

        files["temp"].write_text("85000\n")  # over 80 °C
        eventually(lambda: "overheat" in hb()["faults"], what="overheat raised")
        files["temp"].write_text("78000\n")  # inside the 75-80 band: no change, however long it stays
        n = checks()
        eventually(lambda: checks() >= n + 10, what="ten more checks")
        files["temp"].write_text("80500\n")
        n = checks()
        eventually(lambda: checks() >= n + 10, what="ten more checks")
        assert fault_events(box, "overheat") == ["fault.raised"]  # one event, not one per check
        files["temp"].write_text("70000\n")
        eventually(lambda: "overheat" not in hb()["faults"], what="overheat cleared")
        assert fault_events(box, "overheat") == ["fault.raised", "fault.cleared"]
        cleared = [p["data"] for p in box.outbox() if p.get("kind") == "fault.cleared"][0]
        assert cleared["cleared_at"] > cleared["raised_at"] and cleared["duration_s"] >= 0

        files["throttled"].write_text("0x50005\n")  # under-voltage now (bit 0), throttled (bit 2), and since boot
        eventually(lambda: "undervoltage" in hb()["faults"], what="undervoltage raised")
        assert hb()["sys"]["undervoltage"] is True and hb()["sys"]["throttled"] is True
        files["throttled"].write_text("0x50000\n")  # only "has occurred since boot" left
        eventually(lambda: "undervoltage" not in hb()["faults"], what="undervoltage cleared")

        box.call(lambda: box.core.cfg["health"].update(disk_low_mb=10**7, disk_clear_mb=10**7 + 1))
        eventually(lambda: "disk_low" in hb()["faults"], what="disk_low raised")
        box.call(lambda: box.core.cfg["health"].update(disk_low_mb=1, disk_clear_mb=2))
        eventually(lambda: "disk_low" not in hb()["faults"], what="disk_low cleared")

        mounts(files, tmp_path / "state", "ro")  # the kernel remounted the card read-only
        eventually(lambda: "storage_readonly" in hb()["faults"], what="storage_readonly raised")
        mounts(files, tmp_path / "state", "rw")
        eventually(lambda: "storage_readonly" not in hb()["faults"], timeout=20, what="storage_readonly cleared")
        for code in ("undervoltage", "disk_low", "storage_readonly"):
            assert fault_events(box, code) == ["fault.raised", "fault.cleared"], code


def test_sensors_debounced_with_events_faults_and_heartbeat(tmp_path, keys):
    fake_tree(tmp_path / "root", tmp_path / "state")
    settings = health_settings(tmp_path, sensors=[
        {"name": "door_open", "pin": 5, "debounce_ms": 150},
        {"name": "mains_power", "pin": 6, "debounce_ms": 150},
        {"name": "amp_ok", "pin": 7, "debounce_ms": 50}],
        zones=[{"name": "main", "relay_pin": 17, "feedback_pin": 18}], amp={"warmup_s": 0, "hold_s": 5,
                                                                          "feedback_s": 0.2})
    with InCore(tmp_path, keys, settings, start=NOON) as box:
        gpio = box.core.parts.player.gpio
        hb = lambda: box.call(lambda: box.core.heartbeat(advance=False))  # noqa: E731
        drive = lambda pin, on: box.call(lambda: gpio.drive(pin, on))  # noqa: E731
        sensor_events = lambda: [(e["name"], e["value"]) for e in box.events("sensor")]  # noqa: E731
        # sim inputs start inactive: no mains (on battery), door closed, amplifier not OK (it is off anyway)
        assert hb()["sensors"] == {"door_open": False, "mains_power": False, "amp_ok": False}
        assert "mains_lost" in hb()["faults"] and "amp_no_feedback" not in hb()["faults"]
        drive(6, True)  # mains back
        eventually(lambda: "mains_lost" not in hb()["faults"], what="mains back")
        assert sensor_events() == [("mains_power", True)]

        for on in (True, False, True, False, True):  # a door banging in the wind, faster than the debounce
            drive(5, on)
        eventually(lambda: hb()["sensors"]["door_open"] is True, what="door open settled")
        assert sensor_events() == [("mains_power", True), ("door_open", True)]  # one change, not five
        assert "door_open" in hb()["faults"]
        drive(5, False)
        eventually(lambda: "door_open" not in hb()["faults"], what="door closed")
        assert fault_events(box, "door_open") == ["fault.raised", "fault.cleared"]

        drive(6, False)  # mains lost again
        eventually(lambda: "mains_lost" in hb()["faults"], what="mains lost")

        # a relay that switches on but whose feedback (pin 18) never answers, and an amplifier not OK
        box.local("play", {"source": {"kind": "tone", "name": "test", "duration_s": 2}, "level": "priority"})
        eventually(lambda: "amp_no_feedback" in hb()["faults"], what="no feedback from the relay")
        assert hb()["amp"]["zones"]["main"] is True
        assert [e for e in box.events("fault.raised") if e["code"] == "amp_no_feedback"][0]["message"]


def test_nightly_restart_waits_until_nothing_plays(tmp_path, keys):
    fake_tree(tmp_path / "root", tmp_path / "state")
    before = datetime(2026, 11, 23, 1, 59, 0, tzinfo=TZ).timestamp()
    settings = health_settings(tmp_path, maintenance={"restart_window": {"from": "02:00", "to": "03:00"}})
    with InCore(tmp_path, keys, settings, start=before) as box:
        box.local("play", {"source": {"kind": "tone", "name": "test", "duration_s": 3}, "level": "priority"})
        eventually(lambda: box.call(lambda: box.core.parts.player.state()["state"]) == "playing", what="playing")
        two = datetime(2026, 11, 23, 2, 0, tzinfo=TZ).timestamp()
        box.clock.jump(two + box.core.parts.maintenance.spread * 3600 + 0.5)  # just past this box's moment tonight
        assert box.events("maintenance.restart") == []  # not while a programme plays
        eventually(lambda: box.core.restart_requested, timeout=20, what="the restart once the tone ended")
        assert len(box.events("maintenance.restart")) == 1
        assert box.events("play.end")[0]["completed"] is True  # the programme was not cut
        assert 0 < box.core.parts.maintenance.spread < 1  # boxes spread over the window by their ids


def test_heartbeat_over_mqtt_shows_a_sensor_driven_through_the_socket(make_agent, province, tmp_path):
    agent = make_agent(config={"audio": {"backend": "null"}, "sensors": [{"name": "door_open", "pin": 5,
                                                                           "debounce_ms": 20}]})
    mark = province.mark()
    agent.start()
    province.status("online", after=mark)
    request(config.load(agent.config_path)["paths"]["socket"], "sim_drive", pin=5, active=True)
    event = province.event("sensor", after=mark)
    assert event["data"] == {"name": "door_open", "value": True}
    province.event("fault.raised", after=mark)
    hb = province.done(province.send("status.get"))["result"]
    assert hb["sensors"] == {"door_open": True} and "door_open" in hb["faults"]


def test_the_storage_probe_writes_only_when_the_database_has_not_committed_since_the_last(tmp_path, keys):
    """A commit (write + fsync, synchronous=FULL) already proves the card takes writes: the probe's own write is
    for when nothing else wrote (docs/sd-card.md). A failing probe still raises storage_readonly."""
    from agent.monitor import PROBE_EVERY

    fake_tree(tmp_path / "root", tmp_path / "state")
    with InCore(tmp_path, keys, health_settings(tmp_path, health={"check_s": 3600, "raise_after": 1}),
                start=NOON) as box:
        monitor, store = box.core.parts.monitor, box.core.store
        probes: list[str | None] = []
        answer: list[str | None] = [None]

        def probe() -> str | None:
            probes.append(answer[0])
            return answer[0]

        def checks(commit: bool) -> int:
            """PROBE_EVERY checks (one of them is a probe's turn), a commit before them or not."""
            eventually(lambda: not box.call(lambda: monitor._probing), what="the last probe done")
            n = len(probes)
            if commit:
                box.call(lambda: store.ledger_write([(None, ("up", "", NOON, NOON + 1))]))
            for _ in range(PROBE_EVERY):
                box.call(monitor.check)
            eventually(lambda: not box.call(lambda: monitor._probing), what="the probe done")
            return len(probes) - n

        box.call(lambda: setattr(monitor.health, "write_read_back", probe))
        assert checks(commit=False) == 1, "nothing committed: the probe writes"
        assert checks(commit=True) == 0, "a commit since the last probe was the probe"
        assert checks(commit=False) == 1
        answer[0] = "Input/output error (.health-probe)"
        assert checks(commit=False) == 1
        assert "storage_readonly" in box.call(lambda: box.core.faults.codes())
