"""The item model: what makes an item body valid, and the record a valid one becomes.

Everything here is what the service answers 400 INVALID_JSON to on a single-item call. In a
batch file the same checks reject the one item, after the 202, into the source's rejections.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from emulator.errors import EmulatorError, invalid
from emulator.limits import INLINE_CONTENT_LIMIT_BYTES, MAX_PERMISSIONS_PER_ITEM

CONTENT_KEYS = ("data", "compressedBinaryData", "compressedBinaryDataFileId")
RESERVED_KEYS = frozenset({*CONTENT_KEYS, "parentId", "fileExtension", "permissions", "documentId", "orderingId"})
COMPRESSION_KEY = "compressionType"
COMPRESSION_TYPES = ("UNCOMPRESSED", "DEFLATE", "GZIP", "LZMA", "ZLIB")
DEFAULT_COMPRESSION = "ZLIB"
PERMISSION_IDENTITY_TYPES = ("User", "Group", "VirtualGroup", "Unknown")

ADD_SECTION = "addOrUpdate"
DELETE_SECTION = "delete"
BATCH_SECTIONS = frozenset({ADD_SECTION, DELETE_SECTION})
"""The arrays of an item batch file."""

# Rejection reasons, as the source's rejections log shows them.
INVALID_ITEM = "INVALID_ITEM"
TOO_MANY_PERMISSIONS = "TOO_MANY_PERMISSIONS"

_PRIMITIVE_TYPES = frozenset({str, int, float, bool, type(None)})
"""What a metadata value, or an element of a metadata array, may be (JSON parsers make exactly these)."""
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_KNOWN_KEYS = RESERVED_KEYS | {COMPRESSION_KEY}
_KNOWN_BY_FOLDED = {key.lower(): key for key in _KNOWN_KEYS}
_IDENTITY_TYPE_BY_FOLDED = {kind.lower(): kind for kind in PERMISSION_IDENTITY_TYPES}
_SET_KEYS = frozenset({"allowAnonymous", "allowedPermissions", "deniedPermissions"})
_LEVEL_KEYS = frozenset({"name", "permissionSets"})
_PERMISSION_KEYS = frozenset({"identity", "identityType", "securityProvider"})


@dataclass(slots=True)
class ItemRecord:
    """An accepted add-or-update, waiting for the indexing pipeline."""

    document_id: str
    """The item's URI, its key in the source."""
    metadata: dict[str, object]
    """Every non-reserved key of the body."""
    permissions: list[object] | None
    """The permission sets or levels as given, None for none."""
    parent_id: str | None
    file_extension: str | None
    content_key: str | None
    """Which of CONTENT_KEYS carries the content."""
    content_value: str | None
    """That key's value: text, base64 of compressed bytes, or a container's fileId."""
    compression_type: str
    rejection: tuple[str, str] | None = None
    """(reason, message) when the pipeline must reject the item instead of indexing it."""


@dataclass(slots=True)
class DeleteRecord:
    """An accepted delete of one item (and, optionally, its descendants)."""

    document_id: str
    delete_children: bool
    rejection: tuple[str, str] | None = None


def is_uri(value: object) -> bool:
    """Whether `value` is a URI with a scheme, as documentIds and parentIds must be."""
    return isinstance(value, str) and _URI.fullmatch(value) is not None


def parse_item(body: object, *, document_id: str | None = None, compression_type: str | None = None) -> ItemRecord:
    """Validate an item body, or raise a 400 INVALID_JSON naming the first problem.

    The body is consumed: its known keys are taken out and what remains becomes the metadata, so
    a batch's items are never copied. `document_id`: the `documentId` query parameter of a
    single-item call (None in a batch file, where the body carries it). `compression_type`: that
    call's `compressionType` parameter."""
    if not isinstance(body, dict):
        raise invalid("an item must be a JSON object")
    _check_keys(body)
    fields = {key: body.pop(key) for key in [key for key in body if key in _KNOWN_KEYS]}
    _check_metadata(body)
    record = ItemRecord(
        document_id=_document_id(fields.get("documentId"), document_id),
        metadata=body,
        permissions=_permissions(fields.get("permissions")),
        parent_id=_optional_uri(fields.get("parentId"), "parentId"),
        file_extension=_file_extension(fields.get("fileExtension")),
        content_key=None,
        content_value=None,
        compression_type=_compression(fields.get(COMPRESSION_KEY), compression_type),
    )
    record.content_key, record.content_value = _content(fields)
    count = sum(1 for _ in permission_identities(record.permissions)) if record.permissions else 0
    if count > MAX_PERMISSIONS_PER_ITEM:
        record.rejection = (TOO_MANY_PERMISSIONS, f"{count} permissions, over the {MAX_PERMISSIONS_PER_ITEM} allowed")
    return record


