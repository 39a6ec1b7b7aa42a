"""The content-addressed media cache: `cache/<sha256>` under the state dir.

A file is only ever put there under its digest after the bytes were checked
(written to a temporary name, renamed after the check), and it is checked again
before it plays: a file whose bytes do not match its name never plays.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHA256 = re.compile(r"[0-9a-f]{64}")


class MediaError(Exception):
    """code is an ack code (media_unavailable, bad_schema) or disk_full."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def sha256_file(path: Path, bufsize: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(bufsize):
            h.update(chunk)
    return h.hexdigest()


class MediaCache:
    def __init__(self, directory: Path, limits: DownloadLimits | None = None):
        self.dir = Path(directory)
        self.limits = limits or DownloadLimits()  # what a Downloader into this cache may fetch
        self._verified: dict[str, tuple[float, int]] = {}  # digest -> (mtime, size) last found good

    def path(self, sha256: str) -> Path:
        if not SHA256.fullmatch(sha256):
            raise MediaError("bad_schema", f"sha256 must be 64 lowercase hex digits, got {sha256!r}")
        return self.dir / sha256

    def verified(self, sha256: str, size: int | None = None) -> Path:
        """The cached file for this digest, checked; MediaError when missing or corrupt (then removed)."""
        path = self.path(sha256)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise MediaError("media_unavailable", f"media {sha256[:12]}… is not in the cache") from None
        if size is not None and st.st_size != size:
            self._reject(path, sha256, f"size {st.st_size} differs from the announced {size}")
        if self._verified.get(sha256) != (st.st_mtime, st.st_size):
            actual = sha256_file(path)
            if actual != sha256:
                self._reject(path, sha256, f"its bytes hash to {actual[:12]}…")
            self._verified[sha256] = (st.st_mtime, st.st_size)
        return path

    def _reject(self, path: Path, sha256: str, why: str) -> None:
        self._verified.pop(sha256, None)
        quarantine = self.dir / "rejected"
        quarantine.mkdir(exist_ok=True)
        os.replace(path, quarantine / sha256)
        raise MediaError("media_unavailable", f"cached media {sha256[:12]}… is corrupt ({why}); moved aside, "
                                              "not played")

    def add_file(self, src: Path) -> str:
        """Copy a local file into the cache (atomically, under its digest); returns the digest."""
        import tempfile  # rare path: not loaded at start (RSS)

        self.dir.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".incoming-")
        try:
            with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
                while chunk := fin.read(1 << 20):
                    h.update(chunk)
                    fout.write(chunk)
                fout.flush()
                os.fsync(fout.fileno())
            digest = h.hexdigest()
            os.replace(tmp, self.dir / digest)
            return digest
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def touch(self, sha256: str) -> None:
        """Mark as used now (mtime is the LRU clock; it survives restarts)."""
        path = self.path(sha256)
        try:
            os.utime(path)
            st = path.stat()
        except OSError:
            return
        if sha256 in self._verified:  # still the bytes we checked: only the clock moved
            self._verified[sha256] = (st.st_mtime, st.st_size)

    def entries(self) -> list[tuple[str, int, float]]:
        """(digest, size, last use) of every cached file, least recently used first."""
        if not self.dir.exists():
            return []
        out = []
        for p in self.dir.iterdir():
            if SHA256.fullmatch(p.name) and p.is_file():
                st = p.stat()
                out.append((p.name, st.st_size, st.st_mtime))
        return sorted(out, key=lambda e: e[2])

    def evict(self, budget_bytes: int, keep: set[str]) -> list[str]:
        """Remove least recently used files until under budget, never one in `keep` (due soon)."""
        from .audio.loudness import sidecar

        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        removed = []
        for digest, size, _ in entries:
            if total <= budget_bytes:
                break
            if digest in keep:
                continue
            (self.dir / digest).unlink(missing_ok=True)
            sidecar(self.dir / digest).unlink(missing_ok=True)  # its loudness goes with it
            self._verified.pop(digest, None)
            total -= size
            removed.append(digest)
        return removed

    def stats(self) -> dict:
        entries = self.entries()
        return {"items": len(entries), "bytes": sum(size for _, size, _ in entries)}


@dataclass(frozen=True)
class DownloadLimits:
    """What any download may cost (config `cache.max_download_mb`, `cache.download_deadline_s`)."""

    max_bytes: int = 1 << 30  # when no size is announced
    deadline_s: float = 1800.0  # the whole transfer, however slowly it trickles

    @classmethod
    def of(cls, cache_cfg: dict) -> DownloadLimits:
        return cls(int(cache_cfg["max_download_mb"] * 2**20), float(cache_cfg["download_deadline_s"]))


