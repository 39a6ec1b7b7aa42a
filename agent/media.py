"""The content-addressed media cache: `cache/<sha256>` under the state dir.

A file is only ever put there under its digest after the bytes were checked
(written to a temporary name, renamed after the check), and it is checked again
before it plays: a file whose bytes do not match its name never plays.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

SHA256 = re.compile(r"[0-9a-f]{64}")


class MediaError(Exception):
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
    def __init__(self, directory: Path):
        self.dir = Path(directory)
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

    def stats(self) -> dict:
        files = [p for p in self.dir.iterdir() if p.is_file() and SHA256.fullmatch(p.name)] \
            if self.dir.exists() else []
        return {"items": len(files), "bytes": sum(p.stat().st_size for p in files)}
