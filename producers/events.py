"""The change-event schema (schemaVersion 1): what producers publish and the worker consumes.

Both sides import this one module, so a producer refuses exactly what the worker would
quarantine, with the same person-readable reason. docs/events.md describes the wire format;
`event.schema.json` beside this file is the same schema as JSON Schema, generated from these
models by `json_schema()` (`python -m producers.schema` rewrites it).

Entry points:
    parse_event(obj)          a decoded JSON value -> Event, or InvalidEventError
    decode_event(data)        one JSON document (bytes or str) -> Event, or InvalidEventError
    decode_message(body)      a broker message -> [Event | InvalidEvent, ...], never raises
    encode_message(events)    events -> the broker message body
    complete_event(obj, ...)  fill the fields a producer may leave out (ids, times, version)
"""

from __future__ import annotations

import binascii
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel

from producers.errors import InvalidEventError
from producers.ids import PROCESS_IDS

SCHEMA_VERSION = 1
MIB = 1024 * 1024
MAX_EVENT_BYTES = 6 * MIB
"""Largest encoded event accepted by default: the service's limit for one item request."""
MAX_MESSAGE_BYTES = 16 * MIB
"""Largest broker message body the worker reads (after decompression); publishers stay well under it."""
MAX_PERMISSIONS = 5_000
"""The service ignores an item naming more identities than this in its permissions."""
MAX_VERSION = 2**63 - 1
"""Versions fit a signed 64-bit integer, like the service's orderingId."""
MAX_ID_LENGTH = 255
COMPRESSION_TYPES = ("UNCOMPRESSED", "DEFLATE", "GZIP", "LZMA", "ZLIB")
RESERVED_METADATA_KEYS = (
    "compressedBinaryData", "compressedBinaryDataFileId", "parentId", "fileExtension", "data",
    "permissions", "documentId", "orderingId",
    # Not reserved by the service, but the worker flattens metadata beside this item field.
    "compressionType",
)
_RESERVED_LOWERED = frozenset(key.lower() for key in RESERVED_METADATA_KEYS)
KINDS = ("item.upsert", "item.delete", "identity.upsert", "identity.alias", "identity.disable",
         "rebuild.begin", "rebuild.end")
RUN_KINDS = frozenset({"rebuild.begin", "rebuild.end"})
"""Kinds that mark a full run rather than change one item or identity: they carry no version."""
MAX_RUN_EVENTS = 100_000_000
"""Most events one full run may carry (the worker keeps one bit per event while the run lasts)."""
IDENTITY_TYPES = ("USER", "GROUP", "VIRTUAL_GROUP", "UNKNOWN")
PERMISSION_IDENTITY_TYPES = ("User", "Group", "VirtualGroup", "Unknown")
PERMISSION_MODELS = ("simple", "complete")

_CONTROL = r"\x00-\x1f\x7f-\x9f"
"""Control characters (C0, DEL, C1), as a regex class body: no id, name or URI may hold one."""
URI_REGEX = rf"^[A-Za-z][A-Za-z0-9+.-]*://[^\s{_CONTROL}]+$"
ID_REGEX = rf"^[^\s{{}}/?#{_CONTROL}][^{{}}/?#{_CONTROL}]*$"
"""Source and provider ids: no braces (Redis hash tags), no URL delimiters, no control characters."""
NAME_REGEX = rf"^[^{_CONTROL}]+$"
"""Event ids, identity names and the providers they name: anything but control characters, which
would forge lines in logs and are no part of a name."""
EXTENSION_REGEX = r"^\.[^\s./\\]+$"
RUN_ID_REGEX = r"^[A-Za-z0-9._-]+$"
MAX_RUN_ID_LENGTH = 64
_PREVIEW_CHARS = 60
SCHEMA_FILE = Path(__file__).with_name("event.schema.json")
SCHEMA_ID = "https://pushsync.invalid/event.schema.json"


