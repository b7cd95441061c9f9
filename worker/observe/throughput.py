"""Events in and operations pushed per minute per target: counted in the store as the stages report
them (`worker.hooks`), read back for the console's chart (`worker.store.minutes`)."""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Mapping

import redis

from worker import hooks
from worker.observe import probes
from worker.settings import Settings
from worker.store import keys, minutes
from worker.store.connection import store_url
from worker.store.outages import STORE_ERRORS

log = logging.getLogger(__name__)


FLUSH_SECONDS = 1.0
"""How long a process gathers its counts before it writes them: with thousands of sources, a write per
target per ingested group was about one round trip per event."""


class Throughput(hooks.Listener):
    """Counts each target's ingested events and pushed operations per minute in the shared store.

    The counts of `FLUSH_SECONDS` go in one write, from a timer thread; the chart is a second late,
    and a process that dies loses at most its last second of counts (the metrics are the exact ones).
    One that exits writes them first: at the interpreter's exit, or `flush()` where a pool child
    skips it (`worker.app`)."""

    def __init__(self, store: Callable[[], redis.Redis], flush_seconds: float = FLUSH_SECONDS) -> None:
        """
        store: gives this process's store client (asked at each write: a forked child has its own).
        flush_seconds: how long counts gather before they are written.
        """
        self._store = store
        self.flush_seconds = flush_seconds
        self._lock = threading.Lock()
        self._pending: Counter[tuple[keys.Target, int, str]] = Counter()
        self._timer: threading.Timer | None = None
        # A forked child starts with none of its parent's counts: the parent writes those.
        os.register_at_fork(after_in_child=self._forget)
        # The timer is a daemon thread, which the exit does not wait for.
        atexit.register(self.flush)

    def after_ingest(self, target: keys.Target, *, received: int, superseded: int, stale: int) -> None:
        self._add(target, minutes.RECEIVED, received)

    def after_push(self, target: keys.Target, counts: Mapping[str, int], size: int, push_seconds: float,
                   opened_at: float | None) -> None:
        self._add(target, minutes.PUSHED, sum(counts.values()))

    def _add(self, target: keys.Target, field: str, count: int) -> None:
        with self._lock:
            self._pending[target, minutes.minute_of(), field] += count
            if self._timer is None:
                self._timer = threading.Timer(self.flush_seconds, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        """Write the counts gathered so far."""
        with self._lock:
            pending, timer, self._pending, self._timer = self._pending, self._timer, Counter(), None
        if timer is not None:
            timer.cancel()  # a flush not of the timer's own: its thread would sleep out the period for nothing
        if not pending:
            return
        # The stages' own writes are safe already: a chart's count is not worth failing anything for.
        try:
            minutes.add(self._store(), pending)
        except STORE_ERRORS as exc:
            log.warning("could not count %d figure(s) in the console's chart: %s", len(pending), exc)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._pending, self._timer = Counter(), None


def last_hour(settings: Settings, targets: list[keys.Target]) -> dict[str, list[minutes.Minute]]:
    """Target ref -> its minutes of the last hour, oldest first; `probes.Unreachable` when the store does not answer."""
    url = store_url(settings)
    client = probes.store_client(url)
    try:
        with probes.store_errors(url):
            return minutes.last_hour(client, targets)
    finally:
        client.close()
