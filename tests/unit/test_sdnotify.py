"""sd_notify never blocks the core thread, even when nobody reads the socket."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from agent.sdnotify import Notifier


def test_a_receiver_that_does_not_read_never_blocks_the_sender(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(path))
    qlen = int(Path("/proc/sys/net/unix/max_dgram_qlen").read_text())
    notifier = Notifier(str(path))
    sent: list[bool] = []
    sender = threading.Thread(target=lambda: sent.extend(notifier.notify("WATCHDOG=1") for _ in range(qlen + 50)),
                              daemon=True)
    sender.start()
    sender.join(10)
    assert not sender.is_alive(), "notify() blocked on a full queue"
    assert sent[0] and not sent[-1]  # the queue filled up; the rest were dropped, not waited for
    receiver.settimeout(1)
    assert receiver.recv(64) == b"WATCHDOG=1"
    receiver.close()
