"""A throwaway PKI for tests, made by `loa-console pki` (console/loa_console/pki.py, openssl): one implementation.

Files in the directory: ca.pem/ca.key, broker.pem/broker.key (subjectAltName IP:127.0.0.1, DNS:localhost) and
DEVICE.pem/DEVICE.key per device (CN = the device id, clientAuth); keys are mode 0600.
"""

from __future__ import annotations

from pathlib import Path

from loa_console import pki


def make_pki(d: Path, devices: tuple[str, ...] = ("GL-0001",)) -> Path:
    pki.make_pki(d, devices, days=30)
    return d
