"""The objects one worker process shares between its tasks, built once per process."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

import redis

from worker.runs.broker_runs import BrokerRuns
from worker.deadletter.queue import DeadLetters
from worker.windows.flush import Enqueue, Flusher
from worker.pushapi.client import PushApiClient
from worker.push.batch import BatchPush
from worker.runs.rebuild import Rebuilds
from worker.settings import Settings, load_settings
from worker.push.brackets import StatusBrackets
from worker.store.connection import connect, store_url


@dataclass
class Runtime:
    settings: Settings
    store: redis.Redis
    api: PushApiClient
    brackets: StatusBrackets
    push: BatchPush
    broker_runs: BrokerRuns


@cache
def _runtime(pid: int) -> Runtime:
    settings = load_settings()
    store = connect(settings)
    api = PushApiClient.from_settings(settings)
    brackets = StatusBrackets(store, api, settings)
    dead_letters = DeadLetters(settings.broker_url or store_url(settings), store)
    return Runtime(settings, store, api, brackets, BatchPush(store, api, brackets, dead_letters, settings),
                   BrokerRuns(Rebuilds(store, api, settings), settings.run_timeout_seconds))


def runtime() -> Runtime:
    """This process's runtime; a forked pool child builds its own (no shared sockets)."""
    return _runtime(os.getpid())


def flusher(enqueue: Enqueue) -> Flusher:
    """A flusher on this process's store that hands claimed batches to `enqueue`."""
    current = runtime()
    return Flusher(current.store, current.settings, enqueue)