def _case_insensitive(words: Iterable[str]) -> str:
    """A regex matching any of `words` in any case, underscores optional (JSON Schema has no flags)."""

    def letters(word: str) -> str:
        return "".join("_?" if c == "_" else f"[{c.lower()}{c.upper()}]" for c in word)

    return "^(" + "|".join(letters(word) for word in words) + ")$"


# ---------------------------------------------------------------- field types


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
                found = "an array inside an array" if isinstance(element, list) else _json_type(element)
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

# Patterns are checked by pydantic-core (no Python call per event); _describe words their errors.
DocumentUri = Annotated[StrictStr, Field(pattern=URI_REGEX)]
TargetId = Annotated[StrictStr, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_REGEX)]
EventId = Annotated[StrictStr, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=NAME_REGEX)]
Name = Annotated[StrictStr, Field(min_length=1, pattern=NAME_REGEX)]
RunId = Annotated[StrictStr, Field(min_length=1, max_length=MAX_RUN_ID_LENGTH, pattern=RUN_ID_REGEX)]
Version = Annotated[StrictInt, Field(ge=0, le=MAX_VERSION)]
OccurredAt = Annotated[AwareDatetime, BeforeValidator(_timestamp_text), AfterValidator(_in_utc)]
Metadata = Annotated[dict[str, Any], AfterValidator(_check_metadata), WithJsonSchema(_METADATA_SCHEMA)]
IdentityType = Annotated[
    str, BeforeValidator(_normalizer(IDENTITY_TYPES)),
    WithJsonSchema({"type": "string", "pattern": _case_insensitive(IDENTITY_TYPES)}),
]
PermissionIdentityType = Annotated[
    str, BeforeValidator(_normalizer(PERMISSION_IDENTITY_TYPES)),
    WithJsonSchema({"type": "string", "pattern": _case_insensitive(IDENTITY_TYPES)}),
]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, allow_inf_nan=False,
    )


# ---------------------------------------------------------------- items


class PermissionIdentity(_Model):
    """One identity named in a permission set."""

    identity: Name
    identity_type: PermissionIdentityType
    security_provider: Name | None = None


class PermissionSet(_Model):
    """The simple permission model: who may and may not see the item."""

    allow_anonymous: StrictBool = False
    allowed_permissions: list[PermissionIdentity] = []
    denied_permissions: list[PermissionIdentity] = []


class PermissionLevel(_Model):
    """One level of the complete permission model; a user must pass every set of every level."""

    name: StrictStr | None = None
    permission_sets: Annotated[list[PermissionSet], Field(min_length=1)]


def _permission_model(value: Any) -> str:
    first = value[0] if isinstance(value, list) and value else None
    if isinstance(first, PermissionLevel) or (isinstance(first, dict) and "permissionSets" in first):
        return "complete"
    return "simple"


Permissions = Annotated[
    Union[
        Annotated[Annotated[list[PermissionSet], Field(min_length=1)], Tag("simple")],
        Annotated[Annotated[list[PermissionLevel], Field(min_length=1)], Tag("complete")],
    ],
    Discriminator(_permission_model),
]


