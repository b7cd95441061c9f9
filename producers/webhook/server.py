"""How the receiver is served: uvicorn over h11, with bounded headers and a read timeout.

uvicorn closes idle keep-alive connections, but a connection that sends half a request line or
half its headers (then nothing, or a byte now and then) is kept for ever; the body is the app's
to read, and `app.py` bounds that in time. `TimedH11Protocol` closes a connection that starts
no request within the read timeout of its opening or of its previous answer.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from producers.webhook import metrics
from producers.webhook.config import WebhookConfig

MAX_HEADER_BYTES = 16 * 1024
"""Request line and headers together; a CMS sends far less. Larger ones get h11's 400."""


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection that starts no request within `read_timeout` seconds.

    The clock starts when the connection opens and again when an answer is complete, and stops
    when the next request's headers are in (uvicorn then starts a new request cycle). Whatever
    the connection does meanwhile (nothing, half a header, a byte now and then, the rest of a
    body the app answered without reading) it is closed when the time is up.
    """

    def __init__(self, *args: Any, read_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_timeout = read_timeout
        self._timer: asyncio.TimerHandle | None = None
        self._timed_cycle: object = None
        """The request cycle current when the clock started: a new one means a request came."""
        self._write_timer: asyncio.TimerHandle | None = None
        """Runs while the client reads none of what is written to it (the transport paused writing)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.cycle is not self._timed_cycle:
            self._disarm()

    def on_response_complete(self) -> None:
        # Armed first: a pipelined request that uvicorn starts right away is a new cycle.
        self._arm()
        super().on_response_complete()

    def pause_writing(self) -> None:
        # A client that sends requests but never reads the answers would otherwise hold the
        # connection, and the answers buffered for it, for ever: writing waits for it unbounded.
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(self._read_timeout, self._abort_stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _abort_stalled(self) -> None:
        self._write_timer = None
        # close() would wait for the write buffer to drain, which is what never happens here.
        self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """h11 refused the request itself (malformed or oversized headers), so the app never sees it:
        answered here in the app's form, a JSON reason, and counted under no hook (its path cannot
        be trusted). uvicorn's own answers in plain text."""
        metrics.record_answer(metrics.UNKNOWN_HOOK, 400)
        body = json.dumps({"error": f"{msg.rstrip('.')}: malformed request line or headers, or headers over "
                                    f"{MAX_HEADER_BYTES:,} bytes"}).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"), h11.Data(data=body),
                      h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()

    def _arm(self) -> None:
        self._disarm()
        self._timed_cycle = self.cycle
        self._timer = self.loop.call_later(self._read_timeout, self._expire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if self.cycle is self._timed_cycle and not self.transport.is_closing():
            # A buffer the client does not read would keep a closed transport open: drop it then.
            self.transport.abort() if self.flow.write_paused else self.transport.close()


def uvicorn_config(app: Any, config: WebhookConfig, *, host: str, port: int, **options: Any) -> uvicorn.Config:
    """The uvicorn configuration serving `app` on `host`:`port` under `config`'s limits; `options` go to uvicorn."""
    timeout = config.server.read_timeout_seconds
    return uvicorn.Config(
        app, host=host, port=port,
        http=functools.partial(TimedH11Protocol, read_timeout=timeout),  # type: ignore[arg-type]
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        timeout_keep_alive=max(1, round(timeout)),
        **options,
    )
