"""Streaming reader for batch files: `{"<section>": [object, ...], ...}`, one entry at a time.

A batch file can be 256 MB, so it is never loaded whole: ijson's C tokenizer feeds a small
builder that yields each entry of each section as soon as it is complete. The file's shape is
checked as it goes: anything but an object of known sections, each an array of objects, is a
400 INVALID_JSON for the whole batch call, and so is an entry nested deeper than a single body
may be (MAX_NESTING_DEPTH: such a value could not even be shown back). What is inside an entry is
otherwise the caller's to judge, so an entry that gives a key twice is still yielded, marked, to
be rejected alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import ijson

from emulator.bodies import MAX_NESTING_DEPTH, nested_too_deep
from emulator.errors import invalid

BatchEntry = tuple[str, "JsonObject"]
"""One entry of a batch file and the section (array) it stands in."""


def read_batch_file(path: Path, sections: frozenset[str]) -> list[BatchEntry]:
    """Every entry of the batch file at `path`: a 400 INVALID_JSON when its JSON or shape is wrong."""
    with open(path, "rb") as stream:
        return list(read_sections(stream, sections))


class JsonObject(dict):
    """A batch entry that remembers the keys given twice anywhere inside it."""

    __slots__ = ("duplicate_keys",)

    def __init__(self) -> None:
        super().__init__()
        self.duplicate_keys: tuple[str, ...] = ()


def read_sections(stream: BinaryIO, sections: frozenset[str]) -> Iterator[tuple[str, JsonObject]]:
    """Yield `(section, entry)` for every entry of every section, in file order."""
    events = ijson.basic_parse(stream, use_float=True)
    try:
        yield from _sections(events, sections)
    except (ijson.JSONError, UnicodeDecodeError, ValueError) as exc:
        raise invalid(f"the batch file is not valid JSON: {exc}") from None


def _sections(events: Iterator[tuple[str, object]], sections: frozenset[str]) -> Iterator[tuple[str, JsonObject]]:
    expected = f"an object with the arrays {', '.join(sorted(sections))}"
    if next(events, (None, None))[0] != "start_map":
        raise invalid(f"the batch file must be {expected}")
    seen: set[str] = set()
    for event, value in events:
        if event == "end_map":
            return
        section = str(value)
        if section not in sections or section in seen:
            raise invalid(f"unexpected or repeated key {section!r} in the batch file; it must be {expected}")
        seen.add(section)
        if next(events, (None, None))[0] != "start_array":
            raise invalid(f"{section!r} in the batch file must be an array")
        for event, _ in events:
            if event == "end_array":
                break
            if event != "start_map":
                raise invalid(f"every entry of {section!r} in the batch file must be an object")
            yield section, _build_object(events)


def _build_object(events: Iterator[tuple[str, object]]) -> JsonObject:
    """Build the object whose `start_map` event was just read (hot loop: kept flat on purpose)."""
    root = top = JsonObject()
    parents: list[tuple[object, object]] = []
    duplicates: list[str] = []
    key: object = None
    for event, value in events:
        if event == "map_key":
            key = value
            continue
        if event == "end_map" or event == "end_array":
            if not parents:
                root.duplicate_keys = tuple(duplicates)
                return root
            top, key = parents.pop()
            continue
        if event == "start_map":
            new: object = {}
        elif event == "start_array":
            new = []
        else:
            new = value
        if top.__class__ is list:
            top.append(new)  # type: ignore[attr-defined]
        else:
            if key in top:  # type: ignore[operator]
                duplicates.append(str(key))
            top[key] = new  # type: ignore[index]
        if event == "start_map" or event == "start_array":
            if len(parents) + 2 > MAX_NESTING_DEPTH:  # `new` sits one level below `top`
                raise nested_too_deep("an entry of the batch file")
            parents.append((top, key))
            top = new
    raise ValueError("the file ends inside an object")
