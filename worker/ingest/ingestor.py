"""Ingestion: turn received broker messages into coalesced events, whatever the messages hold.

The transports (`worker.ingest.amqp` on RabbitMQ, `worker.ingest.stream` on a Redis broker)
hand groups of `Received` messages to an `Ingestor`, and acknowledge a message only once
`Ingestor.write` returned for its group. By then Redis holds each of its events: valid ones in
their windows, invalid ones in quarantine with the reason. The rules, for any body, header,
size or encoding:

- decoding never raises: a body that cannot be read is one quarantine entry with the reason;
- a store outage (connection lost, loading, read-only replica, out of memory, fewer replicas
  than `PUSHSYNC_STORE_MIN_REPLICAS` confirming the group's writes: `worker.store.durability`) is nobody's
  fault: `write` waits and tries again until the store answers, counting nothing against the
  messages, which stay unacknowledged meanwhile;
- any other failure of a group is tried again message by message, so one message that the
  store refuses for its own sake is quarantined alone with the store's answer, and never holds
  back the valid messages around it;
- a message that was delivered too often without finishing (its workers died holding it) is
  quarantined whole as poison, without being decoded again;
- an event outside the ordering horizon (`worker.ingest.horizon`: older than pushsync can order, or dated
  ahead of the worker's clock beyond the allowed skew) is quarantined with the reason, whichever
  producer sent it. Ages are judged when the group is decoded and again just before its events are
  coalesced, so a group held through a store outage never coalesces an event that aged past the
  horizon meanwhile.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from producers import broker
from producers.errors import InvalidEventError
from producers.events import Event, InvalidEvent, RebuildBegin, RebuildEnd, check_size, decode_message
from worker import hooks
from worker.ingest import quarantine
from worker.ingest.compression import BodyError, decompress
from worker.ingest.horizon import Horizon
from worker.runs import broker_runs
from worker.store import keys
from worker.store.durability import Durability, ReplicasUnconfirmed
from worker.store.outages import is_outage
from worker.windows.coalesce import Coalescer, target_of

log = logging.getLogger(__name__)

INGEST_GROUP_MESSAGES = 100
"""Messages written to Redis in one round trip, at most."""
REBUILD_BEGIN_TASK = "pushsync.rebuild_begin"
"""The task that starts a broker-started full run, sent by name: ingestion needs none of the push side."""
POISON_REASON = "the broker gave up on this message after repeated failed deliveries (poison message)"
PROTECTED_REASON = (
    "source {!r} is in PUSHSYNC_PROTECTED_SOURCES: Coveo manages it (Crawling Module, Coveo for Sitecore) "
    "and a custom connector's pushes could damage its index"
)
REFUSED_REASON = "the coalescing store refused this message: {}"
OUTAGE_BACKOFF_SECONDS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
"""Waits between tries while the store is out, growing to the last one."""
OUTAGE_LOG_SECONDS = 30.0
"""While an outage lasts, it is logged again this often (not at every try)."""
MESSAGE_TRIES = 3
"""Tries of one message alone before the store's refusal is taken as the message's own fault."""
MESSAGE_QUARANTINE_EVENTS = 100
"""Invalid events of one message quarantined one entry each; the rest of them share one entry of the
whole message. An entry takes hundreds of bytes and `{}` three: without a cap one 16 MiB message
became millions of entries, gigabytes in a Redis that runs with noeviction."""
OVERFLOW_REASON = ("{count} more invalid event(s) of this message{where}, past the first {cap} quarantined one "
                   "entry each, are kept in this entry; the first of them: {reason}")
"""Reason of the entry that keeps a message's invalid events past the cap (the whole message, or the events)."""

RunAnnouncer = Callable[[keys.Target, str], None]
"""Sends the task that starts a broker-started full run: (source or provider, run id)."""


def run_announcer(app: Any) -> RunAnnouncer:
    """Starts full runs through `app`'s `REBUILD_BEGIN_TASK`."""
    return lambda target, run_id: app.send_task(REBUILD_BEGIN_TASK, args=(target.ref, run_id))


class Stopping(Exception):
    """The worker is shutting down while the store was out: the group stays unacknowledged."""


@dataclass(frozen=True)
class Received:
    """One message as a transport received it."""

    body: bytes
    """The body, decompressed when the transport could do so."""
    undecodable: str | None = None
    """Why the transport could not read the body (bad compression, unknown codec), if it could not."""
    deliveries: int = 1
    """How many times the broker handed this message to a worker, this time included."""


