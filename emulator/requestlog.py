"""The request log: what reached the Push API and the upload route, for conformance checks.

Each entry has the time, method, path, query, matched route, status, client address and byte counts, and the
headers that matter for conformance: Content-Type, Accept, User-Agent, whether Authorization
was there and whether it was a Bearer, and every header name. Never the API key: only the
Authorization scheme is recorded, and the key is masked wherever else a client may have put it.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from starlette.types import Message, Receive, Scope, Send

from emulator.faults import FAULT_SCOPE_KEY
from emulator.traffic import TrafficMiddleware

REQUEST_LOG_CAPACITY = 200_000
"""Entries kept; the oldest go first (a long benchmark must not grow the emulator forever)."""
MASK = "***"


class RequestLog:
    """The most recent requests, each with an increasing id.

    Entries are kept raw and described only when read: recording stays cheap on the hot path."""

    def __init__(self, api_key: str) -> None:
        """`api_key`: the key to mask wherever a client may have put it."""
        self._api_key = api_key
        self._entries: deque[tuple[int, _Raw]] = deque(maxlen=REQUEST_LOG_CAPACITY)
        self._next_id = 1

    def record(self, raw: _Raw) -> None:
        """Add one request, giving it the next id."""
        self._entries.append((self._next_id, raw))
        self._next_id += 1

    def since(self, after_id: int) -> list[dict[str, object]]:
        """Entries whose id is greater than `after_id`, oldest first."""
        return [_describe(entry_id, raw, self._api_key) for entry_id, raw in self._entries if entry_id > after_id]


@dataclass(slots=True)
class _Raw:
    """One request as recorded: what `_describe` needs, and no credentials."""

    time: float
    method: str
    path: str
    query: bytes
    headers: list[tuple[bytes, bytes]]
    """The request's headers, the Authorization value cut down to its scheme."""
    client: str | None
    """The address the request came from (None when the server does not know it)."""
    route: str | None = None
    status: int | None = None
    received: int = 0
    sent: int = 0
    duration_ms: float = 0.0
    fault: int | None = None


class RequestLogMiddleware(TrafficMiddleware):
    """Records every request outside the admin API in the current emulator's log."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        emulator = self.current()
        started = time.perf_counter()
        headers = [(name, _scheme(value) if name == b"authorization" else value) for name, value in scope["headers"]]
        client = scope.get("client")
        raw = _Raw(emulator.clock.now(), scope["method"], scope["path"], scope["query_string"], headers,
                   client[0] if client else None)

        async def counting_receive() -> Message:
            message = await receive()
            raw.received += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw.status = message["status"]
            else:
                raw.sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            raw.duration_ms = round((time.perf_counter() - started) * 1000, 3)
            raw.route = getattr(scope.get("route"), "path", None)
            raw.fault = scope.get(FAULT_SCOPE_KEY)
            emulator.requests.record(raw)


def _describe(entry_id: int, raw: _Raw, api_key: str) -> dict[str, object]:
    names: list[str] = []
    headers: dict[str, str] = {}
    for raw_name, raw_value in raw.headers:
        name = raw_name.decode("latin-1")
        names.append(name)
        headers.setdefault(name.lower(), raw_value.decode("latin-1"))
    return {
        "id": entry_id,
        "time": raw.time,
        "method": raw.method,
        "path": _masked(raw.path, api_key),
        "query": _masked(raw.query.decode("latin-1"), api_key),
        "route": raw.route,
        "status": raw.status,
        "client": raw.client,
        "bytes": raw.received,
        "responseBytes": raw.sent,
        "durationMs": raw.duration_ms,
        "contentType": headers.get("content-type"),
        "accept": headers.get("accept"),
        "userAgent": headers.get("user-agent"),
        "authorization": headers.get("authorization", "absent"),
        "headerNames": names,
        "fault": raw.fault,
    }


def _scheme(authorization: bytes) -> bytes:
    """b"bearer" or b"other": what the log keeps of an Authorization header, never the credentials."""
    return b"bearer" if authorization.split(b" ", 1)[0].lower() == b"bearer" else b"other"


def _masked(text: str, api_key: str) -> str:
    return text.replace(api_key, MASK) if api_key and api_key in text else text