class Downloader:
    """The one way the agent fetches a file (media, CAP resources, update bundles): streamed to disk, resumable
    (HTTP Range), bytes as sent (`Accept-Encoding: identity`, never unpacked), at most the announced size (else
    the config's cap), within a total deadline as well as per-read timeouts; checked before it is renamed in.

    `open_part` is how the partial file is opened (a test injects one that fills the disk).
    """

    def __init__(self, cache: MediaCache, *, connect_s: float = 10.0, read_s: float = 30.0,
                 open_part: Any = None, limits: DownloadLimits | None = None):
        self.cache = cache
        self.limits = limits or cache.limits
        self.timeouts = (connect_s, min(read_s, self.limits.deadline_s))
        self.open_part = open_part or (lambda path: open(path, "ab"))

    def fetch(self, url: str, sha256: str, size: int | None = None,
              progress: Any = None) -> Path:
        """Download url into cache/<sha256> unless it is already there; MediaError on any failure."""
        try:
            return self.cache.verified(sha256, size)
        except MediaError:
            pass
        self.cache.dir.mkdir(parents=True, exist_ok=True)
        part = self.cache.dir / f".part-{sha256}"
        self.stream(url, part, size, progress, resume=True)
        actual = sha256_file(part)
        if actual != sha256:
            part.unlink()
            raise MediaError("media_unavailable", f"{url}: downloaded bytes hash to {actual[:12]}…, "
                                                  f"not {sha256[:12]}…; discarded")
        final = self.cache.dir / sha256
        os.replace(part, final)
        return final

    def stream(self, url: str, part: Path, size: int | None = None, progress: Any = None, *,
               resume: bool = False, max_bytes: int | None = None) -> Path:
        """Stream url's bytes into `part` (continued with a Range request when `resume`); MediaError when it
        is larger than `size` (or the cap), slower than the deadline, or fails; the partial file is kept only
        for a resumable download."""
        import errno
        import time

        import requests  # only when something is fetched

        cap = size if size is not None else min(max_bytes or self.limits.max_bytes, self.limits.max_bytes)
        have = part.stat().st_size if resume and part.exists() else 0
        if not resume:
            part.unlink(missing_ok=True)
        if size is not None:  # the space is checked first: a bundle must not fill the disk half way
            import shutil

            if shutil.disk_usage(part.parent).free < size - have:
                raise MediaError("disk_full", f"{url}: {size - have} bytes announced, less free on the disk")
        deadline = time.monotonic() + self.limits.deadline_s
        headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={have}-"} if have else {})}
        try:
            with requests.get(url, stream=True, timeout=self.timeouts, headers=headers) as r:
                if have and r.status_code == 200:  # the server ignores Range: start over
                    have = 0
                    part.unlink()
                elif r.status_code == 416:  # we already have everything
                    return part
                elif r.status_code not in (200, 206):
                    raise MediaError("media_unavailable", f"{url}: HTTP {r.status_code}")
                length = r.headers.get("Content-Length", "")
                if length.isdigit() and have + int(length) > cap:
                    raise MediaError("media_unavailable", f"{url}: {have + int(length)} bytes offered, more than "
                                                          f"the {_limit(size, cap)}")
                with self.open_part(part) as f:
                    while chunk := r.raw.read1(1 << 16, decode_content=False):  # what arrived; never unpacked
                        f.write(chunk)
                        have += len(chunk)
                        if have > cap:
                            raise MediaError("media_unavailable", f"{url}: more than the {_limit(size, cap)}")
                        if time.monotonic() > deadline:
                            raise MediaError("media_unavailable", f"{url}: not complete within "
                                                                  f"{self.limits.deadline_s:g} s ({have} bytes)")
                        if progress:
                            progress(have, size)
                    f.flush()
                    os.fsync(f.fileno())
        except MediaError:
            if not resume or have > cap:
                part.unlink(missing_ok=True)
            raise
        except (requests.RequestException, *_read_errors()) as e:
            if not resume:
                part.unlink(missing_ok=True)
            raise MediaError("media_unavailable", f"{url}: {type(e).__name__}: {e}") from None
        except OSError as e:
            if e.errno == errno.ENOSPC:
                part.unlink(missing_ok=True)  # give the space back; the cache itself is untouched
                raise MediaError("disk_full", f"no space left for {url}") from None
            raise
        return part


def _limit(size: int | None, cap: int) -> str:
    return f"announced {size} bytes" if size is not None else f"cap of {cap} bytes (cache.max_download_mb)"


def _read_errors() -> tuple[type[BaseException], ...]:
    """What a raw read raises when the connection times out or breaks (urllib3's, not wrapped by requests)."""
    import urllib3.exceptions

    return (urllib3.exceptions.HTTPError, TimeoutError)
