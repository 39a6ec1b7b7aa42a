"""The media cache: resumable, checked downloads (real HTTP on loopback), LRU eviction, a full disk,
and prefetch of what the schedule needs."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from support.agentproc import eventually
from support.media_files import sine_file
from support.schedules import local, publish_schedule

from agent.media import Downloader, MediaCache, MediaError

BODY = os.urandom(300_000)
DIGEST = hashlib.sha256(BODY).hexdigest()


class Media(BaseHTTPRequestHandler):
    body = BODY
    cut_first = 0  # serve only this many bytes on the first request, then drop the connection
    ranges: list[str | None] = []
    served = 0

    def do_GET(self) -> None:  # noqa: N802
        cls = type(self)
        if self.path.endswith(".missing"):
            self.send_error(404)
            return
        cls.ranges.append(self.headers.get("Range"))
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(cls.body) - 1}/{len(cls.body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(cls.body) - start))
        self.end_headers()
        data = cls.body[start:]
        if cls.cut_first and cls.served == 0:
            data = data[: cls.cut_first]
        cls.served += 1
        try:
            self.wfile.write(data)
        except OSError:
            pass

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    Media.body, Media.cut_first, Media.ranges, Media.served = BODY, 0, [], 0
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Media)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/news.mp3"
    srv.shutdown()


def test_interrupted_download_resumes_with_range(tmp_path, server):
    Media.cut_first = 120_000
    dl = Downloader(MediaCache(tmp_path / "cache"), read_s=5)
    with pytest.raises(MediaError):
        dl.fetch(server, DIGEST, len(BODY))
    part = tmp_path / "cache" / f".part-{DIGEST}"
    kept = part.stat().st_size  # what arrived whole before the connection dropped
    assert 0 < kept <= 120_000 and not (tmp_path / "cache" / DIGEST).exists()
    path = dl.fetch(server, DIGEST, len(BODY))
    assert Media.ranges == [None, f"bytes={kept}-"]
    assert path.read_bytes() == BODY and not part.exists()


def test_corrupt_download_is_rejected_then_retried(tmp_path, server):
    Media.body = BODY[:-1] + b"X"
    dl = Downloader(MediaCache(tmp_path / "cache"))
    with pytest.raises(MediaError, match="hash to"):
        dl.fetch(server, DIGEST)
    assert not any((tmp_path / "cache").iterdir())
    Media.body = BODY
    assert dl.fetch(server, DIGEST).read_bytes() == BODY


def test_full_disk_abandons_the_download_and_keeps_the_cache(tmp_path, server):
    cache = MediaCache(tmp_path / "cache")
    old = tmp_path / "old.bin"
    old.write_bytes(b"already cached programme")
    old_digest = cache.add_file(old)

    class FullDisk:
        def __init__(self, path):
            self.f, self.written = open(path, "ab"), 0

        def write(self, data):
            if self.written + len(data) > 50_000:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.written += len(data)
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    with pytest.raises(MediaError) as e:
        Downloader(cache, open_part=FullDisk).fetch(server, DIGEST)
    assert e.value.code == "disk_full"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [old_digest]
    assert cache.verified(old_digest).read_bytes() == b"already cached programme"


def test_eviction_is_lru_but_keeps_what_is_due_soon(tmp_path):
    cache = MediaCache(tmp_path / "cache")
    digests = []
    for i in range(4):
        src = tmp_path / f"f{i}"
        src.write_bytes(bytes([i]) * 100_000)
        d = cache.add_file(src)
        os.utime(cache.path(d), (1000 + i, 1000 + i))  # f0 least recently used
        digests.append(d)
    removed = cache.evict(200_000, keep={digests[0]})
    assert removed == digests[1:3]
    assert {e[0] for e in cache.entries()} == {digests[0], digests[3]}


def test_schedule_media_is_prefetched_and_missing_media_reported(start_audio_agent, province, server):
    agent = start_audio_agent("null")
    soon = time.time() + 3600
    items = [{"id": "news", "start": local(soon), "source": {"kind": "file", "url": server, "sha256": DIGEST,
                                                              "size": len(BODY)}},
             {"id": "gone", "start": local(soon + 60), "source": {"kind": "file", "url": server + ".missing",
                                                                   "sha256": "0" * 64}}]
    province.done(publish_schedule(province, 1, items))
    eventually(lambda: (agent.state_dir / "cache" / DIGEST).exists(), timeout=30, what="prefetched")
    ev = province.event("media.missing", timeout=30)
    assert ev["data"]["sha256"] == "0" * 64 and "404" in ev["data"]["error"]
    hb = province.done(province.send("status.get"))["result"]
    assert hb["cache"]["items"] == 1 and hb["cache"]["missing"] == 1 and "cache_missing" in hb["faults"]
    st = json.loads(agent.cli("schedule", "--json").stdout)
    cached = {o["id"].split("@")[0]: o["cached"] for o in st["upcoming"]}
    assert cached == {"news": True, "gone": False}
    out = agent.cli("cache", "status")
    assert out.returncode == 1 and "cache: 1 file, " in out.stdout and "404" in out.stdout
    purge = json.loads(agent.cli("cache", "purge", "--json").stdout)
    assert purge["removed"] == 0 and purge["items"] == 1  # due within the horizon: kept


def test_play_fetches_missing_media_on_demand(start_audio_agent, province, server, tmp_path):
    agent = start_audio_agent("null")
    Media.body = sine_file(tmp_path / "bulletin.mp3", (440, 1)).read_bytes()
    digest = hashlib.sha256(Media.body).hexdigest()
    jti = province.send("play", {"source": {"kind": "file", "url": server, "sha256": digest}})
    ack = province.done(jti)
    assert ack["result"]["completed"] is True and 0.8 <= ack["result"]["seconds"] <= 1.2
    assert (agent.state_dir / "cache" / digest).read_bytes() == Media.body
