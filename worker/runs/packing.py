"""How many events of a full run fill one file container, estimated from a sample of them.

A run's window closes when its batch would fill a container (see `worker/runs/rebuild.py`). What a
batch takes in a container is not what its events take in Redis: the Push API entry drops the
event's envelope, and its `data` may travel compressed. So the run measures both sizes on a
sample of its own events, entry built exactly as the push task builds it, and sizes its window
in event bytes from their ratio.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from worker.push.operations import to_operation
from worker.pushapi.batches import Entries
from worker.pushapi.batchfile import encode
from worker.pushapi.errors import InvalidInputError
from worker.settings import Settings
from worker.store import keys

SAMPLE_EVERY = 100
"""One event in this many is measured."""
CONTAINER_FILL = 0.9
"""Share of a container a window aims at: the sample's ratio is an estimate, and a batch that
overflows its container by a little costs a whole second one."""


@dataclass
class PackingSample:
    """Sizes of the sampled events: as stored in a window, and as entries of a batch file."""

    event_bytes: int = 0
    entry_bytes: int = 0

    def measure(self, target: keys.Target, encoded: bytes, *, compress_data: bool) -> None:
        """Add one event (its JSON as stored) of `target` to the sample."""
        entries = Entries(compress_data=compress_data)
        operation = to_operation(json.loads(encoded))
        try:
            entry = entries.item(operation) if target.kind == keys.SOURCE else entries.identity(operation)
        except InvalidInputError:
            return
        if entry.content_apart is not None:
            return  # its content travels in a container of its own, not in the batch file
        self.event_bytes += len(encoded)
        self.entry_bytes += len(encode(entry.body)) + 1  # and its comma

    def merge(self, other: PackingSample) -> None:
        self.event_bytes += other.event_bytes
        self.entry_bytes += other.entry_bytes

    def window_bytes(self, settings: Settings) -> int:
        """The event bytes whose batch fills about one container, within the run window's limit."""
        ratio = self.entry_bytes / self.event_bytes if self.event_bytes else 1.0
        return min(settings.rebuild_window_max_bytes, int(settings.container_max_bytes * CONTAINER_FILL / ratio))