def parse_batch_item(entry: object) -> ItemRecord:
    """A batch file's addOrUpdate entry; an invalid one becomes a record to reject after the 202."""
    raw_id = _raw_id(entry)
    try:
        return parse_item(entry)
    except EmulatorError as error:
        rejection = (INVALID_ITEM, error.message)
        return ItemRecord(raw_id, {}, None, None, None, None, None, DEFAULT_COMPRESSION, rejection)


def parse_batch_delete(entry: object) -> DeleteRecord:
    """A batch file's delete entry: `{"documentId": URI, "deleteChildren": bool}`."""
    if not isinstance(entry, dict) or not is_uri(entry.get("documentId")):
        return DeleteRecord(_raw_id(entry), False, (INVALID_ITEM, "a delete needs a documentId that is a URI"))
    if getattr(entry, "duplicate_keys", ()) or set(entry) - {"documentId", "deleteChildren"}:
        return DeleteRecord(entry["documentId"], False, (INVALID_ITEM, "a delete takes only documentId and deleteChildren"))
    children = entry.get("deleteChildren", False)
    if not isinstance(children, bool):
        return DeleteRecord(entry["documentId"], False, (INVALID_ITEM, "deleteChildren must be a boolean"))
    return DeleteRecord(entry["documentId"], children)


def permission_identities(permissions: list[object] | None) -> Iterator[dict[str, str]]:
    """Every allowed or denied identity of validated permissions, in either model."""
    for entry in permissions or ():
        assert isinstance(entry, dict)
        for permission_set in entry.get("permissionSets", [entry]):
            yield from permission_set.get("allowedPermissions", ())
            yield from permission_set.get("deniedPermissions", ())


def identity_type_of(permission: dict[str, str]) -> str:
    """A permission's identityType in its canonical case (User, Group, VirtualGroup, Unknown)."""
    return _IDENTITY_TYPE_BY_FOLDED[permission["identityType"].lower()]


def _raw_id(entry: object) -> str:
    value = entry.get("documentId") if isinstance(entry, dict) else None
    return value if isinstance(value, str) else ""


def _check_keys(body: dict[str, object]) -> None:
    twice = getattr(body, "duplicate_keys", ())
    if twice:
        raise invalid(f"the key {twice[0]!r} is given twice")
    if "" in body:
        raise invalid("a metadata name cannot be empty")
    folded: dict[str, str] = {}
    for key in body:
        lowered = key.lower()
        if lowered in folded:
            raise invalid(f"{folded[lowered]!r} and {key!r} are the same key: keys are case-insensitive")
        folded[lowered] = key
        known = _KNOWN_BY_FOLDED.get(lowered, key)
        if known != key:
            raise invalid(f"{key!r} is the reserved key {known!r}; it cannot be metadata")
    if "orderingId" in body:
        raise invalid("orderingId is reserved and cannot be metadata: give it as a query parameter")


def _document_id(in_body: object, from_query: str | None) -> str:
    if from_query is None:
        if not is_uri(in_body):
            raise invalid("documentId must be a URI such as https://... or file://...")
        return str(in_body)
    if in_body is not None and in_body != from_query:
        raise invalid("documentId in the body differs from the documentId parameter")
    return from_query


def _check_metadata(metadata: dict[str, object]) -> None:
    for key, value in metadata.items():
        kind = type(value)
        if kind not in _PRIMITIVE_TYPES and not (kind is list and all(type(v) in _PRIMITIVE_TYPES for v in value)):
            raise invalid(f"metadata {key!r} must be a string, number, boolean or an array of those, not an object")