class Item(_Model):
    """An item as the Push API takes it, with metadata kept apart from the item's own fields."""

    model_config = ConfigDict(
        json_schema_extra={
            "not": {"required": ["data", "binaryData"]},
            "anyOf": [{"required": ["data"]}, {"required": ["binaryData"]}],
            "dependentRequired": {"binaryData": ["compressionType"], "compressionType": ["binaryData"]},
        }
    )

    metadata: Metadata = {}
    data: StrictStr | None = None
    binary_data: Annotated[
        StrictStr, AfterValidator(_check_base64), Field(json_schema_extra={"contentEncoding": "base64"})
    ] | None = None
    compression_type: Literal[COMPRESSION_TYPES] | None = None  # type: ignore[valid-type]
    file_extension: Annotated[StrictStr, Field(pattern=EXTENSION_REGEX)] | None = None
    parent_id: DocumentUri | None = None
    permissions: Permissions | None = None

    @model_validator(mode="after")
    def _content(self) -> Item:
        if self.data is not None and self.binary_data is not None:
            raise ValueError("give at most one content field: data or binaryData")
        if self.data is None and self.binary_data is None:
            raise ValueError("give the item's content as data or binaryData: the service refuses an item without content")
        if (self.binary_data is None) != (self.compression_type is None):
            raise ValueError(
                "binaryData and compressionType go together: compressionType says how the bytes are compressed "
                f"({', '.join(COMPRESSION_TYPES)})"
            )
        if self.permissions and self.permission_count > MAX_PERMISSIONS:
            raise ValueError(f"permissions name {self.permission_count} identities; the service takes at most {MAX_PERMISSIONS}")
        return self

    @property
    def permission_count(self) -> int:
        """How many identities the permissions name, allowed and denied."""
        sets: list[PermissionSet] = []
        for entry in self.permissions or []:
            sets.extend(entry.permission_sets if isinstance(entry, PermissionLevel) else [entry])
        return sum(len(s.allowed_permissions) + len(s.denied_permissions) for s in sets)


# ---------------------------------------------------------------- identities


class Identity(_Model):
    """A security identity of a provider."""

    name: Name
    type: IdentityType
    additional_info: dict[str, StrictStr] = {}


class MappedIdentity(Identity):
    """An identity of another provider that an alias points to."""

    provider: Name | None = None


# ---------------------------------------------------------------- full runs


class RunTag(_Model):
    """Marks an event as part of a full run started through the broker (see `rebuild.begin`)."""

    run: RunId
    seq: Annotated[StrictInt, Field(ge=0, lt=MAX_RUN_EVENTS)]
    """The event's number in its run, from 0: the worker counts each number once, however often it arrives."""


# ---------------------------------------------------------------- events


class _Message(_Model):
    """What every event has, whatever its kind."""

    schema_version: Literal[1]
    event_id: EventId
    kind: str
    occurred_at: OccurredAt

    @cached_property
    def encoded(self) -> bytes:
        """The event as compact UTF-8 JSON, as it travels on the broker."""
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()

    @property
    def encoded_size(self) -> int:
        """Bytes of `encoded`; the limit on events applies to this."""
        return len(self.encoded)


class _Event(_Message):
    version: Version
    """The item's or identity's version in the source system: higher is newer."""

    @property
    def target(self) -> str:
        """The Push source id (item events) or security provider id (identity events)."""
        raise NotImplementedError

    @property
    def coalescing_key(self) -> str:
        """Events of one target with the same key replace each other: the newest version wins."""
        raise NotImplementedError


class _ItemEvent(_Event):
    source: TargetId
    document_id: DocumentUri

    @property
    def target(self) -> str:
        return self.source

    @property
    def coalescing_key(self) -> str:
        return self.document_id


class ItemUpsert(_ItemEvent):
    """Add or replace one item."""

    kind: Literal["item.upsert"]
    item: Item
    rebuild: RunTag | None = None


class ItemDelete(_ItemEvent):
    """Delete one item, and its children when `delete_children` is set."""

    kind: Literal["item.delete"]
    delete_children: StrictBool = False


class _IdentityEvent(_Event):
    provider: TargetId
    identity: Identity

    @property
    def target(self) -> str:
        return self.provider

    @property
    def coalescing_key(self) -> str:
        # Upsert and disable of one identity replace each other; an alias is a separate resource.
        return f"identity:{self.identity.type}:{self.identity.name}"


class IdentityUpsert(_IdentityEvent):
    """Add or replace one identity with its members and granted identities."""

    kind: Literal["identity.upsert"]
    members: list[Identity] = []
    well_knowns: list[Identity] = []
    rebuild: RunTag | None = None


class IdentityAlias(_IdentityEvent):
    """Map one identity to identities of other providers."""

    kind: Literal["identity.alias"]
    mappings: Annotated[list[MappedIdentity], Field(min_length=1)]
    well_knowns: list[Identity] = []
    rebuild: RunTag | None = None

    @property
    def coalescing_key(self) -> str:
        return f"alias:{self.identity.type}:{self.identity.name}"


