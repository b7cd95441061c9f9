"""Shared output helpers of the operator commands."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import click


def when(epoch: float) -> str:
    """An epoch time as a short UTC timestamp."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def shorten(text: str, width: int = 80) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))
