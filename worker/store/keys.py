"""Names of every Redis key pushsync keeps, and of the refs stored in them, in one place.

All keys of one target (a Push source, or a security provider) share the Redis Cluster hash
tag `{kind:id}`, so the Lua scripts that change several of them run on one shard. The few
global keys (the quarantine, the locks) are only ever touched by single commands, or by
transactions within one hash slot (the quarantine's hash and its index share one). The indexes
that every target's traffic touches (deadlines, claimed batches, open bursts) are split into
`INDEX_SHARDS` keys of their own hash tags (`pushsync:{deadlines:3}`), a target's always the same
one (`Target.shard`), so neither their load nor their size sits on one Cluster node.

Refs name a target, or a target and one of its batches or runs, inside global keys and task
arguments. Each is decoded from its end that only pushsync writes, so any id the schema accepts
(`:` and `|` included) comes back whole:
- a target ref is `kind:id`; kinds hold no `:`, so the kind ends at the first one;
- a compound ref is `target ref|token`; tokens (batch ids, run ids) hold no `|`, so the token
  starts after the last one.
This is also the format every earlier version wrote: refs already stored read back unchanged,
including those of ids holding `|` that earlier versions split at the wrong place.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

PREFIX = "pushsync"
INDEX_SHARDS = 16
"""Shards of each index below. Changing it moves targets to other shards: every shard ever used
must then be read back as the unsharded keys are (see `worker.windows.flush`)."""


def _shards(name: str) -> tuple[str, ...]:
    return tuple(f"{PREFIX}:{{{name}:{shard}}}" for shard in range(INDEX_SHARDS))


DEADLINES = _shards("deadlines")
"""Sorted sets, one per shard: target ref -> epoch seconds when its open window closes."""
CLAIMED = _shards("claimed")
"""Sorted sets, one per shard: compound ref `target ref|batch id` -> epoch seconds of the batch's
last enqueue, swept by the reaper."""
BURSTS = _shards("bursts")
"""Sorted sets, one per shard: target ref -> epoch seconds of the last activity seen of its open
burst (REFRESH sent or pending, IDLE not yet sent), or of when it is next looked at."""
PARKED = f"{PREFIX}:parked"
"""Sorted set: compound ref `target ref|batch id` of a batch parked by a paused target -> epoch seconds when
the pause ends; the sweep enqueues the batch again then. Only paused targets' batches: never hot."""
PARKED_SCORE = 0.0
"""Score in CLAIMED of a batch its task parked until a condition (a pause's end, its providers'
identities): the reaper looks at it at every pass, where it looks at others only once they may be lost."""
UNSHARDED_DEADLINES = f"{PREFIX}:deadlines"
"""Sorted set of DEADLINES's members, as versions before the sharding wrote them; moved into the shards."""
UNSHARDED_CLAIMED = f"{PREFIX}:claimed"
"""Sorted set of CLAIMED's members, as versions before the sharding wrote them; moved into the shards."""
UNSHARDED_BURSTS = f"{PREFIX}:bursts"
"""Set of BURSTS's members (without times), as versions before the sharding wrote them; moved into the shards."""
QUARANTINE = f"{PREFIX}:quarantine"
"""Hash: quarantine id -> JSON entry (raw message or event, reason, time)."""
QUARANTINE_INDEX = f"{PREFIX}:{{{QUARANTINE}}}:index"
"""Sorted set: quarantine id -> epoch seconds, for listing in arrival order; its hash tag is the
quarantine's whole name, so a transaction changing both keeps to one Cluster slot."""
LEGACY_QUARANTINE_INDEX = f"{QUARANTINE}:index"
"""Where versions before Cluster support kept the index (moved into QUARANTINE_INDEX when found)."""
TARGETS = f"{PREFIX}:targets"
"""Set of target refs that ever finished a batch, failed or paused, so `pushsync status` lists quiet ones too."""
DEAD_LETTER_BROWSE_LOCK = f"{PREFIX}:dead_letter:browse"
"""Lock: one browse of the dead-letter queue at a time (it takes every entry off for a moment)."""
DEAD_LETTER_INDEX = f"{PREFIX}:dead_letter:index"
"""Hash: dead-letter entry id -> JSON {target, events, at}, to count entries per target without browsing the queue."""
RUNS_ENDING = f"{PREFIX}:runs:ending"
"""Set of compound refs `target ref|run id`: broker-started full runs whose rebuild.end came, until they are concluded."""
SWEEPS = f"{PREFIX}:sweeps"
"""Hash: at (epoch seconds of the last sweep run) and worker (who ran it): beat's sign of life."""
QUEUE = f"{PREFIX}:queue"
"""Hash: at, queued, rate: what the last sweep left claimed and not parked, and the rate (batches a second)
the pools finish them at, by which the next sweep bounds its claims (`worker.windows.flush`)."""
POOLS = f"{PREFIX}:pools"
"""Hash: worker name -> `processes seen_at`: the pool size of each worker that ran a sweep lately, over which
the sweep spreads push tasks."""
SWEEP_LOCK = f"{PREFIX}:sweep:lock"
"""redis-py lock held by the one sweep that runs at a time."""
BEAT_LOCK = f"{PREFIX}:beat:lock"
"""String with a time to live: who the one running beat is (JSON: host, pid, since, token), renewed at each tick."""