def _optional_uri(value: object, key: str) -> str | None:
    if value is not None and not is_uri(value):
        raise invalid(f"{key} must be a URI")
    return value  # type: ignore[return-value]


def _file_extension(value: object) -> str | None:
    if value is not None and not (isinstance(value, str) and len(value) > 1 and value.startswith(".")):
        raise invalid("fileExtension must start with a dot, as in .html")
    return value  # type: ignore[return-value]


def _compression(in_body: object, from_query: str | None) -> str:
    for value in (in_body, from_query):
        if value is not None and value not in COMPRESSION_TYPES:
            raise invalid(f"compressionType must be one of {', '.join(COMPRESSION_TYPES)} (case-sensitive)")
    if in_body is not None and from_query is not None and in_body != from_query:
        raise invalid("compressionType in the body differs from the compressionType parameter")
    return str(in_body or from_query or DEFAULT_COMPRESSION)


def _content(body: dict[str, object]) -> tuple[str, str]:
    given = [key for key in CONTENT_KEYS if key in body]
    if len(given) != 1:
        problem = "no content" if not given else f"content in more than one field ({', '.join(given)})"
        raise invalid(f"{problem}: give exactly one of {', '.join(CONTENT_KEYS)}")
    key = given[0]
    value = body[key]
    if not isinstance(value, str) or (key == "compressedBinaryDataFileId" and not value):
        raise invalid(f"{key} must be a non-empty string" if key.endswith("FileId") else f"{key} must be a string")
    if key != "compressedBinaryDataFileId" and _utf8_length(value) > INLINE_CONTENT_LIMIT_BYTES:
        raise invalid(f"{key} is over {INLINE_CONTENT_LIMIT_BYTES} bytes: push that content through a file container")
    return key, value


def _utf8_length(text: str) -> int:
    # Cheap bounds first: a str of n characters encodes to between n and 4n bytes.
    if len(text) > INLINE_CONTENT_LIMIT_BYTES or 4 * len(text) <= INLINE_CONTENT_LIMIT_BYTES:
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def _permissions(value: object) -> list[object] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise invalid("permissions must be a non-empty array of permission sets or permission levels")
    complete = any(isinstance(entry, dict) and "permissionSets" in entry for entry in value)
    for entry in value:
        if complete:
            _check_level(entry)
        else:
            _check_set(entry)
    return value


def _check_level(level: object) -> None:
    _check_object(level, _LEVEL_KEYS, "a permission level")
    assert isinstance(level, dict)
    if not isinstance(level.get("name", ""), str):
        raise invalid("a permission level's name must be a string")
    sets = level.get("permissionSets")
    if not isinstance(sets, list) or not sets:
        raise invalid("a permission level needs a non-empty permissionSets array")
    for permission_set in sets:
        _check_set(permission_set)


def _check_set(permission_set: object) -> None:
    _check_object(permission_set, _SET_KEYS, "a permission set")
    assert isinstance(permission_set, dict)
    if not isinstance(permission_set.get("allowAnonymous", False), bool):
        raise invalid("allowAnonymous must be a boolean")
    for key in ("allowedPermissions", "deniedPermissions"):
        permissions = permission_set.get(key, [])
        if not isinstance(permissions, list):
            raise invalid(f"{key} must be an array")
        for permission in permissions:
            _check_permission(permission)


def _check_permission(permission: object) -> None:
    _check_object(permission, _PERMISSION_KEYS, "a permission")
    assert isinstance(permission, dict)
    if not isinstance(permission.get("identity"), str) or not permission["identity"]:
        raise invalid("a permission needs an identity name")
    kind = permission.get("identityType")
    if not isinstance(kind, str) or kind.lower() not in _IDENTITY_TYPE_BY_FOLDED:
        raise invalid(f"identityType must be one of {', '.join(PERMISSION_IDENTITY_TYPES)} (any case)")
    if not isinstance(permission.get("securityProvider", ""), str):
        raise invalid("securityProvider must be a string")


def _check_object(value: object, allowed: frozenset[str], what: str) -> None:
    if not isinstance(value, dict):
        raise invalid(f"{what} must be an object")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise invalid(f"{what} has unknown keys {unknown}; allowed: {sorted(allowed)}")