class IdentityDisable(_IdentityEvent):
    """Disable one identity."""

    kind: Literal["identity.disable"]


class _RunEvent(_Message):
    """Begins or ends a full run of one Push source (items) or security provider (identities)."""

    run: RunId
    source: TargetId | None = None
    provider: TargetId | None = None

    @model_validator(mode="after")
    def _one_target(self) -> _RunEvent:
        if (self.source is None) == (self.provider is None):
            raise ValueError("give exactly one of source (a rebuild of items) or provider (a sync of identities)")
        return self

    @property
    def target(self) -> str:
        return self.source or self.provider or ""


class RebuildBegin(_RunEvent):
    """Start a full run: its `occurredAt` (never later than the worker's clock) is the delete's cut-off."""

    kind: Literal["rebuild.begin"]
    queue_delay: Annotated[StrictInt, Field(ge=0)] = 15
    """Minutes the service waits before removing what the run did not push."""
    max_delete_share: Annotated[float, Field(ge=0, le=1)] = 0.5
    """Nothing is removed if the run would remove more than this share of what the last run pushed."""
    allow_empty: StrictBool = False
    """A run of no events removes everything; refused unless this is set."""


class RebuildEnd(_RunEvent):
    """End a full run once its `events` tagged events (numbered 0 … events-1) have all arrived."""

    kind: Literal["rebuild.end"]
    events: Annotated[StrictInt, Field(ge=0, le=MAX_RUN_EVENTS)]
    """How many events the run tagged."""
    complete: StrictBool = True
    """False abandons the run: nothing is removed."""


Event = Annotated[
    Union[
        Annotated[ItemUpsert, Tag("item.upsert")],
        Annotated[ItemDelete, Tag("item.delete")],
        Annotated[IdentityUpsert, Tag("identity.upsert")],
        Annotated[IdentityAlias, Tag("identity.alias")],
        Annotated[IdentityDisable, Tag("identity.disable")],
        Annotated[RebuildBegin, Tag("rebuild.begin")],
        Annotated[RebuildEnd, Tag("rebuild.end")],
    ],
    Discriminator("kind"),
]
EVENT_TYPES = (ItemUpsert, ItemDelete, IdentityUpsert, IdentityAlias, IdentityDisable, RebuildBegin, RebuildEnd)
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


@dataclass(frozen=True)
class InvalidEvent:
    """An event, or a whole message, that cannot be used, with the reason a person can act on."""

    reason: str
    raw: Any
    """The JSON value as received, or the message bytes when the message itself is unusable."""
    index: int | None = None
    """Position of the event in its message; None when the whole message is unusable."""

    @property
    def target(self) -> str | None:
        """The source or provider the event named, when it named one (for quarantine listings)."""
        if isinstance(self.raw, dict):
            value = self.raw.get("source", self.raw.get("provider"))
            return value if isinstance(value, str) else None
        return None


# ---------------------------------------------------------------- validation


def parse_event(obj: Any, *, max_bytes: int | None = MAX_EVENT_BYTES) -> Event:
    """Validate one decoded JSON value as an event; raise InvalidEventError naming each problem.

    `max_bytes` is the largest encoded event accepted; None leaves that check to the caller
    (`check_size`), which may then encode the event elsewhere.
    """
    if not isinstance(obj, dict):
        raise InvalidEventError([f"expected a JSON object (one event), got {_json_type(obj)}"])
    try:
        event = EVENT_ADAPTER.validate_python(obj)
    except ValidationError as exc:
        raise InvalidEventError([_describe(error) for error in exc.errors(include_url=False)]) from None
    if max_bytes is not None:
        check_size(event, max_bytes)
    return event


