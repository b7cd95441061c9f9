"""The change-event schema (schemaVersion 1): what producers publish and the worker consumes.

Both sides import this one package, so a producer refuses exactly what the worker would
quarantine, with the same person-readable reason. docs/events.md describes the wire format.

    limits     every limit and enumeration of the schema (a leaf: imports nothing of pushsync)
    fields     the field types and their rules
    models     one model per kind of event, and the `Event` union
    codec      events to and from JSON and broker messages
    reasons    the wording of every refusal
    schema     the same schema as JSON Schema (`event.schema.json`)

Entry points, all importable from here:
    parse_event(obj)          a decoded JSON value -> Event, or InvalidEventError
    decode_event(data)        one JSON document (bytes or str) -> Event, or InvalidEventError
    decode_message(body)      a broker message -> [Event | InvalidEvent, ...], never raises
    encode_message(events)    events -> the broker message body
    complete_event(obj, ...)  fill the fields a producer may leave out (ids, times, version)
"""

from producers.events.codec import (
    InvalidEvent,
    check_size,
    complete_event,
    decode_event,
    decode_message,
    encode_message,
    load_json,
    parse_event,
)
from producers.events.fields import (
    DocumentUri,
    EventId,
    IdentityType,
    Metadata,
    Name,
    OccurredAt,
    PermissionIdentityType,
    RunId,
    TargetId,
    Version,
)
from producers.events.limits import (
    COMPRESSION_TYPES,
    EXTENSION_REGEX,
    ID_REGEX,
    IDENTITY_TYPES,
    KINDS,
    MAX_EVENT_BYTES,
    MAX_ID_LENGTH,
    MAX_MESSAGE_BYTES,
    MAX_PERMISSIONS,
    MAX_RUN_EVENTS,
    MAX_RUN_ID_LENGTH,
    MAX_VERSION,
    MIB,
    NAME_REGEX,
    PERMISSION_IDENTITY_TYPES,
    PERMISSION_MODELS,
    RESERVED_METADATA_KEYS,
    RUN_ID_REGEX,
    RUN_KINDS,
    SCHEMA_VERSION,
    URI_REGEX,
)
from producers.events.models import (
    EVENT_ADAPTER,
    EVENT_TYPES,
    Event,
    Identity,
    IdentityAlias,
    IdentityDisable,
    IdentityUpsert,
    Item,
    ItemDelete,
    ItemUpsert,
    MappedIdentity,
    PermissionIdentity,
    PermissionLevel,
    Permissions,
    PermissionSet,
    RebuildBegin,
    RebuildEnd,
    RunTag,
)
from producers.events.schema import SCHEMA_FILE, SCHEMA_ID, json_schema

__all__ = [
    "COMPRESSION_TYPES",
    "EVENT_ADAPTER",
    "EVENT_TYPES",
    "EXTENSION_REGEX",
    "IDENTITY_TYPES",
    "ID_REGEX",
    "KINDS",
    "MAX_EVENT_BYTES",
    "MAX_ID_LENGTH",
    "MAX_MESSAGE_BYTES",
    "MAX_PERMISSIONS",
    "MAX_RUN_EVENTS",
    "MAX_RUN_ID_LENGTH",
    "MAX_VERSION",
    "MIB",
    "NAME_REGEX",
    "PERMISSION_IDENTITY_TYPES",
    "PERMISSION_MODELS",
    "RESERVED_METADATA_KEYS",
    "RUN_ID_REGEX",
    "RUN_KINDS",
    "SCHEMA_FILE",
    "SCHEMA_ID",
    "SCHEMA_VERSION",
    "URI_REGEX",
    "DocumentUri",
    "Event",
    "EventId",
    "Identity",
    "IdentityAlias",
    "IdentityDisable",
    "IdentityType",
    "IdentityUpsert",
    "InvalidEvent",
    "Item",
    "ItemDelete",
    "ItemUpsert",
    "MappedIdentity",
    "Metadata",
    "Name",
    "OccurredAt",
    "PermissionIdentity",
    "PermissionIdentityType",
    "PermissionLevel",
    "PermissionSet",
    "Permissions",
    "RebuildBegin",
    "RebuildEnd",
    "RunId",
    "RunTag",
    "TargetId",
    "Version",
    "check_size",
    "complete_event",
    "decode_event",
    "decode_message",
    "encode_message",
    "json_schema",
    "load_json",
    "parse_event",
]