@dataclass
class Decoded:
    """A group's events, decoded: those to coalesce, those to quarantine, and full-run marks."""

    valid: list[Event] = field(default_factory=list)
    invalid: list[InvalidEvent] = field(default_factory=list)
    runs: list[RebuildBegin | RebuildEnd] = field(default_factory=list)
    """Begin and end events of broker-started full runs."""
    causes: Counter = field(default_factory=Counter)
    """Why the invalid ones are invalid, as the quarantine metric names it."""
    overflow: list[InvalidEvent] = field(default_factory=list)
    """Invalid events past MESSAGE_QUARANTINE_EVENTS, kept in their message's entry: only their runs hear of them."""
    done: set[str] = field(default_factory=set)
    """Steps of `Ingestor._store` already carried out, so a retry repeats none (quarantine entries above all)."""
    late: dict[int, tuple[InvalidEvent, str]] = field(default_factory=dict)
    """Valid events that aged past the horizon after decoding, until quarantined: by the `id()` of the event,
    the invalid event and its cause."""
    aged_out: set[int] = field(default_factory=set)
    """`id()` of the events quarantined late, so a message written alone after its group leaves them out."""
    since: int | None = None
    """Where the durable step that writes these started (`Durability.mark`), kept while it is tried again."""
    begun: list[RebuildBegin] = field(default_factory=list)
    """Begin events recorded, whose runs start once the replicas confirmed them."""

    def refuse(self, invalid: InvalidEvent, cause: str) -> None:
        self.invalid.append(invalid)
        self.causes[cause] += 1

    def take_aged(self, horizon: Horizon, now: float) -> list[tuple[Event, InvalidEvent, str]]:
        """Remove the valid events that `horizon` refuses at `now` (epoch seconds, the worker's clock);
        returns each with its invalid event and quarantine cause."""
        kept, aged = [], []
        for event in self.valid:
            refusal = horizon.refusal(event.occurred_at, now)
            if refusal is None:
                kept.append(event)
            else:
                cause, reason = refusal
                aged.append((event, InvalidEvent(reason=reason, raw=_raw(event)), cause))
        self.valid = kept
        return aged

    def refuse_oversized(self) -> None:
        """Move the valid events that cannot be encoded or are over the size limit to the invalid ones."""
        fitting = []
        for event in self.valid:
            try:
                check_size(event)
            except InvalidEventError as exc:
                self.refuse(InvalidEvent(reason=exc.reason, raw=_raw(event)), quarantine.INVALID)
            else:
                fitting.append(event)
        self.valid = fitting

    def extend(self, other: Decoded) -> None:
        self.valid += other.valid
        self.invalid += other.invalid
        self.runs += other.runs
        self.overflow += other.overflow
        self.causes += other.causes

    def take_late(self, horizon: Horizon, now: float) -> None:
        """Move the valid events that aged past `horizon` by `now` to `late`."""
        for event, invalid, cause in self.take_aged(horizon, now):
            self.late[id(event)] = (invalid, cause)


def decode_one(message: Received, protected: frozenset[str], delivery_limit: int, horizon: Horizon,
               now: float) -> Decoded:
    """Decode and validate the events of one message; never raises.

    protected: source ids whose events are quarantined instead of pushed.
    delivery_limit: deliveries after which the message is quarantined whole, unread.
    horizon: how old (or far ahead) an event may be; now: the worker's clock (epoch seconds) to judge by.
    """
    decoded = Decoded()
    if message.deliveries > delivery_limit:
        decoded.refuse(InvalidEvent(reason=POISON_REASON, raw=message.body), quarantine.POISON)
        return decoded
    if message.undecodable is not None:
        decoded.refuse(InvalidEvent(reason=message.undecodable, raw=message.body), quarantine.UNDECODABLE)
        return decoded
    # Sizes are checked when the group is written (Decoded.refuse_oversized), which encodes each event once.
    for event in decode_message(message.body, max_event_bytes=None):
        if isinstance(event, InvalidEvent):
            decoded.refuse(event, quarantine.UNDECODABLE if event.index is None else quarantine.INVALID)
        elif isinstance(event, (RebuildBegin, RebuildEnd)):
            if event.source is not None and event.source in protected:
                decoded.refuse(InvalidEvent(reason=PROTECTED_REASON.format(event.source), raw=_raw(event)),
                               quarantine.PROTECTED)
            else:
                decoded.runs.append(event)
        elif protected and target_of(event).kind == keys.SOURCE and event.target in protected:
            decoded.refuse(InvalidEvent(reason=PROTECTED_REASON.format(event.target), raw=_raw(event)), quarantine.PROTECTED)
        else:
            decoded.valid.append(event)
    for _, invalid, cause in decoded.take_aged(horizon, now):
        decoded.refuse(invalid, cause)
    _cap_invalid(decoded, message.body)
    return decoded


def _cap_invalid(decoded: Decoded, body: bytes) -> None:
    """Keep at most MESSAGE_QUARANTINE_EVENTS invalid events one entry each, and the rest as one entry of `body`."""
    decoded.invalid, decoded.overflow = _capped(decoded.invalid, body)