RUN_TTL_SECONDS = 7 * 24 * 3600
"""How long the state of a broker-started full run outlives its last event, if it never ends."""

SOURCE = "source"
PROVIDER = "provider"
KIND_SEPARATOR = ":"
"""Between a target's kind and its id in a target ref."""
TOKEN_SEPARATOR = "|"
"""Between a target ref and a batch or run id in a compound ref."""


@dataclass(frozen=True)
class Target:
    """A Push source (`kind="source"`) or a security provider (`kind="provider"`)."""

    kind: str
    id: str

    @property
    def ref(self) -> str:
        """How the target is named inside global keys and task arguments: `source:ID`."""
        return f"{self.kind}{KIND_SEPARATOR}{self.id}"

    @classmethod
    def from_ref(cls, ref: str) -> "Target":
        """The target `ref` names; its id may hold `:` (the kind never does)."""
        kind, _, target_id = ref.partition(KIND_SEPARATOR)
        return cls(kind, target_id)

    def compound_ref(self, token: str) -> str:
        """`target ref|token`, naming one batch or run (`token`: its id, which holds no `|`)."""
        if TOKEN_SEPARATOR in token:
            raise ValueError(f"a batch or run id holds no {TOKEN_SEPARATOR!r}, got {token!r}")
        return f"{self.ref}{TOKEN_SEPARATOR}{token}"

    @staticmethod
    def from_compound_ref(ref: str) -> tuple["Target", str]:
        """The target and the token that `compound_ref` joined into `ref`."""
        target_ref, _, token = ref.rpartition(TOKEN_SEPARATOR)
        return Target.from_ref(target_ref), token

    @property
    def shard(self) -> int:
        """The shard of every index that holds this target (a stable hash of its ref)."""
        return zlib.crc32(self.ref.encode()) % INDEX_SHARDS

    @property
    def deadlines(self) -> str:
        """The shard of DEADLINES that holds this target's deadline."""
        return DEADLINES[self.shard]

    @property
    def claimed(self) -> str:
        """The shard of CLAIMED that holds this target's claimed batches."""
        return CLAIMED[self.shard]

    @property
    def bursts(self) -> str:
        """The shard of BURSTS that holds this target's open burst."""
        return BURSTS[self.shard]

    @property
    def _base(self) -> str:
        return f"{PREFIX}:{{{self.kind}:{self.id}}}"

    @property
    def window(self) -> str:
        """Hash: coalescing key -> newest event JSON in the open window."""
        return f"{self._base}:window"

    @property
    def versions(self) -> str:
        """Hash: coalescing key -> version of the event kept in the open window."""
        return f"{self._base}:window:versions"

    @property
    def window_meta(self) -> str:
        """Hash: count, bytes, opened_at of the open window, and since_claim: seconds from the target's last
        claim to the window's opening (absent if it was never claimed)."""
        return f"{self._base}:window:meta"

    def high_water(self, key: str) -> str:
        """String: the newest version of item `key` that the service accepted (expires)."""
        return f"{self._base}:hwm:{key}"

    @property
    def stats(self) -> str:
        """Hash of counters (received, buffered, superseded, stale, pushed, dead_lettered...) and claimed_at,
        when the target's last batch was claimed."""
        return f"{self._base}:stats"

    def minute(self, minute: int) -> str:
        """Hash: in, pushed: events ingested and operations pushed in minute `minute` (epoch seconds // 60); expires."""
        return f"{self._base}:minute:{minute}"

    @property
    def recent(self) -> str:
        """Hash: when the last batch was accepted (batch, items) and the last error (when, what)."""
        return f"{self._base}:recent"

    @property
    def inflight(self) -> str:
        """Set of batch ids claimed and not yet released (at most one for items)."""
        return f"{self._base}:inflight"

    @property
    def burst(self) -> str:
        """Hash: state, epoch, status_sent_epoch, last_activity of the source's status bracket."""
        return f"{self._base}:burst"

    @property
    def burst_lock(self) -> str:
        """redis-py lock serializing the changes of the source's status bracket."""
        return f"{self._base}:burst:lock"

    @property
    def pause(self) -> str:
        """Hash: why and until when pushing to this target is paused (quota, wrong key)."""
        return f"{self._base}:pause"

    @property
    def rebuild(self) -> str:
        """Hash: the source's current rebuild run (id, start, lines fed, state)."""
        return f"{self._base}:rebuild"

    @property
    def rebuild_last(self) -> str:
        """Hash: what the last completed rebuild pushed (items), for the delete-share guard."""
        return f"{self._base}:rebuild:last"

    def run_state(self, run_id: str) -> str:
        """Hash: what a broker-started run's begin and end events said (start, options, expected events)."""
        return f"{self._base}:run:{run_id}"

    def run_seen(self, run_id: str) -> str:
        """Bitmap: bit n is set once the run's event number n has been coalesced."""
        return f"{self._base}:run:{run_id}:seen"

    def run_looked_at(self, run_id: str) -> str:
        """String with a time to live: a task to conclude the run was sent, so the sweep waits."""
        return f"{self._base}:run:{run_id}:looked_at"

    @property
    def run_cutoffs(self) -> str:
        """Sorted set: run id -> the earliest push (epoch ms) that made one of its events stale."""
        return f"{self._base}:run:cutoffs"

    def batch(self, batch_id: str) -> "Batch":
        return Batch(self, batch_id)


@dataclass(frozen=True)
class Batch:
    """The keys of one claimed window: the same three hashes as the window, renamed."""

    target: Target
    id: str

    @property
    def events(self) -> str:
        return f"{self.target._base}:batch:{self.id}"

    @property
    def versions(self) -> str:
        return f"{self.target._base}:batch:{self.id}:versions"

    @property
    def meta(self) -> str:
        return f"{self.target._base}:batch:{self.id}:meta"

    @property
    def lease(self) -> str:
        """String held by the task pushing this batch, with a short expiry renewed as it goes."""
        return f"{self.target._base}:batch:{self.id}:lease"

    @property
    def claim_ref(self) -> str:
        """The member of `CLAIMED` for this batch."""
        return self.target.compound_ref(self.id)

    @classmethod
    def from_claim_ref(cls, ref: str) -> "Batch":
        """The batch a member of `CLAIMED` names."""
        return cls(*Target.from_compound_ref(ref))
