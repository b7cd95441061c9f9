"""Prometheus metrics of the webhook receiver, served on a port of their own.

The receiver's port faces the CMS, often over the internet; metrics belong on an internal port,
so `pushsync webhook --metrics-port` serves them apart from the hooks. The receiver is one
process, and its metrics live in a registry of their own: the endpoint shows them and this
process's resource use, not whatever else the process happened to import.
"""

from __future__ import annotations

from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, ProcessCollector, start_http_server

UNKNOWN_HOOK = "(unknown)"
"""The `hook` label of requests for a name no hook is configured under: the name is the
caller's, and labelling by it would let anyone create series."""

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
REQUESTS = Counter("pushsync_webhook_requests", "Hook requests answered, by hook and HTTP status.",
                   ("hook", "status"), registry=REGISTRY)
EVENTS_PUBLISHED = Counter("pushsync_webhook_events_published", "Change events published and confirmed by the broker.",
                           ("hook",), registry=REGISTRY)


def record_answer(hook: str, status: int) -> None:
    """Count one request to `hook` (or `UNKNOWN_HOOK`) answered with `status`."""
    REQUESTS.labels(hook, str(status)).inc()


def record_published(hook: str, events: int) -> None:
    """Count `events` of `hook` that the broker confirmed."""
    EVENTS_PUBLISHED.labels(hook).inc(events)


def serve(port: int, host: str) -> tuple[WSGIServer, Thread]:
    """Serve the receiver's metrics at /metrics on `host`:`port` from a daemon thread (OSError if taken)."""
    return start_http_server(port, host, REGISTRY)
