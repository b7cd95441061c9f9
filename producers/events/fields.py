"""The field types of the event models: each a pydantic type with its rule and its JSON Schema."""

from __future__ import annotations

import binascii
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, StrictInt, StrictStr, WithJsonSchema

from producers.events.limits import (
    EXTENSION_REGEX,
    ID_REGEX,
    IDENTITY_TYPES,
    MAX_ID_LENGTH,
    MAX_RUN_ID_LENGTH,
    MAX_VERSION,
    NAME_REGEX,
    PERMISSION_IDENTITY_TYPES,
    RESERVED_METADATA_KEYS,
    RUN_ID_REGEX,
    URI_REGEX,
)
from producers.events.reasons import json_type

_RESERVED_LOWERED = frozenset(key.lower() for key in RESERVED_METADATA_KEYS)


def _case_insensitive(words: Iterable[str]) -> str:
    """A regex matching any of `words` in any case, underscores optional (JSON Schema has no flags)."""

    def letters(word: str) -> str:
        return "".join("_?" if c == "_" else f"[{c.lower()}{c.upper()}]" for c in word)

    return "^(" + "|".join(letters(word) for word in words) + ")$"


def _check_base64(value: str) -> str:
    try:
        binascii.a2b_base64(value, strict_mode=True)
    except binascii.Error as exc:
        raise ValueError(f"expected the content bytes in base64 ({exc})") from None
    return value


def _in_utc(value: datetime) -> datetime:
    # Stored and pushed in UTC, so the default serialization writes the `Z` form.
    try:
        return value if value.utcoffset() == timedelta(0) else value.astimezone(timezone.utc)
    except OverflowError:
        # 0001-01-01T00:00+23:59 is a valid ISO date-time with no UTC equivalent; pydantic turns only
        # ValueError into a refusal, and an OverflowError escaped validation (a 500, a wedged group).
        raise ValueError("date-time is outside the range a UTC time can hold (years 1 to 9999)") from None


def _timestamp_text(value: Any) -> Any:
    # pydantic would also take numbers as Unix times; the wire format says ISO 8601 text only.
    if isinstance(value, (int, float)):
        raise ValueError("expected an ISO 8601 date-time with a time zone, such as 2026-11-22T10:00:00Z")
    return value


def _normalizer(canonical: tuple[str, ...]) -> Callable[[Any], Any]:
    """Accept any of `canonical` in any case, with or without underscores; answer the canonical spelling."""
    by_key = {word.replace("_", "").lower(): word for word in canonical}

    def normalize(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        found = by_key.get(value.replace("_", "").lower())
        if found is None:
            raise ValueError(f"expected one of {', '.join(canonical)} (any case), got {value!r}")
        return found

    return normalize


def _check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    seen: dict[str, str] = {}
    for key, item in value.items():
        if not key:
            raise ValueError("metadata keys must not be empty")
        lowered = key.lower()
        if lowered in _RESERVED_LOWERED:
            raise ValueError(f"{key!r} is reserved and cannot be metadata; give it as an item field")
        if lowered in seen:
            raise ValueError(f"{seen[lowered]!r} and {key!r} are the same key (metadata keys ignore case)")
        seen[lowered] = key
        values = item if isinstance(item, list) else [item]
        for element in values:
            if not _is_primitive(element):
                found = "an array inside an array" if isinstance(element, list) else json_type(element)
                raise ValueError(
                    f"{key!r}: expected a string, number, boolean, null or an array of those, got {found}"
                )
    return value


def _is_primitive(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


_PRIMITIVE_SCHEMA = {"type": ["string", "number", "boolean", "null"]}
_METADATA_SCHEMA = {
    "type": "object",
    "propertyNames": {"minLength": 1, "not": {"pattern": _case_insensitive(RESERVED_METADATA_KEYS)}},
    "additionalProperties": {"anyOf": [_PRIMITIVE_SCHEMA, {"type": "array", "items": _PRIMITIVE_SCHEMA}]},
}

# Patterns are checked by pydantic-core (no Python call per event); reasons.describe words their errors.
DocumentUri = Annotated[StrictStr, Field(pattern=URI_REGEX)]
TargetId = Annotated[StrictStr, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_REGEX)]
EventId = Annotated[StrictStr, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=NAME_REGEX)]
Name = Annotated[StrictStr, Field(min_length=1, pattern=NAME_REGEX)]
RunId = Annotated[StrictStr, Field(min_length=1, max_length=MAX_RUN_ID_LENGTH, pattern=RUN_ID_REGEX)]
Version = Annotated[StrictInt, Field(ge=0, le=MAX_VERSION)]
OccurredAt = Annotated[AwareDatetime, BeforeValidator(_timestamp_text), AfterValidator(_in_utc)]
Metadata = Annotated[dict[str, Any], AfterValidator(_check_metadata), WithJsonSchema(_METADATA_SCHEMA)]
Base64 = Annotated[StrictStr, AfterValidator(_check_base64), Field(json_schema_extra={"contentEncoding": "base64"})]
FileExtension = Annotated[StrictStr, Field(pattern=EXTENSION_REGEX)]
IdentityType = Annotated[
    str, BeforeValidator(_normalizer(IDENTITY_TYPES)),
    WithJsonSchema({"type": "string", "pattern": _case_insensitive(IDENTITY_TYPES)}),
]
PermissionIdentityType = Annotated[
    str, BeforeValidator(_normalizer(PERMISSION_IDENTITY_TYPES)),
    WithJsonSchema({"type": "string", "pattern": _case_insensitive(IDENTITY_TYPES)}),
]
