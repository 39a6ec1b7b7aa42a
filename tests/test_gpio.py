"""GPIO drivers: the contract every backend keeps, run against each backend that loads here;
unknown or unloadable backends are one loud error, never a silent fallback."""

from __future__ import annotations

import glob

import pytest

import drivers
from agent.errors import DriverError

LOADABLE = ["sim"]
try:
    drivers.load("gpio", "gpiod")
    if glob.glob("/dev/gpiochip*"):
        LOADABLE.append("gpiod")
except DriverError:
    pass


@pytest.fixture(params=LOADABLE)
def gpio(request):
    g = drivers.load("gpio", request.param)({"chip": "/dev/gpiochip0"})
    yield g
    g.close()


def test_outputs_start_inactive_switch_and_go_off_at_close(gpio):
    gpio.setup_output(17, active_high=False)
    assert gpio.read(17) is False
    gpio.write(17, True)
    assert gpio.read(17) is True
    gpio.close()
    assert gpio.read(17) is False


def test_sim_records_a_timestamped_history_and_drives_inputs():
    sim = drivers.load("gpio", "sim")({})
    seen = []
    sim.setup_input(22, on_change=lambda pin, active: seen.append((pin, active)))
    sim.setup_output(17)
    sim.write(17, True)
    sim.drive(22, True)
    sim.drive(22, True)  # no edge, no callback
    sim.drive(22, False)
    assert seen == [(22, True), (22, False)]
    changes = [(pin, active) for _, pin, active in sim.history]
    assert changes == [(22, False), (17, False), (17, True), (22, True), (22, False)]
    times = [t for t, _, _ in sim.history]
    assert times == sorted(times)
    with pytest.raises(ValueError):
        sim.drive(17, False)


def test_unknown_backend_is_a_loud_error_listing_the_choices():
    with pytest.raises(DriverError, match=r"unknown backend 'nope' \(choices: rpigpio, gpiod, sim\)"):
        drivers.load("gpio", "nope")


def test_backend_that_cannot_load_here_says_so():
    try:
        import RPi.GPIO  # noqa: F401
        pytest.skip("RPi.GPIO loads on this machine")
    except (ImportError, RuntimeError):
        pass
    with pytest.raises(DriverError, match="rpigpio cannot be loaded on this machine"):
        drivers.load("gpio", "rpigpio")
