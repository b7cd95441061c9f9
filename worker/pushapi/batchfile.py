"""Batch files written straight to disk, cut into files that each fit one file container.

A batch file is one JSON object whose values are arrays (`{"addOrUpdate": [...], "delete":
[...]}` for items, `{"members": [...], "mappings": [...], "deleted": [...]}` for identities).
Entries are appended one at a time: the first section goes straight into the output file, the
others into side files that are appended when the file is finished, so memory holds one entry
at a time whatever the size of the batch.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pydantic_core import to_json

from worker.pushapi.errors import ItemTooLargeError

ITEM_SECTIONS = ("addOrUpdate", "delete")
IDENTITY_SECTIONS = ("members", "mappings", "deleted")
DELETE_SECTIONS = frozenset({"delete", "deleted"})
"""Sections that remove (item deletes, identity disables); the others add or update."""
COPY_CHUNK_BYTES = 1024 * 1024


@dataclass
class BatchFile:
    """A finished batch file on disk, ready to upload to one container."""

    path: Path
    size: int
    counts: dict[str, int] = field(default_factory=dict)
    """Number of entries in each section."""


def encode(entry: Mapping[str, Any]) -> bytes:
    """The compact UTF-8 JSON of one batch entry (pydantic-core's encoder: a batch writes a million of them)."""
    return to_json(entry)


class BatchFileWriter:
    """Appends entries to batch files, starting a new file before one would pass `max_bytes`."""

    def __init__(
        self,
        sections: Sequence[str],
        *,
        max_bytes: int,
        on_file: Callable[[BatchFile], None],
        directory: str | os.PathLike[str] | None = None,
    ) -> None:
        """
        sections: the batch file's array names, in the order they are written.
        max_bytes: the largest file allowed (the container limit).
        on_file: called with each finished file; the file is deleted when it returns.
        directory: where temporary files go (default: the system's temp dir).
        """
        self.sections = tuple(sections)
        self.max_bytes = max_bytes
        self.on_file = on_file
        self.directory = directory
        self._skeleton = sum(len(part) for part in self._joints()) + len(b"]}")
        self._reset()

    def add(self, section: str, entry: Mapping[str, Any], *, name: str) -> None:
        """Append `entry` to `section`; `name` identifies it in an `ItemTooLargeError`."""
        data = encode(entry)
        if self._skeleton + len(data) > self.max_bytes:
            raise ItemTooLargeError(name, len(data), self.max_bytes - self._skeleton)
        index = self.sections.index(section)
        separator = 1 if self.counts[section] else 0
        if self.size + separator + len(data) > self.max_bytes:
            self.flush()
            separator = 0
        handle = self._handle(index)
        if separator:
            handle.write(b",")
        handle.write(data)
        self.counts[section] += 1
        self.size += separator + len(data)

    def flush(self) -> None:
        """Finish the current file, if it holds anything, and hand it to `on_file`."""
        if not any(self.counts.values()):
            return
        main = self._handle(0)
        for index, joint in enumerate(self._joints()[1:], start=1):
            main.write(joint)
            side = self._side.get(index)
            if side is not None:
                side.seek(0)
                shutil.copyfileobj(side, main, COPY_CHUNK_BYTES)
                side.close()
        main.write(b"]}")
        main.close()
        finished = BatchFile(path=Path(main.name), size=self.size, counts=dict(self.counts))
        self._reset()
        try:
            self.on_file(finished)
        finally:
            finished.path.unlink(missing_ok=True)

    def close(self) -> None:
        """Flush what is left and drop any temporary files."""
        try:
            self.flush()
        finally:
            self.discard()

    def discard(self) -> None:
        """Delete the unfinished file and side files without sending them."""
        for side in self._side.values():
            side.close()
        if self._main is not None:
            self._main.close()
            Path(self._main.name).unlink(missing_ok=True)
        self._reset()

    def _joints(self) -> list[bytes]:
        """The bytes that open each section: `{"a":[`, then `],"b":[` and so on."""
        return [(b"{" if i == 0 else b"],") + f'"{name}":['.encode() for i, name in enumerate(self.sections)]

    def _reset(self) -> None:
        self._main: IO[bytes] | None = None
        self._side: dict[int, IO[bytes]] = {}
        self.counts = {name: 0 for name in self.sections}
        self.size = self._skeleton

    def _handle(self, index: int) -> IO[bytes]:
        if self._main is None:
            self._main = tempfile.NamedTemporaryFile(
                prefix="pushsync-batch-", suffix=".json", dir=self.directory, delete=False
            )
            self._main.write(self._joints()[0])
        if index == 0:
            return self._main
        if index not in self._side:
            self._side[index] = tempfile.TemporaryFile(prefix="pushsync-section-", dir=self.directory)
        return self._side[index]
