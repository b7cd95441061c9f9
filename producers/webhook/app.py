"""The Starlette application: POST /hooks/{source} and GET /healthz.

Each hook request is checked for its content type, read within the size limit and the read
timeout, authenticated, mapped to change events and published as one message; the answer is
202 only after the broker confirmed it, 503 when the broker could not take it (the CMS
retries), a 4xx with the reason in `{"error": …}` when the request itself is refused, and 200
when it asks for no change. Nothing from a refused request is published, and every answer,
an unexpected error's 500 included, is counted in the requests metric.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Collection

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from producers.broker import EVENTS_QUEUE, opened
from producers.errors import PublishError
from producers.events import Event
from producers.publisher import Publisher, RetryPolicy
from producers.webhook import metrics
from producers.webhook.adapter import Adapter, HookError, HookRequest, Unmappable
from producers.webhook.config import WebhookConfig
from producers.webhook.contentful import ContentfulAdapter
from producers.webhook.generic import GenericAdapter
from producers.webhook.strapi import StrapiAdapter

log = logging.getLogger(__name__)

ADAPTERS: dict[str, Adapter] = {
    "generic": GenericAdapter(),
    "contentful": ContentfulAdapter(),
    "strapi": StrapiAdapter(),
}
HOOKS_PREFIX = "/hooks/"
HEALTH_PATH = "/healthz"
RETRY_AFTER_SECONDS = 10
HEALTH_TIMEOUT_SECONDS = 2.0
"""How long /healthz waits for the broker to accept a connection."""
HEALTH_CACHE_SECONDS = 2.0
"""How long one broker check answers /healthz: a caller hammering it opens at most one connection this often."""
"""Suggested wait before a CMS retries after a 503."""
RETRY_INTERVAL_STEP = 0.2
RETRY_INTERVAL_MAX = 1.0
"""Broker retries stay short: the CMS is waiting on the answer and will retry after a 503."""
JSON_MEDIA_TYPE = "application/json"
JSON_SUFFIX = "+json"
"""Vendor types such as Contentful's application/vnd.contentful.management.v1+json are JSON too."""
JSON_CHARSET = "utf-8"


class PayloadTooLarge(HookError):
    """The body is larger than the configured limit."""

    status = 413


class UnsupportedMediaType(HookError):
    """The body is not declared as JSON in UTF-8."""

    status = 415


class BodyTimeout(HookError):
    """The body did not arrive within the read timeout."""

    status = 408


class _BrokerCheck:
    """Whether the broker accepts a connection now, checked at most every `HEALTH_CACHE_SECONDS`."""

    def __init__(self, broker_url: str) -> None:
        self._broker_url = broker_url
        self._lock = threading.Lock()
        self._checked_at = -HEALTH_CACHE_SECONDS
        self._error: str | None = None

    def error(self) -> str | None:
        """None when the broker answers, else "does not answer": the probe's caller learns no
        address; the receiver's log says why, once when the broker goes and once when it is back."""
        with self._lock:
            if time.monotonic() - self._checked_at >= HEALTH_CACHE_SECONDS:
                try:
                    with opened(self._broker_url, connect_timeout=HEALTH_TIMEOUT_SECONDS):
                        pass
                except Exception as exc:
                    if self._error is None:
                        log.warning("/healthz: the broker does not answer: %s: %s", type(exc).__name__, exc)
                    self._error = "does not answer"
                else:
                    if self._error is not None:
                        log.warning("/healthz: the broker answers again")
                    self._error = None
                self._checked_at = time.monotonic()
            return self._error


class _Sender:
    """One Publisher shared by all requests; kombu connections are not thread-safe, hence the lock."""

    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher
        self._lock = threading.Lock()

    def send(self, events: list[Event]) -> None:
        with self._lock:
            self._publisher.publish_many(events)

    def close(self) -> None:
        with self._lock:
            self._publisher.close()


