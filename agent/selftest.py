"""Self-test (being written): a test tone through each zone with the relay sequence, relay feedback, and
the 1 kHz level heard by a microphone against a calibration reference."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from .commands import Result

if TYPE_CHECKING:
    from .core import Core


class SelfTest:
    def __init__(self, core: Core):
        self.core = core

    def start(self, *, calibrate: bool, done: Callable[[Result], None]) -> None:
        done(Result("failed", "internal", "selftest is not implemented yet"))


def cli(args: argparse.Namespace, path: str) -> int:
    raise NotImplementedError
