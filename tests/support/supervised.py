"""An installed box run as systemd runs it: `<root>/loa-boot --config ...` restarted whenever it exits
(Restart=always), with what is left of its process group killed first (KillMode=control-group), NOTIFY_SOCKET
set, and a watchdog (WatchdogSec=: no WATCHDOG=1 for `watchdog_s` and it is killed). The release's own code
runs, never the checkout's (no PYTHONPATH)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from .agentproc import Agent, NotifySocket


class SupervisedBox(Agent):
    def __init__(self, tmp: Path, port: int, root: Path, restart_s: float = 0.2, watchdog_s: float = 10.0,
                 **kw: Any):
        super().__init__(tmp, port, **kw)
        self.root, self.restart_s, self.watchdog_s = root, restart_s, watchdog_s
        self.starts = 0
        self.watchdog_kills = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env.update(extra)
        return env

    def start(self, wait_ready: bool = True, **env: str) -> SupervisedBox:
        npath = self.dir / "notify.sock"
        npath.unlink(missing_ok=True)
        self.notify = NotifySocket(npath, follow=True)
        self._stopping.clear()
        started = threading.Event()
        self._thread = threading.Thread(target=self._supervise, args=(env, started), daemon=True)
        self._thread.start()
        started.wait(10)
        if wait_ready:
            self.wait_ready(60)
        return self

    def _supervise(self, env: dict[str, str], started: threading.Event) -> None:
        assert self.notify is not None
        while not self._stopping.is_set():
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen([str(self.root / "loa-boot"), "--config", str(self.config_path)],
                                             env=self.env(NOTIFY_SOCKET=str(self.notify.path),
                                                          WATCHDOG_USEC=str(int(self.watchdog_s * 1e6)), **env),
                                             stdout=log, stderr=subprocess.STDOUT, cwd=self.dir,
                                             start_new_session=True)
            self.starts += 1
            started.set()
            self._watch(self.proc)
            self._kill_group(self.proc.pid)
            self._stopping.wait(self.restart_s)

    def _watch(self, proc: subprocess.Popen) -> None:
        """Until `proc` ends: kill it when WATCHDOG=1 has not come for watchdog_s (systemd's WatchdogSec=)."""
        notify = self.notify
        assert notify is not None
        last, seen = time.monotonic(), notify.mark()
        while proc.poll() is None:
            with notify.cond:
                notify.cond.wait(0.1)
                pinged = any("WATCHDOG=1" in m.splitlines() for _, m in notify.messages[seen:])
                seen = len(notify.messages)
            if pinged:
                last = time.monotonic()
            elif time.monotonic() - last > self.watchdog_s and proc.poll() is None:
                with open(self.log_path, "ab") as log:
                    log.write(f"supervisor: no WATCHDOG=1 for {self.watchdog_s:g} s: killing {proc.pid}\n".encode())
                self.watchdog_kills += 1
                proc.kill()
        proc.wait()

    @staticmethod
    def _kill_group(pgid: int) -> None:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def run_cli(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
        """The installed `loa` of the release in use, as a technician runs it."""
        return subprocess.run([str(self.root / "current/bin/loa"), *args, "--config", str(self.config_path)],
                              env=self.env(), capture_output=True, text=True, timeout=timeout)

    def kill(self) -> None:
        """kill -9 of the agent's main process (the supervisor starts it again, as systemd would)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()

    def stop(self, timeout: float = 15.0) -> int:
        self._stopping.set()
        rc = super().stop(timeout)
        if self._thread:
            self._thread.join(timeout)
        return rc

    def close(self) -> None:
        self._stopping.set()
        proc = self.proc
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc:
            self._kill_group(proc.pid)
        if self._thread:
            self._thread.join(10)
        if self.notify:
            self.notify.close()
