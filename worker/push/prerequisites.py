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
from pathlib import Path

import redis

from worker.store import keys
from worker.store.scripts import script

HERE = Path(__file__).parent

NEEDS_PREFIX = "needs:"
"""Batch meta fields `needs:<provider id>` hold the provider sequence the batch waits for."""
NEEDS_UNKNOWN = "needs_unknown"
"""Batch meta field set by the claim (claim.lua) of a batch that has providers, removed once `record`
wrote its needs: a claimer killed in between leaves it, and the push records the needs itself."""
Meta = dict[bytes, bytes]
"""A batch's meta hash as redis-py reads it."""


def record(client: redis.Redis, batch: keys.Batch, providers: Iterable[str]) -> None:
    """Note in `batch`'s meta the identity changes of `providers` it must follow (nothing if the batch is gone)."""
    providers = list(providers)
    if not providers:
        return
    pipe = client.pipeline(transaction=False)
    for provider in providers:
        pipe.hget(keys.Target(keys.PROVIDER, provider).stats, "buffered_seq")
    needs = [part for provider, seq in zip(providers, pipe.execute())
             for part in (f"{NEEDS_PREFIX}{provider}", int(seq or 0))]
    script(client, HERE / "needs.lua")(keys=[batch.meta], args=[NEEDS_UNKNOWN, *needs])


def settle(client: redis.Redis, batch: keys.Batch, providers: Iterable[str], meta: Meta) -> Meta:
    """Record `batch`'s needs if its claimer died before it did; `meta` is the batch's meta as read
    before, and what is returned is that meta with the needs. Read now, the providers' sequences
    cover at least every identity change ingested before the claim: the batch may wait longer, never less."""
    providers = list(providers)
    if not providers or NEEDS_UNKNOWN.encode() not in meta:
        return meta
    record(client, batch, providers)
    return client.hgetall(batch.meta)


def pending_many(client: redis.Redis, batches: list[keys.Batch]) -> dict[keys.Batch, list[keys.Target]]:
    """The providers whose identity changes each of `batches` still waits for, in two round trips (the
    reaper asks for every batch waiting: thousands of sources may wait for one provider)."""
    pipe = client.pipeline(transaction=False)
    for batch in batches:
        pipe.hgetall(batch.meta)
    return waiting(client, dict(zip(batches, pipe.execute())))


def waiting(client: redis.Redis, metas: dict[keys.Batch, Meta]) -> dict[keys.Batch, list[keys.Target]]:
    """The providers whose identity changes each batch still waits for, given the batches' metas
    as read already; one round trip, none when no batch needs anything."""
    needs = [{keys.Target(keys.PROVIDER, field.decode()[len(NEEDS_PREFIX):]): int(value)
              for field, value in meta.items() if field.startswith(NEEDS_PREFIX.encode())} for meta in metas.values()]
    providers = list({provider for need in needs for provider in need})
    pipe = client.pipeline(transaction=False)
    for provider in providers:
        pipe.hget(provider.stats, "finished_seq")
    finished = {provider: int(seq or 0) for provider, seq in zip(providers, pipe.execute())}
    return {batch: [provider for provider, needed in need.items() if finished[provider] < needed]
            for batch, need in zip(metas, needs)}


def hasten(client: redis.Redis, providers: Iterable[keys.Target], now: float | None = None) -> None:
    """Close the providers' open windows at the next sweep instead of at their deadline."""
    now = time.time() if now is None else now
    for provider in providers:
        client.zadd(provider.deadlines, {provider.ref: now}, lt=True)
