"""Event ids for events that come without one: unique across processes, and cheap.

A random prefix per process (drawn again in a forked child) and a counter: a uuid4 per event
cost a tenth of a batched publisher's time in the random-number system call.
"""

from __future__ import annotations

import itertools
import os
import uuid


class EventIds:
    """`<random hex>-<n>` ids, n counting up from 0 in this process."""

    def __init__(self) -> None:
        self._restart()

    def _restart(self) -> None:
        self._prefix = uuid.uuid4().hex
        self._counter = itertools.count()

    def next(self) -> str:
        """A new id, never given before by any process."""
        return f"{self._prefix}-{next(self._counter)}"


PROCESS_IDS = EventIds()
"""The ids this process fills in; a forked child draws its own prefix."""
os.register_at_fork(after_in_child=PROCESS_IDS._restart)