def _capped(invalid: list[InvalidEvent], whole: Any = None) -> tuple[list[InvalidEvent], list[InvalidEvent]]:
    """The entries that keep `invalid`: at most MESSAGE_QUARANTINE_EVENTS one each, then one entry of `whole`
    (their message; by default a message of the rest, which a quarantine replay reads as any) for the rest;
    and that rest."""
    overflow = invalid[MESSAGE_QUARANTINE_EVENTS:]
    if not overflow:
        return invalid, []
    first, last = overflow[0].index, overflow[-1].index
    where = "" if first is None else f" (indexes {first} to {last})"
    return [*invalid[:MESSAGE_QUARANTINE_EVENTS], InvalidEvent(reason=OVERFLOW_REASON.format(
        count=len(overflow), where=where, cap=MESSAGE_QUARANTINE_EVENTS, reason=overflow[0].reason),
        raw=json.dumps({"events": [entry.raw for entry in overflow]}).encode() if whole is None else whole)], overflow


def unwrap(body: bytes, compression: str | None) -> Received:
    """A received body, decompressed when `compression` names a codec (bounded; see worker.ingest.compression)."""
    if not compression:
        return Received(body)
    try:
        return Received(decompress(body, compression))
    except BodyError as exc:
        return Received(body, undecodable=str(exc))


