"""A local HTTP file server with Range requests (resumable downloads) and an optional rate limit, so a test
can kill the agent while a download is on the wire."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class FileServer:
    def __init__(self, directory: Path, rate: int | None = None):
        self.dir, self.rate = Path(directory), rate  # rate: bytes per second, None = as fast as it goes
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                path = server.dir / self.path.lstrip("/").split("?")[0]
                server.requests.append((self.path, self.headers.get("Range")))
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

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
