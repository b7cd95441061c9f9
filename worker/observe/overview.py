"""What `pushsync status` shows, gathered read-only from the store and the broker into typed rows.

A target (source or provider) is listed when it has a window open, a batch claimed, a burst
open, entries in the dead-letter queue, or ever finished a batch, failed or paused
(`keys.TARGETS`). A service that does not answer is reported as such, with what could still be
gathered from the others.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import Celery

from producers.broker import EVENTS_QUEUE, POISON_SUFFIX, is_amqp
from worker.deadletter.queue import DEAD_LETTER_QUEUE, Held, held_per_target
from worker.ingest import quarantine
from worker.observe import liveness, probes
from worker.settings import Settings
from worker.store import indexes, keys, recent
from worker.store.connection import store_url
from worker.windows import holds

COUNTERS = ("received", "superseded", "stale", "pushed", "dead_lettered")
"""Fields of a target's stats hash that are running totals worth showing."""
PUSHING = "pushing"
WAITING = "waiting for identities"
QUEUED = "queued"
"""States of a claimed batch: a task holds its lease; it waits for its providers; neither (yet)."""


@dataclass(frozen=True)
class InFlight:
    """A claimed batch not yet released."""

    batch: str
    items: int
    claimed_at: float
    attempts: int
    """Push task deliveries so far."""
    state: str
    """PUSHING, WAITING or QUEUED."""


@dataclass(frozen=True)
class Paused:
    reason: str
    until: float


@dataclass(frozen=True)
class TargetRow:
    """One source or provider."""

    kind: str
    id: str
    buffered: int
    """Items (or identities) in the open window."""
    buffered_bytes: int
    oldest_at: float | None
    """When the oldest window still buffered or in flight opened (its first event arrived)."""
    closes_at: float | None
    """When the open window is due to be claimed."""
    held_for: int | None
    """Bytes a feeding full run keeps the open window for, past `closes_at`; None when no run holds it."""
    in_flight: list[InFlight]
    paused: Paused | None
    burst: str | None
    """The status bracket: open, closing or idle (sources only); `rebuild` while a rebuild runs."""
    recent: recent.Recent
    dead_letters: Held
    counts: dict[str, int]
    """Running totals since the target's first event (see COUNTERS)."""


@dataclass(frozen=True)
class Service:
    url: str
    """Without its password."""
    error: str | None = None
    """Why it did not answer; None when it did."""


@dataclass
class Overview:
    at: float
    store: Service
    broker: Service
    queues: dict[str, int] = field(default_factory=dict)
    """Messages waiting in each broker queue."""
    workers: list[liveness.Worker] = field(default_factory=list)
    beat: liveness.Beat | None = None
    sources: list[TargetRow] = field(default_factory=list)
    providers: list[TargetRow] = field(default_factory=list)
    dead_letters_indexed: int = 0
    """Dead-letter entries the store's index knows of, to compare with the queue's depth."""
    quarantined: int | None = None


def gather(app: Celery, settings: Settings, *, reply_seconds: float = liveness.REPLY_SECONDS) -> Overview:
    """Everything `pushsync status` shows; `reply_seconds`: how long to wait for workers' answers."""
    store = store_url(settings)
    broker = settings.broker_url or store
    overview = Overview(at=time.time(), store=Service(probes.shown(store)), broker=Service(probes.shown(broker)))
    client = probes.store_client(store)
    try:
        with probes.store_errors(store):
            _from_store(overview, client, settings)
    except probes.Unreachable as exc:
        overview.store = Service(overview.store.url, str(exc))
    finally:
        client.close()
    try:
        with probes.open_broker(broker) as connection:
            overview.queues = probes.queue_depths(connection, _queues(app, broker))
            overview.workers = liveness.workers(app, connection, reply_seconds)
    except probes.Unreachable as exc:
        overview.broker = Service(overview.broker.url, str(exc))
    return overview