class Ingestor:
    """Writes decoded groups to the store, waiting out its outages and isolating bad messages."""

    def __init__(self, client: redis.Redis, coalescer: Coalescer, announce: RunAnnouncer, *,
                 protected: frozenset[str] = frozenset(), delivery_limit: int = broker.DELIVERY_LIMIT,
                 horizon: Horizon | None = None, durability: Durability | None = None) -> None:
        """
        client: the coalescing store.
        coalescer: writes valid events into their windows.
        announce: sends the task that starts a full run, once Redis holds its begin event.
        protected: source ids whose events are quarantined instead of pushed.
        delivery_limit: deliveries after which a message is quarantined as poison.
        horizon: how old an event may be to be accepted (default: from the coalescer's settings).
        durability: confirms each write by the store's replicas (default: none); `client` and the
            coalescer's client must be its `client`.
        """
        self.client = client
        self.coalescer = coalescer
        self.announce = announce
        self.protected = protected
        self.delivery_limit = delivery_limit
        self.horizon = horizon or Horizon.of(coalescer.settings)
        self.durability = durability or Durability(client, 0)
        self.stopping = threading.Event()
        """Set at shutdown: a write waiting for the store gives up (raises Stopping)."""

    def write(self, messages: Sequence[Received]) -> dict[str, int]:
        """Decode each of `messages` on its own (see `decode_one`) and make Redis hold every event.

        Returns counts by outcome. Raises Stopping if the worker stops while the store is out.
        """
        now = time.time()
        decoded = [decode_one(message, self.protected, self.delivery_limit, self.horizon, now) for message in messages]
        group = Decoded()
        for one in decoded:
            group.extend(one)
        try:
            return self._patiently(lambda: self._durably(group))
        except Stopping:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of one message must not hold back the others
            log.warning("a group of %d message(s) failed (%s: %s); writing them one by one",
                        len(messages), type(exc).__name__, exc)
        outcomes: Counter = Counter()
        for message, one in zip(messages, decoded):
            one.done |= group.done
            one.valid = [event for event in one.valid if id(event) not in group.aged_out]
            try:
                outcomes.update(self._alone(one))
            except Stopping:
                raise
            except Exception as exc:  # noqa: BLE001
                log.error("the coalescing store refused a message %d times, quarantining it: %s", MESSAGE_TRIES, exc)
                refused = Decoded()
                refused.refuse(InvalidEvent(reason=REFUSED_REASON.format(f"{type(exc).__name__}: {exc}"),
                                            raw=message.body), quarantine.UNDECODABLE)
                outcomes.update(self._patiently(lambda: self._durably(refused)))
        return dict(outcomes)

    def _alone(self, decoded: Decoded) -> dict[str, int]:
        """Write one message's events, trying a few times so that only a refusal that repeats condemns it."""
        attempt = 1
        while True:
            try:
                return self._patiently(lambda: self._durably(decoded))
            except Stopping:
                raise
            except Exception:
                if attempt == MESSAGE_TRIES:
                    raise
            if self.stopping.wait(OUTAGE_BACKOFF_SECONDS[attempt]):
                raise Stopping()
            attempt += 1

    def _patiently(self, attempt: Callable[[], dict[str, int]]) -> dict[str, int]:
        """Run `attempt` until it succeeds or fails for a reason other than an outage."""
        failures, since, logged = 0, 0.0, 0.0
        while True:
            try:
                result = attempt()
            except Exception as exc:
                if not is_outage(exc):
                    raise
                now = time.monotonic()
                since = since or now
                if now - logged >= OUTAGE_LOG_SECONDS:
                    logged = now
                    log.error("coalescing store refused the messages (%s: %s); holding them, unacknowledged, "
                              "until it answers (out for %.0fs)", type(exc).__name__, exc, now - since)
                wait = OUTAGE_BACKOFF_SECONDS[min(failures, len(OUTAGE_BACKOFF_SECONDS) - 1)]
                failures += 1
                if self.stopping.wait(wait):
                    raise Stopping() from exc
                continue
            if failures:
                log.warning("coalescing store answers again after %.1fs of outage", time.monotonic() - since)
            return result

    def _durably(self, decoded: Decoded) -> dict[str, int]:
        """`_store`, then wait for the replicas to confirm every write of it (since its first try)."""
        if decoded.since is None:
            decoded.since = self.durability.mark()
        try:
            outcomes = self._store(decoded)
            self.durability.confirm(decoded.since)
        except ReplicasUnconfirmed as exc:
            if exc.lost:  # what the earlier tries wrote may be gone: the next try writes everything again
                decoded.done.clear()
                decoded.since = None
            raise
        for event in decoded.begun:
            self.announce(broker_runs.target_of_run(event), event.run)
        decoded.begun = []
        return outcomes

    def _store(self, decoded: Decoded) -> dict[str, int]:
        """Quarantine the invalid events, coalesce the valid ones, record and announce full runs."""
        decoded.refuse_oversized()
        outcomes: Counter = Counter(quarantined=len(decoded.invalid), run_events=len(decoded.runs))
        if decoded.invalid and "quarantine" not in decoded.done:
            self._quarantine(decoded.invalid, decoded.overflow, decoded.causes)
            decoded.done.add("quarantine")
        if "coalesce" not in decoded.done:
            # Judged again now: the group may have waited out a store outage since it was decoded.
            decoded.take_late(self.horizon, time.time())
        if decoded.late:
            late, overflow = _capped([invalid for invalid, _ in decoded.late.values()])
            self._quarantine(late, overflow, Counter(cause for _, cause in decoded.late.values()))
            outcomes["quarantined"] += len(late)
            decoded.aged_out |= decoded.late.keys()
            decoded.late = {}
        if decoded.valid and "coalesce" not in decoded.done:
            result = self.coalescer.add(decoded.valid)
            decoded.done.add("coalesce")
            outcomes.update(result.outcomes)
            for target, counts in result.by_target.items():
                hooks.emit("after_ingest", target, received=sum(counts.values()),
                           superseded=counts["superseded"] + counts["replaced"], stale=counts["stale"])
        if decoded.runs and "runs" not in decoded.done:
            self._record_runs(decoded.runs)
            decoded.done.add("runs")
            decoded.begun = [event for event in decoded.runs if isinstance(event, RebuildBegin)]
        return dict(outcomes)

    def _quarantine(self, invalid: list[InvalidEvent], overflow: list[InvalidEvent], causes: Counter) -> None:
        """Keep `invalid` in quarantine (and `overflow`, kept in one of them, only for their runs).

        Each step is one hash slot's (a Cluster has no transaction across slots) and may be written twice:
        the runs' marks first (a run missing any of its events must not delete), then the entries in
        one transaction; the message is acknowledged only after both.
        """
        marks = self.client.pipeline(transaction=False)
        for entry in (*invalid, *overflow):
            broker_runs.record_invalid(marks, entry)
        if len(marks):
            marks.execute()
        pipe = self.client.pipeline(transaction=True)
        for entry in invalid:
            quarantine.keep(pipe, quarantine.entry_for(entry, queue=broker.EVENTS_QUEUE))
        pipe.execute()
        log.warning("quarantined %d invalid event(s): %s", len(invalid), invalid[0].reason)
        for cause, count in causes.items():
            hooks.emit("after_quarantine", cause, count)

    def _record_runs(self, events: list[RebuildBegin | RebuildEnd]) -> None:
        # Two steps, each writable twice: every run's state (its target's slot), then the global set of
        # ended runs that the sweep reads it from.
        for step in (broker_runs.record, broker_runs.mark_ending):
            pipe = self.client.pipeline(transaction=False)
            for event in events:
                step(pipe, event)
            if len(pipe):
                pipe.execute()
        for event in events:
            # An ended run is looked at by the sweep (see broker_runs.due); a begun one starts once
            # its record is confirmed (`_durably`).
            log.info("%s of run %s of %s received", event.kind, event.run, event.target)


def _raw(event: Event) -> Any:
    """The event as a JSON value for its quarantine entry, even when it cannot be encoded as UTF-8."""
    try:
        return json.loads(event.encoded)
    except (ValueError, UnicodeError):
        # JSON types, the lone surrogate kept: the quarantine entry escapes it when it writes itself.
        return event.model_dump(mode="json", by_alias=True, exclude_none=True)
