"""The sweeps' own consumer: each worker's main process takes beat's sweeps from their queue.

The pool's processes take push tasks, which may each take seconds; a sweep behind them in their
queue, or waiting for a free process, expired or came late, so windows waited tens of seconds
instead of a sweep period. Here a thread of the worker's main process consumes the
`pushsync.sweep` queue (routed in `celeryconfig`) and runs each sweep that has not expired; the
sweep lock lets one sweep run at a time over all the workers.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import datetime, timezone
from typing import Any

from celery import bootsteps
from kombu import Message, Queue

from worker import tasks

log = logging.getLogger(__name__)

DRAIN_SECONDS = 1.0
"""How long one wait for a sweep message lasts, so a stop is noticed within about a second."""
RECONNECT_SECONDS = 2.0
"""Wait before the consumer connects again after the broker failed it."""
ANNOUNCE_SECONDS = 15.0
"""How often a worker records its pool among those push tasks are spread over, sweep or not (a quarter of
`liveness.POOL_STALE_SECONDS`)."""


class SweepConsumer:
    """Consumes the sweep queue and runs its sweeps, in a thread of its own."""

    def __init__(self, app: Any, hostname: str, pool_processes: int | None = None) -> None:
        """
        app: the Celery application (its broker connection and the sweep's route).
        hostname: this worker's node name, recorded by each sweep it runs.
        pool_processes: tasks this worker's pool runs at once, recorded with it (None: unknown).
        """
        self.app = app
        self.hostname = hostname
        self.pool_processes = pool_processes
        self.queue: Queue = app.conf.task_routes[tasks.SWEEP_TASK]["queue"]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name="pushsync-sweeper", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def run(self) -> None:
        # Counted among the pools at once, not at its first sweep: the sweeps meanwhile would spread their
        # pushes over the other workers only.
        tasks.announce(self.hostname, self.pool_processes)
        while not self.stopping.is_set():
            try:
                self._consume()
            except Exception as exc:  # noqa: BLE001 - the broker or a sweep failed: sweeps come again
                log.warning("sweep consumer failed (%s: %s); connecting again in %.0fs", type(exc).__name__, exc,
                            RECONNECT_SECONDS)
                self.stopping.wait(RECONNECT_SECONDS)

    def _consume(self) -> None:
        with self.app.connection_for_read() as connection:
            with connection.Consumer(self.queue, callbacks=[self._on_message], accept=["json"], prefetch_count=1):
                announced = time.monotonic()
                while not self.stopping.is_set():
                    if time.monotonic() - announced > ANNOUNCE_SECONDS:
                        # Sweeps come to each worker by chance: its pool would drop out of the count without one.
                        tasks.announce(self.hostname, self.pool_processes)
                        announced = time.monotonic()
                    try:
                        connection.drain_events(timeout=DRAIN_SECONDS)
                    except socket.timeout:
                        continue

    def _on_message(self, body: Any, message: Message) -> None:
        # Acknowledged first: a sweep lost with its worker is replaced by the next one beat sends.
        message.ack()
        if not _expired(message):
            tasks.run_sweep(self.hostname, self.pool_processes)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(DRAIN_SECONDS * 5)


def _expired(message: Message) -> bool:
    """Whether the sweep's `expires` header (set by beat) has passed: a newer sweep follows it."""
    expires = (message.headers or {}).get("expires")
    return expires is not None and datetime.fromisoformat(expires) < datetime.now(timezone.utc)


class SweepStep(bootsteps.StartStopStep):
    """Runs this worker's sweep consumer."""

    # Started once the pool's children are forked, so none of them inherits the consumer's sockets.
    requires = ("celery.worker.components:Pool",)

    def create(self, parent: Any) -> SweepConsumer:
        concurrency = parent.concurrency
        return SweepConsumer(parent.app, parent.hostname, concurrency if isinstance(concurrency, int) else None)
