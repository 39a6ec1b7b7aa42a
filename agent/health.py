"""Cheap health readings from /proc and /sys for the heartbeat; every reading fails soft to None.

Roots are parameters so tests can point them at a fake tree.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
from pathlib import Path

SIOCGIFADDR = 0x8915
TIME_ERROR = 5  # adjtimex(2): the kernel says the clock is not synchronised


class Health:
    def __init__(self, state_dir: str, *, proc: str = "/proc", sys: str = "/sys"):
        self.state_dir = state_dir
        self.proc = Path(proc)
        self.sys = Path(sys)
        self._libc: ctypes.CDLL | None = None

    def sys_sample(self) -> dict:
        return {
            "cpu_temp_c": self.cpu_temp_c(),
            "load1": self.load1(),
            "mem_used_pct": self.mem_used_pct(),
            "disk_free_mb": self.disk_free_mb(),
            "undervoltage": self.undervoltage(),
            "uptime_s": self.host_uptime_s(),
        }

    def _read(self, path: Path) -> str | None:
        try:
            return path.read_text()
        except (OSError, UnicodeDecodeError):
            return None

    def cpu_temp_c(self) -> float | None:
        base = self.sys / "class/thermal"
        try:
            zones = sorted(base.glob("thermal_zone*"))
        except OSError:
            return None
        for zone in zones:
            text = self._read(zone / "temp")
            if text and text.strip().lstrip("-").isdigit():
                return round(int(text) / 1000, 1)
        return None

    def load1(self) -> float | None:
        text = self._read(self.proc / "loadavg")
        try:
            return float(text.split()[0]) if text else None
        except (ValueError, IndexError):
            return None

    def mem_used_pct(self) -> float | None:
        text = self._read(self.proc / "meminfo")
        if not text:
            return None
        info = {}
        for line in text.splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                info[key] = int(parts[0])
        total, avail = info.get("MemTotal"), info.get("MemAvailable")
        if not total or avail is None:
            return None
        return round(100 * (total - avail) / total, 1)

    def disk_free_mb(self) -> float | None:
        try:
            st = os.statvfs(self.state_dir)
        except OSError:
            return None
        return round(st.f_bavail * st.f_frsize / 2**20, 1)

    def undervoltage(self) -> bool | None:
        # Raspberry Pi firmware node; bit 0 = under-voltage now, bit 16 = has occurred since boot.
        text = self._read(self.sys / "devices/platform/soc/soc:firmware/get_throttled")
        if text is None:
            return None
        try:
            return bool(int(text.strip(), 16) & 0x1)
        except ValueError:
            return None

    def host_uptime_s(self) -> float | None:
        text = self._read(self.proc / "uptime")
        try:
            return float(text.split()[0]) if text else None
        except (ValueError, IndexError):
            return None

    def net(self) -> dict:
        iface = self.default_iface()
        return {"iface": iface, "ip": _iface_ip(iface) if iface else None, "wifi_signal_dbm": self.wifi_signal(iface)}

    def default_iface(self) -> str | None:
        text = self._read(self.proc / "net/route")
        if not text:
            return None
        for line in text.splitlines()[1:]:
            cols = line.split()
            if len(cols) > 2 and cols[1] == "00000000":
                return cols[0]
        return None

    def wifi_signal(self, iface: str | None) -> float | None:
        text = self._read(self.proc / "net/wireless") if iface else None
        for line in (text or "").splitlines()[2:]:
            name, _, rest = line.partition(":")
            if name.strip() == iface:
                try:
                    return float(rest.split()[2].rstrip("."))
                except (ValueError, IndexError):
                    return None
        return None

    def clock_synced(self) -> bool | None:
        """adjtimex(2) in read-only mode: a syscall, no process spawned."""
        try:
            if self._libc is None:
                self._libc = ctypes.CDLL(None, use_errno=True)  # libc is already mapped; ctypes.util costs ~3 MB
            buf = ctypes.create_string_buffer(512)  # struct timex with modes = 0 (read only)
            state = self._libc.adjtimex(buf)
        except (OSError, AttributeError):
            return None
        return None if state < 0 else state != TIME_ERROR


def _iface_ip(iface: str) -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            packed = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("256s", iface[:15].encode()))
        return socket.inet_ntoa(packed[20:24])
    except OSError:
        return None
