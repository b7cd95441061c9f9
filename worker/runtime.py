"""The one place that wires parts together: the objects one worker process shares between its
tasks (built once per process), the Push API client as every command uses it, and the metrics
attached to the stages' hooks."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from typing import Any

import redis

from worker import hooks
from worker.deadletter.queue import DeadLetters
from worker.observe import metrics, throughput
from worker.push.batch import BatchPush
from worker.push.brackets import StatusBrackets
from worker.push.lease import request_bound_seconds
from worker.pushapi.client import PushApiClient
from worker.runs.broker_runs import BrokerRuns
from worker.runs.rebuild import Rebuilds
from worker.settings import Settings, load_settings
from worker.store.connection import connect, store_url
from worker.store.durability import Durability
from worker.windows.flush import Enqueue, Flusher

RECORDER = metrics.Recorder()
"""Counts what the stages of this process report."""
THROUGHPUT = throughput.Throughput(lambda: runtime().store)
"""Counts per minute in the shared store what the stages of this process ingest and push (the console's chart)."""


def observe() -> None:
    """Count in this process's metrics, and per minute in the store, what its stages report (children forked
    later inherit it)."""
    hooks.subscribe(RECORDER)
    hooks.subscribe(THROUGHPUT)


def push_api_client(settings: Settings, **overrides: Any) -> PushApiClient:
    """A Push API client configured from the validated settings, its traffic counted; `overrides` win."""
    options: dict[str, Any] = {
        "base_url": settings.push_base_url,
        "organization_id": settings.organization_id,
        "platform_url": settings.platform_base_url,
        "api_key": settings.api_key.get_secret_value(),
        "connect_timeout": settings.connect_timeout,
        "read_timeout": settings.read_timeout,
        "retry_budget_seconds": settings.retry_budget_seconds,
        "event_hooks": metrics.client_hooks(),
        "fence_seconds": request_bound_seconds(settings.lease_seconds),
    }
    return PushApiClient(**(options | overrides))


@dataclass
class Runtime:
    settings: Settings
    store: redis.Redis
    durability: Durability
    """Confirms by the store's replicas what claims and pushes write; they write through its `client`."""
    api: PushApiClient
    brackets: StatusBrackets
    push: BatchPush
    broker_runs: BrokerRuns


@cache
def _runtime(pid: int) -> Runtime:
    settings = load_settings()
    store = connect(settings)
    durability = Durability.of(store, settings)
    api = push_api_client(settings)
    # Through the durable client: WAIT counts only its own connection's writes, and a push's or an IDLE's
    # bracket state is what the next push relies on.
    brackets = StatusBrackets(durability.client, api, settings)
    dead_letters = DeadLetters(settings.broker_url or store_url(settings), store)
    push = BatchPush(durability.client, api, brackets, dead_letters, settings, durability=durability)
    return Runtime(settings, store, durability, api, brackets, push,
                   BrokerRuns(Rebuilds(store, api, settings), settings.run_timeout_seconds))


def runtime() -> Runtime:
    """This process's runtime; a forked pool child builds its own (no shared sockets)."""
    return _runtime(os.getpid())


def flusher(enqueue: Enqueue) -> Flusher:
    """A flusher on this process's store that hands claimed batches to `enqueue`."""
    current = runtime()
    return Flusher(current.durability.client, current.settings, enqueue, current.durability)
