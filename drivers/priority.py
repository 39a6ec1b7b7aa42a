"""CPU priority for background work: rendering frames, decoding a programme, speech that is not needed yet.

On a Pi-class CPU every core is busy when a stream decodes and the board renders, and the urgent path (the
MQTT link, the core, the sink feeding the siren) must not wait for a CPU behind them. Background threads and
the processes they start run at nice 10 (a tenth of the weight of nice 0 under the kernel's fair scheduler,
also within a cgroup's CPU quota); they still get every cycle nothing urgent wants (docs/reliability.md,
"A Pi-class CPU budget")."""

from __future__ import annotations

import os
import threading

NICE = 10


def background(pid: int | None = None) -> None:
    """Lower the calling thread (Linux: nice is per thread, and threads and processes it starts inherit it), or
    the process `pid`, to nice 10. Best effort: where it cannot be lowered, it runs as it was."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id() if pid is None else pid, NICE)
    except (OSError, AttributeError):  # not Linux, or the process is gone
        pass
