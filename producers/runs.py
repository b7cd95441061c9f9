"""Full runs through the broker: a rebuild of a Push source, or a sync of a provider's identities.

    with publisher.full_run(source="docs") as run:
        for item in export():
            run.publish(item)            # item.upsert events of source "docs"

Entering the block publishes `rebuild.begin`; each event is tagged with the run id and its number
in the run; leaving it flushes, then publishes `rebuild.end` with the count. The workers push the
run's events and only then delete (or disable) what the run did not touch, under the guards of
`pushsync rebuild` (see docs/events.md). If the block raises, `rebuild.end` says the run is
abandoned, and nothing is deleted.
"""

from __future__ import annotations

import uuid
from types import TracebackType
from typing import TYPE_CHECKING, Any

from producers.errors import InvalidEventError
from producers.events import EVENT_TYPES, Event

if TYPE_CHECKING:
    from producers.publisher import Publisher

CARRIED_KINDS = {"source": ("item.upsert",), "provider": ("identity.upsert", "identity.alias")}
"""The kinds of event a full run carries, by what it runs on: a source's items or a provider's identities."""


class FullRun:
    """One full run being published; made by `Publisher.full_run`."""

    def __init__(self, publisher: Publisher, *, source: str | None = None, provider: str | None = None,
                 run_id: str | None = None, **options: Any) -> None:
        """
        publisher: the publisher that carries the run's events.
        source: the Push source to rebuild (items); give this or `provider`.
        provider: the security provider to sync (identities).
        run_id: the run's id (a new one by default).
        options: `queueDelay` (minutes), `maxDeleteShare` (0 to 1), `allowEmpty`, as on rebuild.begin.
        """
        if (source is None) == (provider is None):
            raise ValueError("give exactly one of source or provider")
        self.publisher = publisher
        self.id = run_id or uuid.uuid4().hex[:12]
        self.events = 0
        """Events published in the run so far."""
        self._target = {"source": source} if source is not None else {"provider": provider}
        self._kinds = CARRIED_KINDS["source" if source is not None else "provider"]
        self._options = options

    def begin(self) -> FullRun:
        """Publish `rebuild.begin` and wait for the broker's confirm: its time is the delete's cut-off."""
        self.publisher.publish_many([{"kind": "rebuild.begin", "run": self.id, **self._target, **self._options}])
        return self

    def publish(self, event: Event | dict[str, Any]) -> Event:
        """Publish one event of the run, tagged with the run and its number in it."""
        body = event.model_dump(by_alias=True, exclude_none=True) if isinstance(event, EVENT_TYPES) else dict(event)
        target_field, target = next(iter(self._target.items()))
        if body.get("kind") not in self._kinds or body.get(target_field) != target:
            raise InvalidEventError([f"kind: this run of {target_field} {target!r} carries only "
                                     f"{' and '.join(self._kinds)} events of that {target_field}"])
        body["rebuild"] = {"run": self.id, "seq": self.events}
        published = self.publisher.publish(body)
        self.events += 1
        return published

    def end(self, *, complete: bool = True) -> None:
        """Flush the run's events, then publish `rebuild.end`; `complete=False` abandons the run."""
        if complete:
            self.publisher.flush()
        self.publisher.publish_many([{"kind": "rebuild.end", "run": self.id, "events": self.events,
                                      "complete": complete, **self._target}])

    def __enter__(self) -> FullRun:
        return self.begin()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.end(complete=exc is None)