def _queues(app: Celery, broker_url: str) -> list[str]:
    names = [EVENTS_QUEUE, app.conf.task_default_queue, DEAD_LETTER_QUEUE]
    if is_amqp(broker_url):
        names += [EVENTS_QUEUE + POISON_SUFFIX, app.conf.task_default_queue + POISON_SUFFIX]
    return names


def _from_store(overview: Overview, client: redis.Redis, settings: Settings) -> None:
    held = held_per_target(client)
    overview.dead_letters_indexed = sum(h.entries for h in held.values())
    overview.quarantined = quarantine.count(client)
    overview.beat = liveness.beat(client, settings.sweep_seconds, overview.at)
    rows = [_row(client, target, held, overview.at) for target in _targets(client, held)]
    overview.sources = [row for row in rows if row.kind == keys.SOURCE]
    overview.providers = [row for row in rows if row.kind == keys.PROVIDER]


def _targets(client: redis.Redis, held: dict[str, Held]) -> list[keys.Target]:
    deadlines, claimed = indexes.members(client, keys.DEADLINES), indexes.members(client, keys.CLAIMED)
    bursts, known = indexes.members(client, keys.BURSTS), client.smembers(keys.TARGETS)
    refs = {raw.decode() for raw in [*deadlines, *bursts, *known]}
    refs |= {keys.Batch.from_claim_ref(raw.decode()).target.ref for raw in claimed}
    refs |= set(held)
    return [keys.Target.from_ref(ref) for ref in sorted(refs)]


def _row(client: redis.Redis, target: keys.Target, held: dict[str, Held], now: float) -> TargetRow:
    pipe = client.pipeline(transaction=False)
    for key in (target.window_meta, target.pause, target.recent, target.stats, target.burst):
        pipe.hgetall(key)
    pipe.smembers(target.inflight)
    pipe.zscore(target.deadlines, target.ref)
    window, pause, last, stats, burst, inflight, closes_at = (_text(reply) for reply in pipe.execute())
    # A batch released since the set was read has no meta left: it is no longer in flight.
    batches = [found for batch_id in sorted(inflight) if (found := _in_flight(client, target.batch(batch_id)))]
    opened = [float(meta["opened_at"]) for meta in [window, *(meta for _, meta in batches)] if "opened_at" in meta]
    paused = Paused(pause["reason"], float(pause["until"])) if pause and float(pause["until"]) > now else None
    buffered_bytes = int(window.get("bytes", 0))
    held_for = holds.held_for(client, target, now)
    return TargetRow(
        kind=target.kind, id=target.id, buffered=int(window.get("count", 0)), buffered_bytes=buffered_bytes,
        oldest_at=min(opened, default=None), closes_at=closes_at,
        held_for=held_for if held_for is not None and buffered_bytes < held_for else None,
        in_flight=[row for row, _ in batches],
        paused=paused, burst="rebuild" if "rebuild" in burst else burst.get("state"),
        recent=recent.parse(last), dead_letters=held.get(target.ref, Held()),
        counts={name: int(stats.get(name, 0)) for name in COUNTERS},
    )


def _in_flight(client: redis.Redis, batch: keys.Batch) -> tuple[InFlight, dict[str, str]] | None:
    """The batch's row and its raw meta (which still holds its window's `opened_at`); None once released."""
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(batch.meta)
    pipe.exists(batch.lease)
    meta, leased = pipe.execute()
    meta = _text(meta)
    if not meta:
        return None
    state = PUSHING if leased else WAITING if "waiting" in meta else QUEUED
    return InFlight(batch.id, int(meta.get("count", 0)), float(meta.get("claimed_at", 0)),
                    int(meta.get("attempts", 0)), state), meta


def _text(reply: Any) -> Any:
    """A Redis reply with its bytes decoded (hashes, sets and scalars alike)."""
    if isinstance(reply, dict):
        return {k.decode(): v.decode() for k, v in reply.items()}
    if isinstance(reply, set):
        return {member.decode() for member in reply}
    return reply
