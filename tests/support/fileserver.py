"""A local HTTP file server with Range requests (resumable downloads) and an optional rate limit, so a test
can kill the agent while a download is on the wire; and hostile answers (`bomb`, `trickle`, `endless`): a gzip
body that unpacks to far more than it weighs, a byte at a time, a body that never ends."""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class FileServer:
    def __init__(self, directory: Path, rate: int | None = None):
        self.dir, self.rate = Path(directory), rate  # rate: bytes per second, None = as fast as it goes
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.hostile: dict[str, Callable[[BaseHTTPRequestHandler], None]] = {}  # name -> how it answers
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                name = self.path.lstrip("/").split("?")[0]
                path = server.dir / name
                server.requests.append((self.path, self.headers.get("Range")))
                if name in server.hostile:
                    try:
                        server.hostile[name](self)
                    except OSError:
                        pass  # the agent gave up on it: what the test wants
                    return
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                try:
                    server.send(self.wfile, data[start:])
                except OSError:
                    pass  # the agent went away mid-transfer (a test killed it)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def send(self, out, data: bytes) -> None:
        if self.rate is None:
            out.write(data)
            return
        chunk = max(1, self.rate // 20)
        for i in range(0, len(data), chunk):
            out.write(data[i:i + chunk])
            time.sleep(chunk / self.rate)  # the rate limit itself: nothing to wait on

    def bomb(self, name: str, inflated_mb: int = 200) -> int:
        """`name` answers `Content-Encoding: gzip` with zeros that unpack to inflated_mb MB; its size on the wire."""
        z = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip container
        block = bytes(1 << 20)
        body = b"".join(z.compress(block) for _ in range(inflated_mb)) + z.flush()

        def answer(h: BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.send_header("Content-Type", "audio/mpeg")
            h.send_header("Content-Encoding", "gzip")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        self.hostile[name] = answer
        return len(body)

    def trickle(self, name: str, every_s: float = 2.0, length: int = 100_000) -> None:
        """`name` announces `length` bytes and sends one every `every_s` seconds."""
        def answer(h: BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.send_header("Content-Length", str(length))
            h.end_headers()
            for _ in range(length):
                h.wfile.write(b"x")
                h.wfile.flush()
                time.sleep(every_s)  # the trickle itself: nothing to wait on
        self.hostile[name] = answer

    def endless(self, name: str) -> None:
        """`name` sends zeros with no length, until the client hangs up."""
        def answer(h: BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.end_headers()
            block = bytes(1 << 16)
            while True:
                h.wfile.write(block)
        self.hostile[name] = answer

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
