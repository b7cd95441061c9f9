"""The lock of the one running beat: a second beat finds it held and stops.

Beat takes `keys.BEAT_LOCK` (SET NX with a time to live) before it schedules anything and renews
it at every tick of its scheduler, which comes at least once a sweep period. A beat that dies
leaves the lock to lapse within `lock_seconds`; one that stops drops it at once. The lock's value
says who holds it (host, pid, since when), for the refusal and for `pushsync status`.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis

from worker.store import keys
from worker.store.scripts import script

HERE = Path(__file__).parent

LOCK_MIN_SECONDS = 5.0
"""The lock outlives its last renewal by at least this long: a beat slowed down for a moment (a
busy host, a slow broker while it sends a sweep) keeps it."""
LOCK_SWEEP_PERIODS = 10
"""Sweep periods the lock outlives its last renewal by, at least: beat ticks (and renews) once a period."""


def lock_seconds(sweep_seconds: float) -> float:
    """How long the lock lives without a renewal, for a beat that sweeps every `sweep_seconds`."""
    return max(LOCK_MIN_SECONDS, LOCK_SWEEP_PERIODS * sweep_seconds)


@dataclass(frozen=True)
class Holder:
    """The beat process that holds the lock."""

    host: str
    pid: int
    since: float
    """When it took the lock (epoch seconds)."""
    token: str
    """Tells apart two processes with one host name and pid (containers that each run as pid 1)."""

    @classmethod
    def this_process(cls) -> "Holder":
        return cls(socket.gethostname(), os.getpid(), time.time(), uuid.uuid4().hex)

    def encode(self) -> str:
        return json.dumps({"host": self.host, "pid": self.pid, "since": self.since, "token": self.token})

    @classmethod
    def decode(cls, value: bytes | str) -> "Holder":
        return cls(**json.loads(value))

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"


def holder(client: redis.Redis) -> Holder | None:
    """Who holds the lock now; None when no beat does."""
    value = client.get(keys.BEAT_LOCK)
    return Holder.decode(value) if value is not None else None


class BeatLock:
    """The lock as this process holds it."""

    def __init__(self, client: redis.Redis, seconds: float) -> None:
        """
        client: the coalescing store.
        seconds: how long the lock lives without a renewal (see `lock_seconds`).
        """
        self.me = Holder.this_process()
        self.milliseconds = int(seconds * 1000)
        self._token = self.me.encode()
        self._script = script(client, HERE / "beat_lock.lua")

    def hold(self) -> Holder | None:
        """Take the lock, or renew it if this process holds it; returns who else holds it, None if nobody.

        A lock that lapsed (this beat was stopped, or the store lost it) is taken again when free.
        Raises redis.RedisError when the store does not answer."""
        other = self._script(keys=[keys.BEAT_LOCK], args=[self._token, self.milliseconds])
        return Holder.decode(other) if other is not None else None

    def release(self) -> None:
        """Drop the lock if this process holds it."""
        self._script(keys=[keys.BEAT_LOCK], args=[self._token, 0])
