"""A real HTTP server that answers the Push API's routes from a script, for client tests.

By default it behaves like a healthy service (201 for files and status, 202 with `{}` for the rest, 200
for uploads to its own storage route). `script()` queues answers for matching requests: a
status with a JSON error body and headers, a dropped connection, or a delay. Every request is
recorded with its headers, query and (up to `KEEP_BODY_BYTES`) body.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

KEEP_BODY_BYTES = 64 * 1024 * 1024
READ_CHUNK_BYTES = 1024 * 1024
UPLOAD_PREFIX = "/storage/"
REQUIRED_UPLOAD_HEADERS = {"x-amz-server-side-encryption": "AES256", "Content-Type": "application/octet-stream"}
SHUTDOWN_POLL_SECONDS = 0.01
"""How often the serving loop looks for a shutdown: `close()` waits that long."""


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    size: int
    body: bytes | None
    status: int = 0
    at: float = field(default_factory=time.monotonic)

    def json(self):
        return json.loads(self.body or b"null")


@dataclass
class Answer:
    method: str
    pattern: re.Pattern[str]
    status: int = 200
    body: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False
    delay: float = 0.0
    times: int = 1


class ScriptedServer:
    """A threaded HTTP server on a free loopback port with scripted answers."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._answers: list[Answer] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.push_url = f"{self.url}/push/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def script(self, method: str, path_regex: str, status: int = 200, *, error_code: str = "", message: str = "",
               headers: dict[str, str] | None = None, reset: bool = False, delay: float = 0.0, times: int = 1) -> None:
        """Answer the next `times` requests whose method and path match with this instead."""
        body = {"errorCode": error_code, "message": message or f"scripted {status}"} if status >= 400 else None
        with self._lock:
            self._answers.append(Answer(method, re.compile(path_regex), status, body, headers or {}, reset, delay, times))

    def matching(self, method: str, path_regex: str) -> list[Recorded]:
        pattern = re.compile(path_regex)
        return [request for request in self.requests if request.method == method and pattern.search(request.path)]

    def _take(self, method: str, path: str) -> Answer | None:
        with self._lock:
            for answer in self._answers:
                if answer.method == method and answer.pattern.search(path):
                    answer.times -= 1
                    if answer.times <= 0:
                        self._answers.remove(answer)
                    return answer
        return None

    def _default(self, method: str, path: str, host: str) -> tuple[int, dict | None]:
        if path.startswith(UPLOAD_PREFIX):
            return 200, None
        if method == "POST" and path.endswith("/files"):
            file_id = str(uuid.uuid4())
            return 201, {"uploadUri": f"http://{host}{UPLOAD_PREFIX}{file_id}?X-Amz-Signature=abc",
                         "fileId": file_id, "requiredHeaders": REQUIRED_UPLOAD_HEADERS}
        if method == "POST" and path.endswith("/status"):
            return 201, {}
        return 202, {}


def _handler_for(server: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            size, kept = self._read_body()
            recorded = Recorded(self.command, parts.path, parse_qs(parts.query, keep_blank_values=True),
                                dict(self.headers.items()), size, kept)
            server.requests.append(recorded)
            answer = server._take(self.command, parts.path)
            if answer and answer.delay:
                time.sleep(answer.delay)
            if answer and answer.reset:
                recorded.status = -1
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if answer:
                status, body, headers = answer.status, answer.body, answer.headers
            else:
                status, body = server._default(self.command, parts.path, self.headers.get("Host", ""))
                headers = {}
            recorded.status = status
            payload = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if payload:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _read_body(self) -> tuple[int, bytes | None]:
            remaining = int(self.headers.get("Content-Length") or 0)
            size, chunks = 0, []
            while remaining:
                chunk = self.rfile.read(min(READ_CHUNK_BYTES, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                if size + len(chunk) <= KEEP_BODY_BYTES:
                    chunks.append(chunk)
                size += len(chunk)
            return size, (b"".join(chunks) if size <= KEEP_BODY_BYTES else None)

        do_GET = do_PUT = do_POST = do_DELETE = _handle

    return Handler
