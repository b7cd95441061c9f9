"""A source's status: REBUILD, REFRESH and INCREMENTAL open an activity, IDLE closes it."""

from __future__ import annotations

STATUS_TYPES = ("REBUILD", "REFRESH", "INCREMENTAL", "IDLE")
IDLE = "IDLE"


class ActivityLog:
    """Every status transition of one source, and the activities they opened and closed."""

    def __init__(self) -> None:
        self.status = IDLE
        """The status set last."""
        self.transitions: list[dict[str, object]] = []
        """Every status call, in order: statusType and time."""
        self.activities: list[dict[str, object]] = []
        """Each activity: type, openedAt, closedAt (None while open)."""

    def set(self, status_type: str, now: float) -> None:
        """Record a status call made at `now` (epoch seconds on the emulator's clock)."""
        self.transitions.append({"statusType": status_type, "time": now})
        self.status = status_type
        current = self.activities[-1] if self.activities and self.activities[-1]["closedAt"] is None else None
        if current is not None and current["type"] != status_type:
            current["closedAt"] = now  # IDLE, or another activity type replacing this one
            current = None
        if current is None and status_type != IDLE:
            self.activities.append({"type": status_type, "openedAt": now, "closedAt": None})

    def to_json(self) -> dict[str, object]:
        """The log as the admin API shows it."""
        return {"status": self.status, "activities": self.activities, "transitions": self.transitions}
