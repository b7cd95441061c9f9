"""A batch's lease: proof that one live task is pushing it, renewed while the task runs.

A task takes the lease before touching a batch and renews it from a background thread; if
the worker dies, the lease expires within one lease period (`PUSHSYNC_LEASE_SECONDS`) and
the reaper re-enqueues the batch. Releasing the batch checks the token, so a task that lost
its lease cannot finish a batch another task now owns.

A task that stalls (a long GC pause, a frozen VM, SIGSTOP) may wake up after its lease expired
and another task took the batch over. `check` fences what it does next: it asks no server, it
compares the monotonic clock (which runs on while a process is stopped) with the last renewal
Redis confirmed, so a task that slept past its lease finds out before its next call.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from pathlib import Path
from types import TracebackType

import redis

from worker.store.durability import Durability, ReplicasUnconfirmed
from worker.store.outages import STORE_ERRORS
from worker.store.scripts import script

HERE = Path(__file__).parent

log = logging.getLogger(__name__)

RENEWALS_PER_LEASE = 4
"""The lease is renewed this many times per lease period, so a slow Redis call cannot lose it."""
FENCE_MARGIN = 0.25
"""Share of the lease period `check` keeps in hand: it vouches for the lease only up to the rest of
the period after the last confirmed renewal, so a request sent right after a check still reaches
the service before the lease could expire and a successor take the batch."""


def request_bound_seconds(lease_seconds: float) -> float:
    """How long a request fenced by a lease of `lease_seconds` may take to connect, and again to have what it
    sent acknowledged, before the client gives it up: half of the margin `held` keeps in hand each, so a
    request sent after a check reaches the service before the lease can expire, or never."""
    return lease_seconds * FENCE_MARGIN / 2


class LeaseLost(Exception):
    """This task can no longer vouch for its lease: another task may own the batch now."""


class Lease:
    """Holds `key` with a random token while the `with` block runs."""

    def __init__(self, client: redis.Redis, key: str, seconds: float, durability: Durability | None = None) -> None:
        """
        client: the coalescing store.
        key: the lease's key.
        seconds: how long the lease lives without a renewal.
        durability: confirms the take and each renewal by the store's replicas (default: none); `client`
            must be its `client`. A renewal they do not confirm vouches for nothing.
        """
        self.client = client
        self.durability = durability or Durability(client, 0)
        self.key = key
        self.milliseconds = int(seconds * 1000)
        self.token = uuid.uuid4().hex
        self._script = script(client, HERE / "lease.lua")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._confirmed_at = 0.0
        """Monotonic time at which the last acquisition or renewal that Redis confirmed was sent."""
        self.lost = False
        self._ended = False

    def acquire(self) -> bool:
        """Take the lease if nobody holds it; start renewing it."""
        sent_at = time.monotonic()
        since = self.durability.mark()
        if not self.client.set(self.key, self.token, nx=True, px=self.milliseconds):
            return False
        try:
            self.durability.confirm(since)
        except ReplicasUnconfirmed:
            # The task hands its message back: its next delivery must find the lease free, not held by nobody.
            self.release()
            raise
        self._confirmed_at = sent_at
        self._thread = threading.Thread(target=self._renew, name=f"lease-{self.key}", daemon=True)
        self._thread.start()
        return True

    def _renew(self) -> None:
        while not self._stop.wait(self.milliseconds / 1000 / RENEWALS_PER_LEASE):
            # The new expiry counts from some instant after this one: the renewal vouches from here.
            sent_at = time.monotonic()
            try:
                since = self.durability.mark()
                if not self._script(keys=[self.key], args=[self.token, self.milliseconds]):
                    self.lost = True
                    log.error("lease %s was lost; another task may own the batch now", self.key)
                    return
                self.durability.confirm(since)
                self._confirmed_at = sent_at
            except STORE_ERRORS as exc:
                log.warning("could not renew lease %s: %s", self.key, exc)

    def held(self) -> bool:
        """Whether this task may still act on the batch: the lease was never found lost, and Redis
        confirmed it recently enough that it cannot have expired (with `FENCE_MARGIN` to spare)."""
        vouched = self.milliseconds / 1000 * (1 - FENCE_MARGIN)
        return not self.lost and time.monotonic() - self._confirmed_at < vouched

    def check(self, operation: str = "") -> None:
        """Raise `LeaseLost` unless the lease is `held`; `operation` names what was about to happen."""
        if not self.held():
            self.lost = True
            raise LeaseLost(f"lease {self.key} is no longer held" + (f"; not sending {operation}" if operation else ""))

    def halt(self) -> None:
        """Stop renewing, leaving the key to expire or to a script that ends the hold with the token."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def forget(self) -> None:
        """Stop renewing: a script that ended the hold with the token (release.lua) deleted the key already."""
        self.halt()
        self._ended = True

    def release(self) -> None:
        """Stop renewing and drop the lease if it is still ours."""
        self.halt()
        if self._ended:
            return
        try:
            self._script(keys=[self.key], args=[self.token, 0])
        except STORE_ERRORS as exc:
            log.warning("could not drop lease %s (it expires by itself): %s", self.key, exc)

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
