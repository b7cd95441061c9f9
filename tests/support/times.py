"""Event times for tests: ingestion refuses an occurredAt outside the ordering horizon (worker/ingest/horizon.py),
so test events are dated relative to now, never to a fixed day that a later run would find too old."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


def occurred(seconds_ago: float = 0.0) -> str:
    """An occurredAt `seconds_ago` before now (negative: ahead of now), as producers write it."""
    moment = datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)
    return moment.isoformat().replace("+00:00", "Z")
