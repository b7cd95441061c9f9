"""A reproducible stream of change events over many sources, and the index it must leave behind.

One item in five (the hot ones) changes several times, the others once; the changes are shuffled
so a hot item's versions are spread over the whole stream, newest published last. Every tenth
hot item ends deleted. Each event's item carries its version (`rev`) and the moment it was
handed to the publisher (`publishedAt`, epoch milliseconds) as metadata, so the index shows which
change it holds and how long that change took to get there.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from producers import Publisher

ITEM_TEXT = "lorem ipsum " * 40
"""About half a kilobyte of content per event, like a short CMS entry."""
HOT_SHARE = 0.2
"""Share of the items that are updated repeatedly."""
HOT_UPDATES = 5
"""Changes of each hot item."""
DELETED_HOT_EVERY = 10
"""Every this many hot items, one ends with a delete."""
URL_ROOT = "https://bench.example"
MS_PER_SECOND = 1000


@dataclass(frozen=True, slots=True)
class Change:
    """One change of one item: an upsert of `version`, or a delete when `deleted`."""

    source: str
    document_id: str
    version: int
    deleted: bool

    @property
    def text(self) -> str:
        """The item's content at this version: the index proves which change it holds."""
        return content(self.document_id, self.version)

    def event(self, published_ms: float) -> dict[str, Any]:
        """The change event as an upstream system publishes it."""
        event: dict[str, Any] = {"kind": "item.delete" if self.deleted else "item.upsert", "source": self.source,
                                 "version": self.version, "documentId": self.document_id}
        if not self.deleted:
            event["item"] = {"metadata": {"rev": self.version, "publishedAt": published_ms}, "data": self.text}
        return event

    def document(self, published_ms: float) -> dict[str, Any]:
        """The Push API document a hand-written change hook sends for an upsert (metadata as top-level keys)."""
        return {"documentId": self.document_id, "data": self.text, "rev": self.version, "publishedAt": published_ms}


def content(document_id: str, version: int) -> str:
    return f"{ITEM_TEXT}{document_id} v{version}"


@dataclass(frozen=True)
class Workload:
    """`events` changes over `sources` sources; `name` keeps its items apart from another workload's."""

    events: int
    sources: int
    name: str
    seed: int

    @property
    def source_ids(self) -> list[str]:
        return [f"bench-{n}" for n in range(self.sources)]

    def changes(self, limit: int | None = None) -> Iterator[Change]:
        """The first `limit` changes (default: all), in publishing order; the same on every call."""
        items, hot = self._items()
        slots = self._slots(items, hot)
        remaining = [0] * items
        for item in slots:
            remaining[item] += 1
        versions = [0] * len(remaining)
        sources = self.source_ids
        for item in slots[:limit]:
            versions[item] += 1
            remaining[item] -= 1
            deleted = item < hot and item % DELETED_HOT_EVERY == 0 and remaining[item] == 0
            yield Change(sources[item % self.sources], f"{URL_ROOT}/{self.name}/{item}", versions[item], deleted)

    def expected(self, limit: int | None = None) -> dict[str, dict[str, int]]:
        """Source -> documentId -> version the index must hold after the first `limit` changes (last write wins)."""
        state: dict[str, dict[str, int]] = {source: {} for source in self.source_ids}
        for change in self.changes(limit):
            if change.deleted:
                state[change.source].pop(change.document_id, None)
            else:
                state[change.source][change.document_id] = change.version
        return state

    def _items(self) -> tuple[int, int]:
        """(items, hot items) for the event count: hot items take HOT_UPDATES events each."""
        items = max(1, round(self.events / (1 - HOT_SHARE + HOT_SHARE * HOT_UPDATES)))
        return items, max(1, int(items * HOT_SHARE))

    def _slots(self, items: int, hot: int) -> list[int]:
        """Item numbers, one per event, shuffled: the hot items (the lowest numbers) come back again and again."""
        slots = list(range(items)) + [n % hot for n in range(max(0, self.events - items))]
        random.Random(self.seed).shuffle(slots)
        return slots[: self.events]


def publish(broker_url: str, workload: Workload, rate: float | None = None) -> tuple[float, float]:
    """Publish the workload with `Publisher` (batched messages), at `rate` events/s when given.

    Returns the epoch seconds of the first publish and of the broker's confirmation of the last event.
    """
    started = clock = 0.0
    with Publisher(broker_url) as publisher:
        for n, change in enumerate(workload.changes()):
            if n == 0:
                started, clock = time.time(), time.monotonic()
            elif rate is not None:
                ahead = clock + n / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            publisher.publish(change.event(time.time() * MS_PER_SECOND))
    return started, time.time()
