"""Cheap health readings from /proc and /sys for the heartbeat; every reading fails soft to None.

Roots are parameters so tests can point them at a fake tree. Nothing here spawns a process on the
heartbeat's path: the clock comes from adjtimex(2) (not `timedatectl`), throttling from the Pi firmware's
sysfs node or the rpi_volt hwmon alarm (not `vcgencmd`); only the 4G signal needs ModemManager's `mmcli`,
which runs on a worker thread at most every few minutes and is cached.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

SIOCGIFADDR = 0x8915
MMCLI_EVERY_S = 300.0
CELLULAR = ("wwan", "ppp", "usb", "cdc-wdm")  # interface names of 4G modems
TIME_ERROR = 5  # adjtimex(2): the kernel says the clock is not synchronised
PROBE_BYTES = 32


class Health:
    def __init__(self, state_dir: str, *, proc: str = "/proc", sys: str = "/sys"):
        self.state_dir = state_dir
        self.proc = Path(proc)
        self.sys = Path(sys)
        self._libc: ctypes.CDLL | None = None
        self._cell: tuple[float, float | None] = (-MMCLI_EVERY_S, None)  # (monotonic time read, signal %)
        self._cell_busy = False

    def sys_sample(self) -> dict:
        undervoltage, throttled = self.power_flags()
        return {
            "cpu_temp_c": self.cpu_temp_c(),
            "load1": self.load1(),
            "mem_used_pct": self.mem_used_pct(),
            "disk_free_mb": self.disk_free_mb(),
            "undervoltage": undervoltage,
            "throttled": throttled,
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

    def _throttled_bits(self) -> int | None:
        # Raspberry Pi firmware node (what `vcgencmd get_throttled` prints): bit 0 under-voltage now,
        # bit 1 frequency capped, bit 2 throttled, bit 3 soft temperature limit; bits 16-19 since boot.
        text = self._read(self.sys / "devices/platform/soc/soc:firmware/get_throttled")
        try:
            return int(text.strip(), 16) if text else None
        except ValueError:
            return None

    def power_flags(self) -> tuple[bool | None, bool | None]:
        """(under-voltage now, throttled or frequency-capped now), from one read of the firmware node."""
        bits = self._throttled_bits()
        if bits is not None:
            return bool(bits & 0x1), bool(bits & 0x6)
        try:  # newer kernels: the rpi_volt hwmon device's low-voltage alarm (throttling is not exposed there)
            alarms = sorted((self.sys / "class/hwmon").glob("hwmon*/in0_lcrit_alarm"))
        except OSError:
            return None, None
        for alarm in alarms:
            text = self._read(alarm)
            if text is not None and text.strip() in ("0", "1"):
                return text.strip() == "1", None
        return None, None

    def undervoltage(self) -> bool | None:
        return self.power_flags()[0]

    def storage_readonly(self) -> bool | None:
        """Whether the file system holding the state dir is mounted read-only (an SD card the kernel gave up
        on is remounted ro)."""
        text = self._read(self.proc / "self/mounts") or self._read(self.proc / "mounts")
        if not text:
            return None
        target = os.path.realpath(self.state_dir)
        best: tuple[int, bool] | None = None
        for line in text.splitlines():
            cols = line.split()
            if len(cols) < 4:
                continue
            mnt = cols[1].replace("\\040", " ")
            if (target == mnt or target.startswith(mnt.rstrip("/") + "/")) and (best is None or len(mnt) > best[0]):
                best = (len(mnt), "ro" in cols[3].split(","))
        return None if best is None else best[1]

    def write_read_back(self) -> str | None:
        """A small write, fdatasync and read-back in the state dir: None if it worked, else what failed.
        It may block on a dying card: run it on a worker thread, never on the core's.

        The file is rewritten in place at one length (no O_TRUNC): the same block each time, so the card gets
        that block and the inode's times, not a freed and newly allocated block with its bitmaps."""
        path = Path(self.state_dir) / ".health-probe"
        payload = f"{time.time():.6f}".encode().ljust(PROBE_BYTES)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                os.pwrite(fd, payload, 0)
                os.fdatasync(fd)
                back = os.pread(fd, PROBE_BYTES, 0)
            finally:
                os.close(fd)
            if back != payload:
                return "what was written did not read back"
        except OSError as e:
            return f"{e.strerror or e} ({path})"
        return None

    def host_uptime_s(self) -> float | None:
        text = self._read(self.proc / "uptime")
        try:
            return float(text.split()[0]) if text else None
        except (ValueError, IndexError):
            return None

    def net(self) -> dict:
        iface = self.default_iface()
        return {"iface": iface, "ip": _iface_ip(iface) if iface else None, "wifi_signal_dbm": self.wifi_signal(iface),
                "cell_signal_pct": self.cell_signal(iface)}

    def cell_signal(self, iface: str | None) -> float | None:
        """4G signal quality from ModemManager, cached; refreshed on a worker thread (mmcli is a process)."""
        if not iface or not iface.startswith(CELLULAR):
            return None
        read_at, value = self._cell
        if time.monotonic() - read_at >= MMCLI_EVERY_S and not self._cell_busy and shutil.which("mmcli"):
            self._cell_busy = True
            threading.Thread(target=self._read_mmcli, name="mmcli", daemon=True).start()
        return value

    def _read_mmcli(self) -> None:
        value = None
        try:
            out = subprocess.run(["mmcli", "-m", "any", "--output-keyvalue"], capture_output=True, text=True,
                                 timeout=10).stdout
            for line in out.splitlines():
                key, _, val = line.partition(":")
                if key.strip() == "modem.generic.signal-quality.value":
                    value = float(val.strip())
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
        self._cell = (time.monotonic(), value)
        self._cell_busy = False

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
