"""Rewrite producers/events/event.schema.json from the event models: `python -m producers.schema`."""

from __future__ import annotations

import json

from producers.events.schema import SCHEMA_FILE, json_schema


def main() -> None:
    """Write the generated JSON Schema beside the models."""
    SCHEMA_FILE.write_text(json.dumps(json_schema(), indent=2) + "\n")
    print(f"wrote {SCHEMA_FILE}")


if __name__ == "__main__":
    main()
