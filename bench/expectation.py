"""Whether the emulator's index holds a workload's last-write-wins state, and how long its changes took.

Expectations are source -> documentId -> version (see `Workload.expected`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stack import Emulator
from workload import Change, Workload, content

MS_PER_SECOND = 1000
IDLE = "IDLE"


@dataclass
class Check:
    """The index against its expectation: items that differ, and the latency of the timed items."""

    wrong: int = 0
    """Items with the wrong version or content, missing, or present though not expected."""
    latencies: list[float] = field(default_factory=list)
    """Seconds from each timed item's publishing to the acceptance of the batch that carried it."""
    published_at: list[float] = field(default_factory=list)
    """When each of those items was published (epoch seconds), in the same order."""


def check(emulator: Emulator, expected: dict[str, dict[str, int]], timed_prefix: str) -> Check:
    """Compare the index with `expected`, item by item, one source at a time.

    timed_prefix: the documentId prefix of the items whose latency to take. An item's orderingId is
    the emulator's clock when it accepted the batch (pushsync sends none), and its `publishedAt`
    metadata is when its change was handed to the publisher: both epoch times of this machine.
    """
    result = Check()
    for source, versions in expected.items():
        held = emulator.items(source)
        result.wrong += len(held.keys() - versions.keys())
        for document_id, version in versions.items():
            item = held.get(document_id)
            if item is None or item["metadata"].get("rev") != version or item["content"] != content(document_id, version):
                result.wrong += 1
            elif document_id.startswith(timed_prefix):
                result.latencies.append((item["orderingId"] - item["metadata"]["publishedAt"]) / MS_PER_SECOND)
                result.published_at.append(item["metadata"]["publishedAt"] / MS_PER_SECOND)
    return result


def last_changes(workload: Workload) -> dict[str, Change]:
    """Each source's last change."""
    last: dict[str, Change] = {}
    for change in workload.changes():
        last[change.source] = change
    return last


def settled(emulator: Emulator, expected: dict[str, dict[str, int]], last: dict[str, Change]) -> bool:
    """A cheap sign that the index may hold `expected`: every source has the expected item count and
    its last change. Only `check` proves it."""
    return (all(emulator.count(source) == len(items) for source, items in expected.items())
            and all(_landed(emulator, change) for change in last.values()))


def idle(emulator: Emulator, sources: list[str]) -> bool:
    """Every source's burst is closed (its IDLE call made)."""
    return all(emulator.status(source) == IDLE for source in sources)


def _landed(emulator: Emulator, change: Change) -> bool:
    item = emulator.item(change.source, change.document_id)
    return item is None if change.deleted else item is not None and item["metadata"].get("rev") == change.version
