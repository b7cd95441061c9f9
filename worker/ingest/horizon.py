"""The ordering horizon (invariant 11): refuse an event too old for pushsync to order.

pushsync orders an event against what it pushed for the same item through the item's high-water
mark, which Redis forgets `PUSHSYNC_HIGH_WATER_TTL_SECONDS` after the item's last push. A push
comes after the event it pushed occurred, and an event that outranks another occurred after it;
so the mark that would order an event is remembered at least TTL after that event occurred. An
event is accepted only while that holds, judged by its `occurredAt` against the worker's clock,
which may disagree with the producer's by up to `PUSHSYNC_CLOCK_SKEW_SECONDS` (settings check that
horizon + skew <= TTL). docs/architecture.md (invariant 11) gives the argument whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from worker.settings import Settings

TOO_OLD = "too_old"
"""Quarantine cause of an event older than the horizon."""
FUTURE = "future"
"""Quarantine cause of an event dated further ahead of the worker's clock than the clock skew allows."""
TOO_OLD_REASON = (
    "occurredAt {occurred} is {age:.0f}s before this worker's clock, past the {horizon:.0f}s ordering horizon "
    "(PUSHSYNC_ORDERING_HORIZON_SECONDS): pushsync may have forgotten a newer version it pushed for this item, "
    "so this event could bring back older content; publish the item's current state with a fresh occurredAt"
)
FUTURE_REASON = (
    "occurredAt {occurred} is {ahead:.0f}s ahead of this worker's clock, more than the {skew:.0f}s clock skew "
    "allowed (PUSHSYNC_CLOCK_SKEW_SECONDS): its age cannot be judged; check the producer's clock"
)


@dataclass(frozen=True)
class Horizon:
    """How old, and how far ahead, an event's occurredAt may be for the event to be accepted."""

    seconds: float
    """The oldest age accepted (now minus occurredAt)."""
    skew_seconds: float
    """How far ahead of the worker's clock an occurredAt may be."""

    @classmethod
    def of(cls, settings: Settings) -> Horizon:
        return cls(settings.horizon_seconds, settings.clock_skew_seconds)

    def refusal(self, occurred_at: datetime, now: float) -> tuple[str, str] | None:
        """(quarantine cause, reason) when an event that occurred at `occurred_at` is refused at `now`
        (epoch seconds, the worker's clock); None when it is accepted."""
        age = now - occurred_at.timestamp()
        if age > self.seconds:
            return TOO_OLD, TOO_OLD_REASON.format(occurred=_iso(occurred_at), age=age, horizon=self.seconds)
        if -age > self.skew_seconds:
            return FUTURE, FUTURE_REASON.format(occurred=_iso(occurred_at), ahead=-age, skew=self.skew_seconds)
        return None


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
