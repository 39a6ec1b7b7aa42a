"""Test media made with ffmpeg, and placing it in an agent's content-addressed cache."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path


def sine_file(path: Path, *segments: tuple[int, float]) -> Path:
    """An MP3 of consecutive sine segments (freq Hz, seconds)."""
    inputs = []
    for f, d in segments:
        inputs += ["-f", "lavfi", "-i", f"sine=frequency={f}:duration={d}:sample_rate=48000"]
    n = len(segments)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *inputs, "-filter_complex",
                    "".join(f"[{i}:a]" for i in range(n)) + f"concat=n={n}:v=0:a=1,volume=0.5", "-ac", "2",
                    "-b:a", "128k", str(path)], check=True)
    return path


def cache_file(agent, src: Path) -> dict:
    """Put `src` into the agent's media cache; the file source that plays it."""
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    cache = agent.state_dir / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, cache / digest)
    return {"kind": "file", "url": f"https://media.example/{src.name}", "sha256": digest}