class AnswerCounter:
    """Counts every answer under its hook (or UNKNOWN_HOOK), and answers 500 for an unexpected error.

    Around the routes, so refusals of the router (404, 405) and failures of the handler are
    counted like the handler's own answers. An answer to a client that is gone is not counted.
    """

    def __init__(self, app: ASGIApp, hooks: Collection[str]) -> None:
        self.app = app
        self.hooks = hooks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Only the probe's own GET goes uncounted: any other request on its path is an answer like the rest.
        if scope["type"] != "http" or (scope["path"] == HEALTH_PATH and scope["method"] in ("GET", "HEAD")):
            await self.app(scope, receive, send)
            return
        name = scope["path"].removeprefix(HOOKS_PREFIX) if scope["path"].startswith(HOOKS_PREFIX) else None
        label = name if name in self.hooks else metrics.UNKNOWN_HOOK
        started, gone = False, False

        async def receive_counted() -> Message:
            nonlocal gone
            message = await receive()
            gone = gone or message["type"] == "http.disconnect"
            return message

        async def send_counted(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if not gone:
                    metrics.record_answer(label, message["status"])
            await send(message)

        try:
            await self.app(scope, receive_counted, send_counted)
        except Exception:
            if started:
                raise
            log.exception("hook %s: unexpected error", label)
            await JSONResponse({"error": "internal error; the receiver's log has the details"},
                               status_code=500)(scope, receive, send_counted)


def create_app(config: WebhookConfig, broker_url: str, *, queue_name: str = EVENTS_QUEUE) -> Starlette:
    """The receiver for `config`, publishing to `broker_url`; `queue_name` is overridden only by tests.

    Raises ConfigError when a hook's settings do not fit its adapter.
    """
    for hook in config.sources.values():
        ADAPTERS[hook.adapter].check(hook)
    retry = RetryPolicy(
        max_retries=config.server.publish_retries, interval_step=RETRY_INTERVAL_STEP, interval_max=RETRY_INTERVAL_MAX,
    )
    sender = _Sender(Publisher(broker_url, retry=retry, queue_name=queue_name))
    broker_check = _BrokerCheck(broker_url)
    log.info("hooks loaded: %s", ", ".join(f"/hooks/{name} ({hook.adapter} to source {hook.source_id})"
                                            for name, hook in config.sources.items()))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        sender.close()

    async def receive(request: Request) -> Response:
        name = request.path_params["source"]
        hook = config.sources.get(name)
        if hook is None:
            return _answer(404, name, error="no hook is configured under this name")
        try:
            _check_content_type(request.headers.get("content-type"))
            async with asyncio.timeout(config.server.read_timeout_seconds):
                body = await _read_body(request, config.server.max_body_bytes)
        except TimeoutError:
            # The rest of the body may still come: the connection cannot be reused.
            return _answer(408, name, headers={"Connection": "close"},
                           error=f"the body did not arrive within {config.server.read_timeout_seconds:g} s")
        except ClientDisconnect:
            return Response(status_code=400)  # nobody to answer (and not counted)
        except HookError as exc:
            return _refusal(name, exc)
        hook_request = HookRequest(
            method=request.method,
            path=_target(request.scope),
            headers={key.lower(): value for key, value in request.headers.items()},
            body=body,
            received_at=time.time(),
        )
        adapter = ADAPTERS[hook.adapter]
        try:
            adapter.authenticate(hook, hook_request, tolerance=config.server.tolerance_seconds)
            try:
                events = adapter.to_events(hook, hook_request)
            except RecursionError:
                raise Unmappable("body: nested too deeply to be mapped") from None
        except HookError as exc:
            return _refusal(name, exc)
        try:
            await run_in_threadpool(sender.send, events)
        except PublishError as exc:
            log.error("hook %s: broker did not take %d event(s): %s", name, exc.not_published, exc.reason)
            return _answer(503, name, error="the broker cannot take events now; retry later",
                           headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        metrics.record_published(name, len(events))
        return _answer(202, name, published=len(events), eventIds=[event.event_id for event in events])

    async def healthz(request: Request) -> JSONResponse:
        error = await run_in_threadpool(broker_check.error)
        if error is not None:
            return JSONResponse({"status": "unhealthy", "broker": error}, status_code=503)
        return JSONResponse({"status": "ok", "broker": "ok"})

    async def refused_by_router(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _answer(exc.status_code, request.scope["path"], headers=exc.headers, error=exc.detail)

    app = Starlette(
        routes=[
            Route(HOOKS_PREFIX + "{source}", receive, methods=["POST"]),
            Route(HEALTH_PATH, healthz, methods=["GET"]),
        ],
        middleware=[Middleware(AnswerCounter, hooks=frozenset(config.sources))],
        exception_handlers={HTTPException: refused_by_router},
        lifespan=lifespan,
    )
    # No 307 from /hooks/blog/ to /hooks/blog: a CMS following it would send its hook to a path
    # it did not sign. A path no route has is a 404.
    app.router.redirect_slashes = False
    return app


def _refusal(hook: str, exc: HookError) -> JSONResponse:
    key = "ignored" if exc.status < 400 else "error"
    return _answer(exc.status, hook, **{key: exc.reason})


def _answer(status: int, hook: str, *, headers: dict[str, str] | None = None, **content: object) -> JSONResponse:
    """The answer to a request for `hook` (a configured name, or whatever the caller sent), logged."""
    # Reasons name fields and limits, never a secret or a signature value; the text log escapes
    # control characters, so a name sent as /hooks/a%0Ab cannot start a line of its own.
    log.log(logging.INFO if status < 400 else logging.WARNING, "hook %s: %d %s", hook, status, content)
    return JSONResponse(content, status_code=status, headers=headers)


def _check_content_type(value: str | None) -> None:
    """Raise UnsupportedMediaType unless `value` declares JSON (application/json or a +json type) in UTF-8."""
    media_type, *parameters = (value or "").split(";")
    media_type = media_type.strip().lower()
    if media_type != JSON_MEDIA_TYPE and not (media_type.startswith("application/") and media_type.endswith(JSON_SUFFIX)):
        shown = repr(media_type) if media_type else "none"
        raise UnsupportedMediaType(f"Content-Type must be {JSON_MEDIA_TYPE} (or a vendor's +json type), got {shown}")
    for parameter in parameters:
        key, _, charset = parameter.partition("=")
        if key.strip().lower() == "charset" and charset.strip().strip('"').lower() != JSON_CHARSET:
            raise UnsupportedMediaType(f"JSON bodies must be UTF-8, got charset {charset.strip()!r}")


def _target(scope: Scope) -> str:
    """The request target as it came on the wire (not decoded and re-encoded): what senders sign."""
    path = scope["raw_path"].decode("latin-1")
    query = scope["query_string"].decode("latin-1")
    return f"{path}?{query}" if query else path


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it passes `limit` bytes: never buffer more than the limit."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {int(declared):,} bytes is over the {limit:,}-byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is over the {limit:,}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)
