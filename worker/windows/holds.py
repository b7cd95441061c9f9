"""Holds: a full run keeps its source's window open past its time until it holds a batch's worth.

A run feeding an export records its progress and the window size it wants on the target's run
record (`worker.runs.rebuild` writes it); the sweep reads it here before closing a window, so the
windows stage never depends on the runs above it.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from worker.store import keys

FEEDING = "feeding"
"""The state of a run record while its feeder is putting the export into the window."""
HOLD_LAPSE_SECONDS = 30.0
"""A run's window is held only while its feeder recorded progress this recently: a feeder that
died must not keep the source's change events waiting."""


RUN_FIELDS = ("state", "saved_at", "window_bytes")
"""What a hold is read from, on the target's run record."""


def held_for(client: redis.Redis, target: keys.Target, now: float) -> int | None:
    """The window size (bytes) that a run feeding `target` keeps its window open for; None when no
    run is feeding it, or the run has made no progress for HOLD_LAPSE_SECONDS."""
    return _wanted(client.hmget(target.rebuild, *RUN_FIELDS), now)


def _wanted(run: list[bytes | None], now: float) -> int | None:
    """What `held_for` says of a run record's RUN_FIELDS."""
    state, saved_at, window_bytes = run
    if state != FEEDING.encode() or not int(window_bytes or 0) or now - float(saved_at or 0) > HOLD_LAPSE_SECONDS:
        return None
    return int(window_bytes)


def holding_any(client: redis.Redis, targets: Sequence[keys.Target], now: float) -> set[keys.Target]:
    """Those of `targets` whose window must stay open past its time: a run is feeding it, and it
    does not yet hold what the run asked for (one round trip for all)."""
    pipe = client.pipeline(transaction=False)
    for target in targets:
        pipe.hmget(target.rebuild, *RUN_FIELDS)
        pipe.hget(target.window_meta, "bytes")
    replies = pipe.execute()
    held = set()
    for target, run, size in zip(targets, replies[::2], replies[1::2]):
        wanted = _wanted(run, now)
        if wanted is not None and int(size or 0) < wanted:
            held.add(target)
    return held
