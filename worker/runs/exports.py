"""Checking a full run's export once, over several processes, into entries ready to feed.

The export is cut into parts at line starts; each process validates the lines of its parts and
writes every valid event, as coalesce.lua takes it (coalescing key, rank, JSON), to a scratch
file of the part's own, measuring a sample of them for the run's window (`worker/runs/packing.py`).
Feeding then reads the scratch files in export order: no line is validated or encoded twice,
and the export is read once whatever its size.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from producers.errors import InvalidEventError
from producers.events import Event
from producers.ndjson import check_line, numbered_lines
from producers.runs import CARRIED_KINDS
from worker.runs.packing import SAMPLE_EVERY, PackingSample
from worker.store import keys
from worker.store.ranks import rank
from worker.windows.coalesce import KeyedEvent

SHOWN_INVALID_LINES = 20
"""Invalid lines reported one by one; the rest are counted."""
PARTS_PER_PROCESS = 4
"""Parts per checking process, so that a slow part does not leave the others idle at the end."""
SPLIT_MIN_BYTES = 16 * 1024 * 1024
"""An export smaller than this is checked in this process: starting others would cost more."""
RECORD = struct.Struct("<QIII")
"""A scratch record's head: line number within the part, then the lengths of key, rank and event."""
READ_BUFFER_BYTES = 1024 * 1024


def wanted(target: keys.Target) -> str:
    """What an export for `target` may hold, as a refusal says it."""
    return f"{' and '.join(CARRIED_KINDS[target.kind])} events of {target.kind} {target.id!r}"


def accepts(target: keys.Target, event: Event) -> bool:
    """Whether `event` belongs in an export for `target`."""
    return event.kind in CARRIED_KINDS[target.kind] and event.target == target.id


@dataclass
class PartReport:
    """What checking one part (or, merged, the whole export) found."""

    lines: int = 0
    valid: int = 0
    invalid: list[tuple[int, str]] = field(default_factory=list)
    """(line number, reason) of the first invalid lines; within the part for a part's report."""
    invalid_count: int = 0
    sample: PackingSample = field(default_factory=PackingSample)


@dataclass
class CheckedExport(PartReport):
    """A whole export, checked: its parts' reports merged, and the scratch files of its valid events."""

    parts: list[tuple[Path, int]] = field(default_factory=list)
    """Each part's scratch file, in export order, with the number of lines before the part."""

    def entries(self) -> Iterator[tuple[int, KeyedEvent]]:
        """(line number, entry) of every valid event, in export order."""
        for path, first_line in self.parts:
            with open(path, "rb", buffering=READ_BUFFER_BYTES) as records:
                while head := records.read(RECORD.size):
                    line, key_size, rank_size, event_size = RECORD.unpack(head)
                    key = records.read(key_size).decode()
                    event_rank = records.read(rank_size).decode()
                    yield first_line + line, (key, event_rank, records.read(event_size))


def check_export(path: Path, target: keys.Target, scratch: Path, *, processes: int, compress_data: bool,
                 progress: Callable[[int], None] = lambda done: None) -> CheckedExport:
    """Validate every line of the export at `path` for `target`, keeping the valid events in `scratch`.

    processes: how many processes check parts at once (1: this one only).
    compress_data: whether pushes compress item data, for the packing sample.
    progress: called with the bytes of each part checked.
    """
    size = path.stat().st_size
    if processes <= 1 or size < SPLIT_MIN_BYTES:
        bounds = [(0, size)]
    else:
        bounds = _split(path, size, processes * PARTS_PER_PROCESS)
    jobs = [(path, start, end, target, scratch / f"part-{n:04d}", compress_data) for n, (start, end) in enumerate(bounds)]
    reports: dict[int, PartReport] = {}
    if len(jobs) == 1:
        reports[0] = _check_part(*jobs[0])
        progress(size)
    else:
        with ProcessPoolExecutor(max_workers=processes) as pool:
            futures = {pool.submit(_check_part, *job): n for n, job in enumerate(jobs)}
            for future in as_completed(futures):
                n = futures[future]
                reports[n] = future.result()
                progress(bounds[n][1] - bounds[n][0])
    checked = CheckedExport()
    for n, job in enumerate(jobs):
        report = reports[n]
        checked.parts.append((job[4], checked.lines))
        room = SHOWN_INVALID_LINES - len(checked.invalid)
        checked.invalid += [(checked.lines + line, reason) for line, reason in report.invalid[:room]]
        checked.invalid_count += report.invalid_count
        checked.valid += report.valid
        checked.sample.merge(report.sample)
        checked.lines += report.lines
    return checked


def _split(path: Path, size: int, parts: int) -> list[tuple[int, int]]:
    """About `parts` byte ranges of the file, each starting at the start of a line."""
    starts = [0]
    with open(path, "rb") as stream:
        for n in range(1, parts):
            stream.seek(max(size * n // parts, starts[-1]))
            stream.readline()
            if stream.tell() >= size:
                break
            if stream.tell() > starts[-1]:
                starts.append(stream.tell())
    return list(zip(starts, starts[1:] + [size]))


def _check_part(path: Path, start: int, end: int, target: keys.Target, scratch: Path,
                compress_data: bool) -> PartReport:
    """Check the lines in bytes [start, end) of the export; runs in a checking process."""
    report = PartReport()
    refusal = f"this export holds {wanted(target)} only"
    with open(path, "rb", buffering=READ_BUFFER_BYTES) as stream, \
            open(scratch, "wb", buffering=READ_BUFFER_BYTES) as records:
        stream.seek(start)
        remaining = end - start
        for line, content, consumed in numbered_lines(stream):
            report.lines = line
            remaining -= consumed
            if content.strip():
                reason = None
                try:
                    event = check_line(content)
                    if not accepts(target, event):
                        reason = refusal
                except InvalidEventError as exc:
                    reason = exc.reason
                if reason is None:
                    _write(records, line, event, report, target, compress_data)
                else:
                    report.invalid_count += 1
                    if len(report.invalid) < SHOWN_INVALID_LINES:
                        report.invalid.append((line, reason))
            if remaining <= 0:
                break
    return report


def _write(records, line: int, event: Event, report: PartReport, target: keys.Target, compress_data: bool) -> None:
    key, event_rank, encoded = event.coalescing_key.encode(), rank(event.kind, event.version).encode(), event.encoded
    records.write(RECORD.pack(line, len(key), len(event_rank), len(encoded)))
    records.write(key)
    records.write(event_rank)
    records.write(encoded)
    if report.valid % SAMPLE_EVERY == 0:
        report.sample.measure(target, encoded, compress_data=compress_data)
    report.valid += 1


def default_processes() -> int:
    """One checking process per core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
