"""Publish change events from NDJSON: one event per line, validated line by line.

`scan` does one pass over the lines: it validates each one and, given a publisher, publishes the
valid ones. The `pushsync publish` command runs a validating pass first when nothing may be
published unless every line is valid, and a single publishing pass with `--skip-invalid`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, BinaryIO

from producers.errors import InvalidEventError, PublishError
from producers.events import MAX_EVENT_BYTES, Event, complete_event, load_json, parse_event
from producers.progress import Progress
from producers.publisher import Publisher

COPY_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class InvalidLine:
    """A line that is not a valid event, with the reason."""

    line: int
    reason: str
    text: str

    def to_json(self) -> str:
        return json.dumps({"line": self.line, "reason": self.reason, "text": self.text}, ensure_ascii=False)


@dataclass
class Report:
    """What one pass over the lines found and did."""

    valid: int = 0
    published: int = 0
    messages: int = 0
    invalid: list[InvalidLine] = field(default_factory=list)
    failure: PublishError | None = None
    """Set when the broker stopped taking events; the pass ended there."""
    resume_line: int | None = None
    """With `failure`: the first line whose event the broker did not confirm."""


def numbered_lines(stream: BinaryIO) -> Iterator[tuple[int, bytes, int]]:
    """Each line as (line number from 1, content without its line end, bytes it took in the input)."""
    for number, raw in enumerate(stream, start=1):
        yield number, raw.rstrip(b"\r\n"), len(raw)


def check_line(content: bytes, *, max_event_bytes: int = MAX_EVENT_BYTES) -> Event:
    """Validate one line as an event (filling ids and time, never the version); raise InvalidEventError."""
    return parse_event(complete_event(load_json(content)), max_bytes=max_event_bytes)


def scan(
    stream: BinaryIO,
    *,
    publisher: Publisher | None = None,
    progress: Progress | None = None,
    max_event_bytes: int = MAX_EVENT_BYTES,
) -> Report:
    """One pass: validate every line and, with `publisher`, publish the valid ones and flush.

    `stream`: the NDJSON input, binary. `progress`: counts lines and bytes as they are read.
    `max_event_bytes`: the largest encoded event accepted.
    """
    report = Report()
    published_lines = array("Q")  # line of each event handed to the publisher, in order
    start_events = publisher.published_events if publisher else 0
    start_messages = publisher.published_messages if publisher else 0
    try:
        for number, content, consumed in numbered_lines(stream):
            if progress:
                progress.update(bytes_done=consumed)
            if not content.strip():
                continue
            try:
                event = check_line(content, max_event_bytes=max_event_bytes)
            except InvalidEventError as exc:
                report.invalid.append(InvalidLine(number, exc.reason, content.decode("utf-8", "replace")))
                continue
            report.valid += 1
            if publisher:
                published_lines.append(number)
                publisher.publish(event)
            if progress:
                progress.update(events=1)
        if publisher:
            publisher.flush()
    except PublishError as exc:
        report.failure = exc
        confirmed = publisher.published_events - start_events if publisher else 0
        report.resume_line = published_lines[confirmed] if confirmed < len(published_lines) else None
    finally:
        if progress:
            progress.close()
    if publisher:
        report.published = publisher.published_events - start_events
        report.messages = publisher.published_messages - start_messages
    return report


def rewindable(stream: BinaryIO) -> IO[bytes]:
    """`stream` itself when it can be read twice, else a temporary copy of it (stdin, pipes)."""
    if stream.seekable():
        return stream
    copy = tempfile.TemporaryFile()
    shutil.copyfileobj(stream, copy, COPY_CHUNK_BYTES)
    copy.seek(0)
    return copy
