"""`loa doctor` (being written): a pass/fail line per check, with a hint for each failure."""

from __future__ import annotations

import argparse


def cli(args: argparse.Namespace, path: str) -> int:
    raise NotImplementedError
