"""The contract's rules for item, identity and status bodies, checked before anything is sent.

A body that breaks one of them would be refused by the service with a 400 (or, worse, accepted
with a 202 and dropped later); refusing it here names the item and the rule instead. The rules
the event schema shares with the service (compression and identity types, the URI, the number of
permissions) come from `producers.events.limits`, so the two cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from producers.events.limits import (
    COMPRESSION_TYPES,
    IDENTITY_TYPES,
    MAX_PERMISSIONS,
    SERVICE_RESERVED_KEYS,
    SERVICE_URI_REGEX,
)
from worker.pushapi.errors import InvalidInputError

URI_PATTERN = re.compile(SERVICE_URI_REGEX)
CONTENT_FIELDS = ("data", "compressedBinaryData", "compressedBinaryDataFileId")
BODY_FIELDS = frozenset(
    {"documentId", "compressionType", "fileExtension", "parentId", "permissions", *CONTENT_FIELDS}
)
"""Top-level keys that are item fields, not metadata, spelled exactly as the service expects."""
RESERVED_KEYS = frozenset(key.lower() for key in SERVICE_RESERVED_KEYS)
"""Keys (compared case-insensitively) that can never carry metadata."""
STATUS_TYPES = ("REBUILD", "REFRESH", "INCREMENTAL", "IDLE")
PRIMITIVES = (str, int, float, bool, type(None))


def check_document_id(document_id: object) -> str:
    """Return `document_id` if it is a URI, else raise `InvalidInputError` naming it."""
    if not isinstance(document_id, str) or not URI_PATTERN.match(document_id):
        raise InvalidInputError(f"documentId {document_id!r} is not a URI such as https://host/path or file://path")
    return document_id


def check_document(document: Mapping[str, Any], *, content_apart: bool = False) -> None:
    """Raise `InvalidInputError` unless `document` is an item the service will accept.

    content_apart: the content comes separately (raw bytes to compress), not in `document`.
    """
    document_id = check_document_id(document.get("documentId"))
    seen: dict[str, str] = {}
    for key, value in document.items():
        folded = key.lower()
        if folded in seen:
            raise InvalidInputError(f"item {document_id}: keys {seen[folded]!r} and {key!r} are the same key")
        seen[folded] = key
        if key in BODY_FIELDS:
            continue
        if folded in RESERVED_KEYS:
            raise InvalidInputError(f"item {document_id}: {key!r} is a reserved key and cannot be metadata")
        if not _is_metadata_value(value):
            raise InvalidInputError(
                f"item {document_id}: metadata {key!r} must be a primitive or an array of primitives, not {type(value).__name__}"
            )
    contents = [field for field in CONTENT_FIELDS if field in document]
    if len(contents) + content_apart > 1:
        raise InvalidInputError(f"item {document_id}: content given in more than one field: {', '.join(contents)}")
    if not contents and not content_apart:
        raise InvalidInputError(f"item {document_id}: no content; give one of {', '.join(CONTENT_FIELDS)}")
    compression = document.get("compressionType")
    if compression is not None and compression not in COMPRESSION_TYPES:
        raise InvalidInputError(f"item {document_id}: compressionType {compression!r} is not one of {', '.join(COMPRESSION_TYPES)}")
    extension = document.get("fileExtension")
    if extension is not None and (not isinstance(extension, str) or not extension.startswith(".")):
        raise InvalidInputError(f"item {document_id}: fileExtension {extension!r} must start with a dot, e.g. '.html'")
    if "parentId" in document:
        check_document_id(document["parentId"])
    if "permissions" in document:
        _check_permissions(document_id, document["permissions"])


def _is_metadata_value(value: object) -> bool:
    if isinstance(value, list):
        return all(isinstance(entry, PRIMITIVES) for entry in value)
    return isinstance(value, PRIMITIVES)


def _check_permissions(document_id: str, permissions: object) -> None:
    if not isinstance(permissions, list) or not permissions:
        raise InvalidInputError(f"item {document_id}: permissions must be a non-empty array (leave the key out instead)")
    count = sum(len(entry) for entry in _permission_lists(permissions))
    if count > MAX_PERMISSIONS:
        raise InvalidInputError(f"item {document_id}: {count} permissions, over the limit of {MAX_PERMISSIONS}")


def _permission_lists(permissions: list) -> list[list]:
    """Every allowed/denied list in the simple model or in the complete model's sets."""
    sets: list = []
    for entry in permissions:
        if not isinstance(entry, dict):
            continue
        sets.extend(entry.get("permissionSets", [entry]) if "permissionSets" in entry else [entry])
    lists = []
    for permission_set in sets:
        if isinstance(permission_set, dict):
            lists += [permission_set.get("allowedPermissions") or [], permission_set.get("deniedPermissions") or []]
    return lists


def check_status_type(status_type: str) -> str:
    """Return `status_type` if the service knows it (RESCAN is not in the Swagger enum)."""
    if status_type not in STATUS_TYPES:
        raise InvalidInputError(f"statusType {status_type!r} is not one of {', '.join(STATUS_TYPES)}")
    return status_type


def check_identity(identity: Mapping[str, Any]) -> None:
    """Raise `InvalidInputError` unless `identity` has a name and a known type."""
    if not isinstance(identity, Mapping) or not isinstance(identity.get("name"), str) or not identity["name"]:
        raise InvalidInputError(f"identity {identity!r} needs a non-empty 'name'")
    if identity.get("type") not in IDENTITY_TYPES:
        raise InvalidInputError(f"identity {identity['name']!r}: type {identity.get('type')!r} is not one of {', '.join(IDENTITY_TYPES)}")