def check_size(event: Event, max_bytes: int = MAX_EVENT_BYTES) -> None:
    """Raise InvalidEventError if `event` cannot be encoded, or is over `max_bytes` encoded."""
    try:
        size = event.encoded_size
    except (ValueError, UnicodeError) as exc:  # a lone surrogate (\ud800) has no UTF-8 form
        raise InvalidEventError([f"cannot be encoded as UTF-8 JSON: {_first_line(exc)}"]) from None
    if size > max_bytes:
        raise InvalidEventError([
            f"event is {event.encoded_size:,} bytes encoded, over the {max_bytes:,}-byte limit "
            "(compress the content into binaryData, or raise the limit on both producers and worker)"
        ])


def load_json(data: bytes | str) -> Any:
    """Decode strict JSON: UTF-8 text, no repeated key in an object, no NaN or Infinity, and no
    number too large for a double (Python would read 1e400 as infinity, written out as null)."""
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    except UnicodeDecodeError as exc:
        raise InvalidEventError([f"not UTF-8 text: byte {exc.start} cannot be decoded ({exc.reason})"]) from None
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constants,
                          parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise InvalidEventError([f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"]) from None
    except ValueError as exc:  # raised by the hooks below
        raise InvalidEventError([f"not usable JSON: {exc}"]) from None
    except RecursionError:
        raise InvalidEventError(["not usable JSON: nested too deeply"]) from None


def decode_event(data: bytes | str, *, max_bytes: int = MAX_EVENT_BYTES) -> Event:
    """Decode and validate one event given as JSON text; raise InvalidEventError naming each problem."""
    return parse_event(load_json(data), max_bytes=max_bytes)


def decode_message(body: bytes, *, max_event_bytes: int | None = MAX_EVENT_BYTES) -> list[Event | InvalidEvent]:
    """Decode a broker message into its events, each valid or invalid with its reason; never raises.

    A message that is not a `{"events": [...]}` envelope, or is over MAX_MESSAGE_BYTES, comes back
    as one InvalidEvent with `index=None` and the message bytes as `raw`. `max_event_bytes` as for
    `parse_event`.
    """
    if len(body) > MAX_MESSAGE_BYTES:
        return [InvalidEvent(reason=f"message is {len(body):,} bytes, over the {MAX_MESSAGE_BYTES:,}-byte limit",
                             raw=body)]
    try:
        envelope = load_json(body)
    except InvalidEventError as exc:
        return [InvalidEvent(reason=exc.reason, raw=body)]
    events = envelope.get("events") if isinstance(envelope, dict) else None
    if not isinstance(events, list) or (isinstance(envelope, dict) and len(envelope) != 1):
        return [InvalidEvent(reason='expected a message of the form {"events": [event, ...]}', raw=body)]
    decoded: list[Event | InvalidEvent] = []
    for index, obj in enumerate(events):
        try:
            decoded.append(parse_event(obj, max_bytes=max_event_bytes))
        except InvalidEventError as exc:
            decoded.append(InvalidEvent(reason=exc.reason, raw=obj, index=index))
        except (RecursionError, ValueError, TypeError, ArithmeticError) as exc:  # validation itself gave up on the value
            decoded.append(InvalidEvent(reason=f"cannot be validated: {_first_line(exc)}", raw=obj, index=index))
    return decoded


def encode_message(events: Iterable[Event]) -> bytes:
    """The broker message body carrying `events`: `{"events": [...]}` in compact UTF-8 JSON."""
    return b'{"events":[' + b",".join(event.encoded for event in events) + b"]}"


def complete_event(obj: Any, *, next_version: Callable[[], int] | None = None) -> Any:
    """Fill what a producer may leave out: schemaVersion, eventId, occurredAt, and version from `next_version`.

    Anything that is not a JSON object is returned unchanged for `parse_event` to refuse.
    Without `next_version` a missing version stays missing, and is refused.
    """
    if not isinstance(obj, dict):
        return obj
    filled = dict(obj)
    filled.setdefault("schemaVersion", SCHEMA_VERSION)
    if "eventId" not in filled:
        filled["eventId"] = PROCESS_IDS.next()
    if "occurredAt" not in filled:
        filled["occurredAt"] = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
    if next_version is not None and filled.get("version") is None and filled.get("kind") not in RUN_KINDS:
        filled["version"] = next_version()
    return filled


# ---------------------------------------------------------------- reasons


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) < len(pairs):  # a repeated key: name the first one
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"key {key!r} appears twice in one object")
            seen.add(key)
    return result


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        shown = text if len(text) <= _PREVIEW_CHARS else text[:_PREVIEW_CHARS] + "…"
        raise ValueError(f"the number {shown} is too large to be a double-precision number")
    return value


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "null" if value is None else type(value).__name__


