"""The Starlette application: POST /hooks/{source} and GET /healthz.

Each hook request is read within the size limit, authenticated, mapped to change events and
published as one message; the answer is 202 only after the broker confirmed it, 503 when the
broker could not take it (the CMS retries), 401/413/400 when the request itself is refused, and
200 when it asks for no change. Nothing from a refused request is published.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from producers.broker import EVENTS_QUEUE
from producers.errors import PublishError
from producers.events import Event
from producers.publisher import Publisher, RetryPolicy
from producers.webhook import metrics
from producers.webhook.adapter import Adapter, HookError, HookRequest
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
RETRY_AFTER_SECONDS = 10
"""Suggested wait before a CMS retries after a 503."""
RETRY_INTERVAL_STEP = 0.2
RETRY_INTERVAL_MAX = 1.0
"""Broker retries stay short: the CMS is waiting on the answer and will retry after a 503."""


class PayloadTooLarge(HookError):
    """The body is larger than the configured limit."""

    status = 413


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

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        sender.close()

    async def receive(request: Request) -> JSONResponse:
        name = request.path_params["source"]
        hook = config.sources.get(name)
        if hook is None:
            return _answer(404, name, known=False, error="no hook is configured under this name")
        try:
            body = await _read_body(request, config.server.max_body_bytes)
            hook_request = HookRequest(
                method=request.method,
                path=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
                headers={key.lower(): value for key, value in request.headers.items()},
                body=body,
                received_at=time.time(),
            )
            adapter = ADAPTERS[hook.adapter]
            adapter.authenticate(hook, hook_request, tolerance=config.server.tolerance_seconds)
            events = adapter.to_events(hook, hook_request)
        except HookError as exc:
            key = "ignored" if exc.status < 400 else "error"
            return _answer(exc.status, name, **{key: exc.reason})
        try:
            await run_in_threadpool(sender.send, events)
        except PublishError as exc:
            log.error("hook %s: broker did not take %d event(s): %s", name, exc.not_published, exc.reason)
            return _answer(503, name, error="the broker cannot take events now; retry later",
                           headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        metrics.record_published(name, len(events))
        return _answer(202, name, published=len(events), eventIds=[event.event_id for event in events])

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/hooks/{source}", receive, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def _answer(status: int, hook: str, *, known: bool = True, headers: dict[str, str] | None = None,
            **content: object) -> JSONResponse:
    """The answer to a request for `hook`, counted and logged; `known`: a hook is configured under that name."""
    metrics.record_answer(hook if known else metrics.UNKNOWN_HOOK, status)
    # Reasons name fields and limits, never a secret or a signature value.
    log.log(logging.INFO if status < 400 else logging.WARNING, "hook %s: %d %s", hook, status, content)
    return JSONResponse(content, status_code=status, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it passes `limit` bytes: never buffer more than the limit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {int(declared):,} bytes is over the {limit:,}-byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is over the {limit:,}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)
