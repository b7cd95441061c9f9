"""What one emulator process starts with, and the limits that tests may change while it runs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from emulator.defaults import DEFAULT_API_KEY, DEFAULT_ORGANIZATION
from emulator.errors import EmulatorError
from emulator.limits import CONTAINER_LIMIT_BYTES

DEFAULT_APPLY_DELAY_SECONDS = 0.05
"""Short enough for tests, long enough that a 202 is visibly not "indexed"."""


@dataclass(frozen=True)
class Limits:
    """The settings an admin call may change at run time (`PUT /_emulator/config`)."""

    apply_delay: float = DEFAULT_APPLY_DELAY_SECONDS
    """Seconds between accepting an operation and applying it to the index."""
    container_limit_bytes: int = CONTAINER_LIMIT_BYTES
    """Largest upload a file container accepts (413 past it)."""
    item_allowance: int | None = None
    """Items the organization may hold (412 DOCUMENT_LIMIT_EXCEEDED at it); None: unlimited."""
    daily_request_limit: int | None = None
    """Push API calls per day on the emulator's clock (429 TOO_MANY_REQUESTS past it)."""
    daily_document_limit: int | None = None
    """Items pushed per day (429 TOO_MANY_DOCUMENTS_DAILY past it)."""

    def to_json(self) -> dict[str, object]:
        """The limits under their JSON (camelCase) names."""
        return {json_name: getattr(self, name) for json_name, name in _JSON_NAMES.items()}

    def updated(self, changes: object) -> Limits:
        """A copy with the JSON `changes` applied; a 400 names the first bad one."""
        if not isinstance(changes, dict):
            raise _bad("the body must be a JSON object of limits")
        values = {}
        for json_name, value in changes.items():
            name = _JSON_NAMES.get(json_name)
            if name is None:
                raise _bad(f"unknown limit {json_name!r}; known: {', '.join(_JSON_NAMES)}")
            values[name] = _checked(json_name, value, optional=name not in _REQUIRED)
        return dataclasses.replace(self, **values)


_JSON_NAMES = {
    "applyDelay": "apply_delay",
    "containerLimitBytes": "container_limit_bytes",
    "itemAllowance": "item_allowance",
    "dailyRequestLimit": "daily_request_limit",
    "dailyDocumentLimit": "daily_document_limit",
}
_REQUIRED = {"apply_delay", "container_limit_bytes"}
_FLOATS = {"applyDelay"}


def _checked(json_name: str, value: object, *, optional: bool) -> object:
    if value is None and optional:
        return None
    number_types = (int, float) if json_name in _FLOATS else (int,)
    if isinstance(value, bool) or not isinstance(value, number_types) or value < 0:
        kind = "number" if json_name in _FLOATS else "integer"
        raise _bad(f"{json_name} must be a non-negative {kind}" + (" or null" if optional else ""))
    return value


def _bad(message: str) -> EmulatorError:
    return EmulatorError(400, "INVALID_CONFIG", message)


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulator was started; `POST /_emulator/reset` returns to exactly this."""

    data_dir: Path
    """Directory for blobs and large item content."""
    organization: str = DEFAULT_ORGANIZATION
    """The organization that exists from the start."""
    api_key: str = field(default=DEFAULT_API_KEY, repr=False)
    """The only Bearer key the Push API routes accept; never logged or answered."""
    limits: Limits = Limits()
    """Limits at start-up."""
    sources: tuple[str, ...] = ()
    """Push sources created in `organization` at start-up."""
    providers: tuple[str, ...] = ()
    """Security identity providers created at start-up, not strict."""
    strict_providers: tuple[str, ...] = ()
    """Providers created at start-up that reject items naming unknown identities."""