def _path(loc: tuple[int | str, ...]) -> str:
    # Discriminated unions put the chosen tag in the location; a person never wrote it.
    parts = [part for part in loc if part not in KINDS and part not in PERMISSION_MODELS]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "event"


_EXPECTED = {
    "missing": "required field is missing",
    "extra_forbidden": "unknown field (see docs/events.md for the fields of each kind)",
    "int_type": "expected an integer",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "list_type": "expected an array",
    "dict_type": "expected an object",
    "model_type": "expected an object",
    "timezone_aware": "expected a date-time with a time zone, such as 2026-11-22T10:00:00Z",
}


_PATTERN_EXPECTED = {
    URI_REGEX: "expected a URI with a scheme and no spaces or control characters, such as https://example.com/page "
               "or file://share/doc",
    ID_REGEX: "expected an id without spaces at the start, braces, '/', '?', '#' or control characters",
    NAME_REGEX: "expected text without control characters (such as a newline or NUL)",
    EXTENSION_REGEX: "expected a file extension starting with a dot, such as .html",
    RUN_ID_REGEX: "expected a run id of letters, digits, '.', '_' and '-'",
}


def _describe(error: Mapping[str, Any]) -> str:
    """One problem as `field.path: what was expected (got …)`."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    path = _path(tuple(error["loc"]))
    if kind == "union_tag_invalid":
        return f"kind: unknown event kind {ctx.get('tag')!r}; expected one of {', '.join(KINDS)}"
    if kind == "union_tag_not_found":
        return f"kind: required field is missing; expected one of {', '.join(KINDS)}"
    if kind == "missing" and path == "version":
        return "version: required field is missing; give the item's version in the source system (an integer that grows with each change)"
    if kind == "value_error":
        return f"{path}: {error['msg'].removeprefix('Value error, ')}"
    if kind == "literal_error":
        message = f"expected {ctx.get('expected')}"
    elif kind in ("greater_than_equal", "less_than_equal"):
        message = f"expected an integer from 0 to {MAX_VERSION}" if path == "version" else error["msg"].lower()
    elif kind == "too_short":
        return f"{path}: expected at least {ctx.get('min_length')} element(s); leave the field out rather than send it empty"
    elif kind == "string_too_short":
        message = "expected a non-empty string"
    elif kind == "string_too_long":
        message = f"expected at most {ctx.get('max_length')} characters"
    elif kind == "string_pattern_mismatch":
        message = _PATTERN_EXPECTED.get(ctx.get("pattern"), error["msg"])
    else:
        message = _EXPECTED.get(kind, error["msg"])
    if kind == "missing":
        return f"{path}: {message}"
    return f"{path}: {message}, got {_preview(value)}"


def _preview(value: Any) -> str:
    if isinstance(value, str):
        shown = value if len(value) <= _PREVIEW_CHARS else value[:_PREVIEW_CHARS] + "…"
        return repr(shown)
    if isinstance(value, (dict, list)):
        return _json_type(value)
    return json.dumps(value) if isinstance(value, (bool, int, float)) or value is None else repr(value)


# ---------------------------------------------------------------- JSON Schema


def json_schema() -> dict[str, Any]:
    """The event schema as JSON Schema (draft 2020-12), generated from the models above."""
    schema = EVENT_ADAPTER.json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": f"pushsync change event, schemaVersion {SCHEMA_VERSION}",
        **schema,
    }
