"""Identities before items (invariant 7): a source's batch waits for its providers' identities.

Every event that enters a target's window gets the next number of that target's sequence
(`buffered_seq`, kept by coalesce.lua). A claim records the sequence it covers, and finishing a
batch (pushed, or dead-lettered: waiting forever would block the source) raises the target's
`finished_seq` to it. When a source's batch is claimed, it notes each linked provider's
`buffered_seq`; it may be pushed once every such provider's `finished_seq` has caught up, which
means every identity change ingested before the claim was sent first.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import redis

from worker.store import keys

NEEDS_PREFIX = "needs:"
"""Batch meta fields `needs:<provider id>` hold the provider sequence the batch waits for."""


def record(client: redis.Redis, batch: keys.Batch, providers: Iterable[str]) -> None:
    """Note in `batch`'s meta the identity changes of `providers` it must follow."""
    providers = list(providers)
    if not providers:
        return
    pipe = client.pipeline(transaction=False)
    for provider in providers:
        pipe.hget(keys.Target(keys.PROVIDER, provider).stats, "buffered_seq")
    needs = {f"{NEEDS_PREFIX}{provider}": int(seq or 0) for provider, seq in zip(providers, pipe.execute())}
    client.hset(batch.meta, mapping=needs)


def pending(client: redis.Redis, batch: keys.Batch) -> list[keys.Target]:
    """The providers whose identity changes `batch` still waits for."""
    needs = {field.decode()[len(NEEDS_PREFIX):]: int(value) for field, value in client.hgetall(batch.meta).items()
             if field.startswith(NEEDS_PREFIX.encode())}
    waiting = []
    for provider, needed in needs.items():
        target = keys.Target(keys.PROVIDER, provider)
        if int(client.hget(target.stats, "finished_seq") or 0) < needed:
            waiting.append(target)
    return waiting


def hasten(client: redis.Redis, providers: Iterable[keys.Target], now: float | None = None) -> None:
    """Close the providers' open windows at the next sweep instead of at their deadline."""
    now = time.time() if now is None else now
    for provider in providers:
        client.zadd(provider.deadlines, {provider.ref: now}, lt=True)
