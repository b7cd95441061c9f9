"""Which worker and beat processes are alive, for `pushsync status` and `pushsync health`.

Workers answer Celery's remote control (over the broker, Redis or RabbitMQ alike). Beat has no
remote control: the sweep it schedules every `PUSHSYNC_SWEEP_SECONDS` records when it ran, and
beat counts as alive while sweeps keep coming. Sweeps run on workers, so without a worker
beat cannot be judged. Which process beat is, the lock it holds says (`worker.store.beat_lock`).
"""

from __future__ import annotations

import fnmatch
import math
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from celery import Celery
from kombu import Connection

from worker.store import beat_lock, keys
from worker.store.scripts import script

HERE = Path(__file__).parent

REPLY_SECONDS = 1.0
"""How long to wait for workers' answers to a remote-control request."""
POOL_STALE_SECONDS = 60.0
"""A worker that ran no sweep this long no longer counts among the pools that push tasks are spread over (sweeps
go round the workers: with a hundred of them, each runs one about every fifty seconds)."""
BEAT_STALE_PERIODS = 5
"""Sweep periods without a sweep after which beat counts as gone (sweeps expire after as many)."""


@dataclass(frozen=True)
class Worker:
    """One worker that answered, as it described itself."""

    name: str
    pid: int | None
    uptime_seconds: float | None
    concurrency: int | None
    """Tasks it runs at once (its pool's size)."""
    tasks_run: int
    """Tasks this worker has run since it started."""
    seen_at: float


@dataclass(frozen=True)
class Beat:
    """What the sweep record says about beat."""

    last_sweep: float | None
    """When the last sweep ran (epoch seconds), None if none was ever recorded."""
    worker: str | None
    """The worker that ran it."""
    alive: bool
    stale_after_seconds: float
    """Age of the last sweep past which beat counts as gone."""
    holder: beat_lock.Holder | None
    """The beat process that holds the lock; None when none does."""


def record_sweep(client: redis.Redis, worker: str | None, pool_processes: int | None = None,
                 now: float | None = None) -> None:
    """Note that a sweep ran now on `worker` (beat's sign of life), whose pool runs `pool_processes` tasks at
    once (None: unknown, not recorded)."""
    now = time.time() if now is None else now
    worker = worker or socket.gethostname()
    pipe = client.pipeline(transaction=False)
    pipe.hset(keys.SWEEPS, mapping={"at": repr(now), "worker": worker})
    record_pool(pipe, worker, pool_processes, now)
    pipe.execute()


def record_pool(client: redis.Redis, worker: str, pool_processes: int | None, now: float | None = None) -> None:
    """Count `worker`'s pool of `pool_processes` (None: unknown, nothing recorded) among those push tasks are
    spread over, as seen now."""
    if pool_processes:
        client.hset(keys.POOLS, worker, f"{pool_processes} {time.time() if now is None else now!r}")


def pool_processes(client: redis.Redis, now: float | None = None) -> int:
    """The pool processes of the workers that ran a sweep in the last POOL_STALE_SECONDS (0 if none did);
    workers not seen for that long are forgotten."""
    now = time.time() if now is None else now
    total, stale = 0, []
    for worker, value in client.hgetall(keys.POOLS).items():
        processes, seen_at = _pool_record(value)
        if processes is None or now - seen_at > POOL_STALE_SECONDS:
            stale += [worker, value]
        else:
            total += processes
    if stale:
        # Compared first: a worker that recorded its pool since the read (a sweep of its own) stays counted.
        script(client, HERE / "forget_pools.lua")(keys=[keys.POOLS], args=stale)
    return total


def _pool_record(value: bytes) -> tuple[int | None, float]:
    """The pool processes and the time of a record of `keys.POOLS` ((None, 0) if it is no such record: it is
    forgotten as a stale one is)."""
    processes, _, seen_at = value.decode(errors="replace").partition(" ")
    try:
        count, at = int(processes), float(seen_at)
    except ValueError:
        return None, 0.0
    # float() takes nan and inf, which no age exceeds: such a record would count forever.
    if count <= 0 or not math.isfinite(at):
        return None, 0.0
    return count, at


def last_sweep(client: redis.Redis) -> float | None:
    """When the last sweep ran (epoch seconds); None if none was ever recorded."""
    at = client.hget(keys.SWEEPS, "at")
    return float(at) if at is not None else None


def beat(client: redis.Redis, sweep_seconds: float, now: float | None = None) -> Beat:
    """Beat's state from the last recorded sweep and its lock; `sweep_seconds` is the schedule's period."""
    now = time.time() if now is None else now
    last = last_sweep(client)
    worker = client.hget(keys.SWEEPS, "worker")
    stale_after = sweep_seconds * BEAT_STALE_PERIODS
    return Beat(last, worker.decode() if worker is not None else None,
                last is not None and now - last <= stale_after, stale_after, beat_lock.holder(client))


GLOB_CHARACTERS = "*?["
"""A worker name holding one of these is a shell-style pattern (`pushsync-*@host`)."""


def ping(app: Celery, connection: Connection, *, worker: str | None = None, timeout: float = REPLY_SECONDS) -> list[str]:
    """Names of the workers that answer a ping; returns at the first answer.

    worker: only this one, or only those matching it when it is a pattern (`pushsync-*@HOST`: the
        workers of one host under their default names); then every answer within `timeout` counts.
    """
    if worker and any(c in worker for c in GLOB_CHARACTERS):
        replies = app.control.ping(timeout=timeout, connection=connection)
        return [name for reply in replies for name in reply if fnmatch.fnmatchcase(name, worker)]
    replies = app.control.ping(destination=[worker] if worker else None, timeout=timeout, limit=1,
                               connection=connection)
    return [name for reply in replies for name in reply]


def workers(app: Celery, connection: Connection, timeout: float = REPLY_SECONDS) -> list[Worker]:
    """Every worker that answers within `timeout`, with its pid, uptime, pool size and tasks run."""
    stats = app.control.inspect(timeout=timeout, connection=connection).stats() or {}
    seen_at = time.time()
    return [
        Worker(name=name, pid=info.get("pid"), uptime_seconds=info.get("uptime"),
               concurrency=info.get("pool", {}).get("max-concurrency"),
               tasks_run=sum(info.get("total", {}).values()), seen_at=seen_at)
        for name, info in sorted(stats.items())
    ]
