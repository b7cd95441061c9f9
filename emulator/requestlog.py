"""The request log: what reached the Push API and the upload route, for conformance checks.

Each entry has the time, method, path, query, matched route, status and byte counts, and the
headers that matter for conformance: Content-Type, Accept, User-Agent, whether Authorization
was there and whether it was a Bearer, and every header name. Never the API key: only the
Authorization scheme is kept, and the key is masked wherever else a client may have put it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator.faults import FAULT_SCOPE_KEY
from emulator.paths import is_admin

if TYPE_CHECKING:
    from emulator.state import Emulator

REQUEST_LOG_CAPACITY = 200_000
"""Entries kept; the oldest go first (a long benchmark must not grow the emulator forever)."""
MASK = "***"


class RequestLog:
    """The most recent requests, each with an increasing id."""

    def __init__(self) -> None:
        self._entries: deque[dict[str, object]] = deque(maxlen=REQUEST_LOG_CAPACITY)
        self._next_id = 1

    def record(self, entry: dict[str, object]) -> None:
        """Add one entry, giving it the next id."""
        entry["id"] = self._next_id
        self._next_id += 1
        self._entries.append(entry)

    def since(self, after_id: int) -> list[dict[str, object]]:
        """Entries whose id is greater than `after_id`, oldest first."""
        return [entry for entry in self._entries if entry["id"] > after_id]  # type: ignore[operator]


class RequestLogMiddleware:
    """Records every request outside the admin API in the current emulator's log."""

    def __init__(self, app: ASGIApp, current: Callable[[], Emulator]) -> None:
        """`current`: returns the emulator generation in force (reset replaces it)."""
        self.app = app
        self.current = current

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_admin(scope["path"]):
            await self.app(scope, receive, send)
            return
        emulator = self.current()
        started = time.perf_counter()
        counts = {"received": 0, "sent": 0, "status": None}

        async def counting_receive() -> Message:
            message = await receive()
            counts["received"] += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                counts["status"] = message["status"]
            else:
                counts["sent"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            duration_ms = round((time.perf_counter() - started) * 1000, 3)
            entry = _describe(scope, emulator.config.api_key, emulator.clock.now(), counts, duration_ms)
            emulator.requests.record(entry)


def _describe(scope: Scope, api_key: str, now: float, counts: dict[str, object],
              duration_ms: float) -> dict[str, object]:
    names: list[str] = []
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1")
        names.append(name)
        headers.setdefault(name.lower(), raw_value.decode("latin-1"))
    authorization = headers.get("authorization")
    route = scope.get("route")
    return {
        "time": now,
        "method": scope["method"],
        "path": _masked(scope["path"], api_key),
        "query": _masked(scope["query_string"].decode("latin-1"), api_key),
        "route": getattr(route, "path", None),
        "status": counts["status"],
        "bytes": counts["received"],
        "responseBytes": counts["sent"],
        "durationMs": duration_ms,
        "contentType": headers.get("content-type"),
        "accept": headers.get("accept"),
        "userAgent": headers.get("user-agent"),
        "authorization": _scheme(authorization),
        "headerNames": names,
        "fault": scope.get(FAULT_SCOPE_KEY),
    }


def _scheme(authorization: str | None) -> str:
    """"absent", "bearer" or "other": never the credentials themselves."""
    if authorization is None:
        return "absent"
    return "bearer" if authorization.split(" ", 1)[0].lower() == "bearer" else "other"


def _masked(text: str, api_key: str) -> str:
    return text.replace(api_key, MASK) if api_key and api_key in text else text
