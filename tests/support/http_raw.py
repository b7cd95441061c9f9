"""HTTP/1.1 requests written byte for byte: the target, the headers and their order exactly as given.

HTTP client libraries normalize what they send (they encode the target, add Host, User-Agent and
Accept-Encoding, merge headers); tests of a signature over the raw request, or of what a server
does with odd requests, need the wire to hold exactly what the test says.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Answer:
    """A server's answer: status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)


def request_bytes(method: str, target: bytes, headers: Sequence[tuple[bytes, bytes]], body: bytes) -> bytes:
    """The request as sent: request line, each header as given, a blank line, the body."""
    lines = [method.encode() + b" " + target + b" HTTP/1.1"] + [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def send(base_url: str, method: str, target: bytes, headers: Sequence[tuple[bytes, bytes]], body: bytes = b"",
         *, timeout: float = TIMEOUT_SECONDS) -> Answer:
    """Send one request to `base_url` (http://host:port) on a new connection and read its answer.

    `headers` are sent as they are, and only them: give Host and Content-Length yourself.
    """
    parts = urlsplit(base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(request_bytes(method, target, headers, body))
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        content = response.read()
        return Answer(response.status, {name.lower(): value for name, value in response.getheaders()}, content)


def host_header(base_url: str) -> tuple[bytes, bytes]:
    """The Host header for `base_url`."""
    return b"Host", urlsplit(base_url).netloc.encode()
