"""The sd_notify datagram protocol (READY=1, WATCHDOG=1, STATUS=, STOPPING=1), no libsystemd needed."""

from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self, address: str | None = None):
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        # A leading "@" is Linux's abstract namespace.
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.sock: socket.socket | None = None
        if self.address:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self.sock is not None

    def notify(self, *lines: str) -> bool:
        if self.sock is None:
            return False
        try:
            # Never blocks: a receiver that does not read (systemd busy, a test's socket) fills the queue after
            # net.unix.max_dgram_qlen (often 10) datagrams, and a blocking send would stop the core thread there.
            self.sock.sendto("\n".join(lines).encode(), socket.MSG_DONTWAIT, self.address)
            return True
        except OSError:  # BlockingIOError (queue full) included: a missed WATCHDOG=1 is sent again soon
            return False

    @staticmethod
    def watchdog_interval() -> float | None:
        """Half of WatchdogSec (systemd's advice), or None when no watchdog is asked for."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and pid != str(os.getpid())):
            return None
        try:
            return int(usec) / 2e6
        except ValueError:
            return None
