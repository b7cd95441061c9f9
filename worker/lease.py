"""A batch's lease: proof that one live task is pushing it, renewed while the task runs.

A task takes the lease before touching a batch and renews it from a background thread; if
the worker dies, the lease expires within one lease period (`PUSHSYNC_LEASE_SECONDS`) and
the reaper re-enqueues the batch. Releasing the batch checks the token, so a task that lost
its lease cannot finish a batch another task now owns.
"""

from __future__ import annotations

import logging
import threading
import uuid
from types import TracebackType

import redis

from worker.scripts import script

log = logging.getLogger(__name__)

RENEWALS_PER_LEASE = 4
"""The lease is renewed this many times per lease period, so a slow Redis call cannot lose it."""


class Lease:
    """Holds `key` with a random token while the `with` block runs."""

    def __init__(self, client: redis.Redis, key: str, seconds: float) -> None:
        """
        client: the coalescing store.
        key: the lease's key.
        seconds: how long the lease lives without a renewal.
        """
        self.client = client
        self.key = key
        self.milliseconds = int(seconds * 1000)
        self.token = uuid.uuid4().hex
        self._script = script(client, "lease.lua")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def acquire(self) -> bool:
        """Take the lease if nobody holds it; start renewing it."""
        if not self.client.set(self.key, self.token, nx=True, px=self.milliseconds):
            return False
        self._thread = threading.Thread(target=self._renew, name=f"lease-{self.key}", daemon=True)
        self._thread.start()
        return True

    def _renew(self) -> None:
        while not self._stop.wait(self.milliseconds / 1000 / RENEWALS_PER_LEASE):
            try:
                if not self._script(keys=[self.key], args=[self.token, self.milliseconds]):
                    self.lost = True
                    log.error("lease %s was lost; another task may own the batch now", self.key)
                    return
            except redis.RedisError as exc:
                log.warning("could not renew lease %s: %s", self.key, exc)

    def halt(self) -> None:
        """Stop renewing, leaving the key to expire or to a script that ends the hold with the token."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def release(self) -> None:
        """Stop renewing and drop the lease if it is still ours."""
        self.halt()
        try:
            self._script(keys=[self.key], args=[self.token, 0])
        except redis.RedisError as exc:
            log.warning("could not drop lease %s (it expires by itself): %s", self.key, exc)

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
