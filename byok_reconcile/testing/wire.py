"""HTTP/1.1 plumbing of the emulator: a threaded server that parses each
request into an :class:`Incoming`, asks its app what to answer, and writes
the reply with a Content-Length, or breaks the connection for a fault."""

from __future__ import annotations

import json
import socket
import struct
import threading
from contextlib import AbstractContextManager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from byok_reconcile.testing import bodies
from byok_reconcile.testing.bodies import Incoming, Reply
from byok_reconcile.testing.config import Fault


class App(Protocol):
    """What the server needs from the emulator."""

    stopping: threading.Event

    def answer(self, req: Incoming) -> Reply | Fault: ...

    def counting(self) -> AbstractContextManager[None]: ...


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # A deep accept queue: benchmarks open dozens of connections at once.
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away mid-answer is normal here (timeouts).
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no access log: stderr stays clean for the CLI and the tests

    def _serve(self) -> None:
        app = self.server.app
        req = self._incoming()
        with app.counting():
            outcome = app.answer(req)
            if isinstance(outcome, Fault):
                self._break(outcome, app.stopping)
            else:
                self._send(outcome)

    def _incoming(self) -> Incoming:
        split = urlsplit(self.path)
        raw = self._read_body()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = bodies.BAD_JSON
        headers = {k.lower(): v for k, v in self.headers.items()}
        return Incoming(self.command, split.path,
                        dict(parse_qsl(split.query, keep_blank_values=True)),
                        headers, body)

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _send(self, reply: Reply) -> None:
        if isinstance(reply.body, str):
            data = reply.body.encode()
        else:
            data = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("content-type", reply.content_type
                         + ("; charset=utf-8" if reply.content_type.startswith(
                             "text/") else ""))
        self.send_header("content-length", str(len(data)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _break(self, fault: Fault, stopping: threading.Event) -> None:
        """Answer nothing: hang, then close; close; or reset."""
        self.close_connection = True
        if fault.kind == "hang":
            stopping.wait(fault.seconds)
        if fault.kind == "reset":
            # Linger 0: close() sends RST instead of FIN.
            linger = struct.pack("ii", 1, 0)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            self.rfile.close()
            self.wfile.close()
            self.connection.close()
            return
        with suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
