"""The worker's /metrics endpoint: served from its main process, over every process's values."""

from __future__ import annotations

from pathlib import Path
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from worker.observe.collectors import SharedState, WorkerProcesses
from worker.settings import Settings
from worker.store.connection import connect, store_url


def serve(settings: Settings, directory: Path) -> tuple[WSGIServer, Thread]:
    """Serve the worker's metrics over HTTP on `settings.metrics_port` from a daemon thread.

    directory: where the worker's processes keep their values.
    Raises OSError when the port cannot be bound.
    """
    registry = CollectorRegistry()
    WorkerProcesses(registry, directory)
    registry.register(SharedState(connect(settings), settings.broker_url or store_url(settings)))
    return start_http_server(settings.metrics_port, settings.metrics_address, registry)
