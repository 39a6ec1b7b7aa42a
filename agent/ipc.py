"""The local control socket (frontend for the technician CLI): one JSON request per line, one reply.

Handlers post to the core and wait for its answer; they never touch state.
The socket is mode 0660 in a 0750 directory: the agent's group may use it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import threading
from pathlib import Path
from typing import Any

from .errors import IpcError, Rejection
from .i18n import Msg, restore, texts
from .messages import IpcRequest, Post

log = logging.getLogger("agent.ipc")

OPS = {"status", "logs", "command", "play_file", "test", "schedule", "cache", "display", "sim_drive", "update_status",
       "report"}


class Reply:
    """A one-shot answer from the core thread to a waiting socket handler."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None

    def set_result(self, value: Any) -> None:
        self._value = value
        self._done.set()

    def set_exception(self, error: BaseException) -> None:
        self._error = error
        self._done.set()

    def result(self, timeout: float) -> Any:
        if not self._done.wait(timeout):
            raise TimeoutError
        if self._error is not None:
            raise self._error
        return self._value
MAX_REQUEST = 64 * 1024
# by op, or by command type: every zone's warm-up, tone and microphone (16 zones at their longest)
OP_TIMEOUT = {"selftest": 1200.0, "play_file": 300.0}  # play_file: copying a long programme to the cache


MAX_CLIENTS = 16  # connections served at once; more are answered "busy" and closed
READ_S = 5.0  # a client has this long to send its request line (and to take the answer)


class _Handler(socketserver.StreamRequestHandler):
    server: _Server
    timeout = READ_S

    def handle(self) -> None:
        try:
            line = self.rfile.readline(MAX_REQUEST)
        except OSError:  # silent or gone before it asked: nothing to answer
            return
        try:
            req = json.loads(line)
            op, args = req["op"], req.get("args") or {}
            if op not in OPS or not isinstance(args, dict):
                raise ValueError(f"unknown request {op!r}")
            answer = Reply()
            self.server.post(IpcRequest(op, args, answer))
            wait = OP_TIMEOUT.get(args.get("type") if op == "command" else op, 10.0)
            try:
                reply = {"ok": True, "result": answer.result(timeout=wait)}
            except TimeoutError:
                reply = {"ok": False, "error": Msg("the agent's core did not answer within %(s)g s", s=wait)}
        except Rejection as e:  # refused as the MQTT command would be: the same code and message as its ack
            reply = {"ok": False, "error": e.message, "code": e.code}
        except Exception as e:  # a bad request gets an answer, never a crash
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        _answer(self.request, reply)


def _answer(sock: socket.socket, reply: dict) -> None:
    # The reply is the English the MQTT side would say; "texts" lets the CLI say its Msgs in its language.
    table = texts(reply)
    if table:
        reply["texts"] = table
    try:
        sock.sendall(json.dumps(reply, ensure_ascii=False).encode() + b"\n")
    except OSError:  # the client went away (or stopped reading): its loss, not an error of the agent's
        log.debug("control socket: a client left before its answer")


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """A thread per client, at most MAX_CLIENTS of them; each client has READ_S to ask."""

    daemon_threads = True
    block_on_close = False
    post: Post

    def __init__(self, *args: Any):
        super().__init__(*args)
        self.slots = threading.BoundedSemaphore(MAX_CLIENTS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            request.settimeout(0.5)
            _answer(request, {"ok": False, "error": Msg("the agent is serving %(n)d clients; try again",
                                                         n=MAX_CLIENTS)})
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("control socket: a client's request failed", exc_info=True)


class IpcServer:
    def __init__(self, path: str, post: Post):
        self.path = Path(path)
        self.post = post
        self.server: _Server | None = None

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        if self.path.exists():
            if _answers(self.path):
                raise IpcError(f"another agent is already listening on {self.path}")
            self.path.unlink()
        old = os.umask(0o117)  # created 0660, never briefly wider
        try:
            self.server = _Server(str(self.path), _Handler)
        finally:
            os.umask(old)
        self.server.post = self.post
        threading.Thread(target=self.server.serve_forever, name="ipc", daemon=True).start()
        log.info("control socket at %s", self.path)

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
            return True
        except OSError:
            return False


def request(path: str, op: str, /, timeout: float = 15.0, **args: Any) -> Any:
    """Ask the running agent; IpcError when it is not running or fails, Rejection (with the ack's code) when it
    refuses a command."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(path)
            s.sendall(json.dumps({"op": op, "args": args}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except (FileNotFoundError, ConnectionRefusedError):
        raise IpcError(Msg("the agent is not running (nothing answers on %(path)s)", path=path)) from None
    except PermissionError:
        raise IpcError(Msg("permission denied on %(path)s: run as root or as a member of the agent's group",
                           path=path)) from None
    except OSError as e:
        raise IpcError(Msg("cannot talk to the agent on %(path)s: %(error)s", path=path, error=str(e))) from None
    try:
        reply = json.loads(data)
    except ValueError:
        raise IpcError(Msg("the agent closed the connection on %(path)s without an answer", path=path)) from None
    reply = restore(reply, reply.pop("texts", []))
    if not reply.get("ok"):
        if reply.get("code"):
            raise Rejection(reply["code"], reply["error"])
        raise IpcError(reply.get("error", Msg("the agent refused the request")))
    return reply["result"]
