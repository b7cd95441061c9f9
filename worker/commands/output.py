"""Shared output helpers of the operator commands."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import click

from producers.events.limits import MIB


def when(epoch: float) -> str:
    """An epoch time as a short UTC timestamp."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def iso(epoch: float) -> str:
    """An epoch time as ISO 8601 in UTC, to the millisecond (what `show` prints for a time)."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def shorten(text: str, width: int = 80) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


AGE_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def age(seconds: float) -> str:
    """A duration in its two largest units: `45s`, `3m5s`, `2h10m`, `3d4h`."""
    total = max(0, int(seconds))
    for (unit, size), (smaller, smaller_size) in zip(AGE_UNITS, AGE_UNITS[1:]):
        if total >= size:
            return f"{total // size}{unit}{(total % size) // smaller_size}{smaller}"
    return f"{total}s"


def mib(size: int) -> str:
    """A size in bytes as MiB: `231.0 MiB`."""
    return f"{size / MIB:,.1f} MiB"


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """`1 entry`, `2 entries`: `number` with `noun` in the right form (`plural` when not noun + s)."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Rows under their headers in left-aligned columns, two spaces apart."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
                     for line in [headers, *rows])
