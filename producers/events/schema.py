"""The event schema as JSON Schema, generated from the models; `event.schema.json` beside this
file is its committed copy (`python -m producers.schema` rewrites it; a test fails when it is stale)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from producers.events.limits import SCHEMA_VERSION
from producers.events.models import EVENT_ADAPTER

SCHEMA_FILE = Path(__file__).with_name("event.schema.json")
SCHEMA_ID = "https://pushsync.invalid/event.schema.json"


def json_schema() -> dict[str, Any]:
    """The event schema as JSON Schema (draft 2020-12), generated from the models."""
    schema = EVENT_ADAPTER.json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": f"pushsync change event, schemaVersion {SCHEMA_VERSION}",
        **schema,
    }
