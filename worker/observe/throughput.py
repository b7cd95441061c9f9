"""Events in and operations pushed per minute per target: counted in the store as the stages report
them (`worker.hooks`), read back for the console's chart (`worker.store.minutes`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import redis

from worker import hooks
from worker.observe import probes
from worker.settings import Settings
from worker.store import keys, minutes
from worker.store.connection import store_url
from worker.store.outages import STORE_ERRORS

log = logging.getLogger(__name__)


class Throughput(hooks.Listener):
    """Counts each target's ingested events and pushed operations per minute in the shared store."""

    def __init__(self, store: Callable[[], redis.Redis]) -> None:
        """store: gives this process's store client (asked at each hook: a forked child has its own)."""
        self._store = store

    def after_ingest(self, target: keys.Target, *, received: int, superseded: int, stale: int) -> None:
        self._add(target, minutes.RECEIVED, received)

    def after_push(self, target: keys.Target, counts: Mapping[str, int], size: int, push_seconds: float,
                   opened_at: float | None) -> None:
        self._add(target, minutes.PUSHED, sum(counts.values()))

    def _add(self, target: keys.Target, field: str, count: int) -> None:
        # The stage's own writes are safe by now: a chart's count is not worth failing them for.
        try:
            minutes.add(self._store(), target, field, count)
        except STORE_ERRORS as exc:
            log.warning("could not count %s for %s in the console's chart: %s", field, target.ref, exc)


def last_hour(settings: Settings, targets: list[keys.Target]) -> dict[str, list[minutes.Minute]]:
    """Target ref -> its minutes of the last hour, oldest first; `probes.Unreachable` when the store does not answer."""
    url = store_url(settings)
    client = probes.store_client(url)
    try:
        with probes.store_errors(url):
            return minutes.last_hour(client, targets)
    finally:
        client.close()
