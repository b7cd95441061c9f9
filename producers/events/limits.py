"""Every limit and enumeration of the change-event schema, and the Push API's own that it rests on.

A leaf: it imports nothing of pushsync, so the Push API client (`worker.pushapi.documents`) takes
the service's rules from here without depending on the rest of the schema (importing it still
runs the `producers` and `producers.events` package modules, as Python does for any submodule).
"""

from __future__ import annotations

SCHEMA_VERSION = 1
MIB = 1024 * 1024
CONTAINER_LIMIT_BYTES = 256 * MIB
"""The service's hard limit for one file container upload."""
INLINE_CONTENT_LIMIT_BYTES = 5 * MIB
"""Largest `data` / `compressedBinaryData` the service takes inline in an item."""
REQUEST_BODY_LIMIT_BYTES = 6 * MIB
"""The service's limit for one single-item (or identity, or alias) request body."""
MAX_EVENT_BYTES = REQUEST_BODY_LIMIT_BYTES
"""Largest encoded event accepted by default: the service's limit for one item request."""
MAX_MESSAGE_BYTES = 16 * MIB
"""Largest broker message body the worker reads (after decompression); publishers stay well under it."""
MAX_PERMISSIONS = 5_000
"""The service ignores an item naming more identities than this in its permissions."""
MAX_VERSION = 2**63 - 1
"""Versions fit a signed 64-bit integer, like the service's orderingId."""
MAX_ID_LENGTH = 255
COMPRESSION_TYPES = ("UNCOMPRESSED", "DEFLATE", "GZIP", "LZMA", "ZLIB")
"""How an item's bytes may be compressed, spelled as the service takes them."""
SERVICE_RESERVED_KEYS = (
    "compressedBinaryData", "compressedBinaryDataFileId", "parentId", "fileExtension", "data",
    "permissions", "documentId", "orderingId",
)
"""Keys the service never takes as an item's metadata (it compares them case-insensitively)."""
RESERVED_METADATA_KEYS = (
    *SERVICE_RESERVED_KEYS,
    # Not reserved by the service, but the worker flattens metadata beside this item field.
    "compressionType",
)
KINDS = ("item.upsert", "item.delete", "identity.upsert", "identity.alias", "identity.disable",
         "rebuild.begin", "rebuild.end")
RUN_KINDS = frozenset({"rebuild.begin", "rebuild.end"})
"""Kinds that mark a full run rather than change one item or identity: they carry no version."""
MAX_RUN_EVENTS = 100_000_000
"""Most events one full run may carry (the worker keeps one bit per event while the run lasts)."""
IDENTITY_TYPES = ("USER", "GROUP", "VIRTUAL_GROUP", "UNKNOWN")
"""Types of a security identity, spelled as the service takes them in identity bodies."""
PERMISSION_IDENTITY_TYPES = ("User", "Group", "VirtualGroup", "Unknown")
"""The same types as an item's permissions spell them."""
PERMISSION_MODELS = ("simple", "complete")

_CONTROL = r"\x00-\x1f\x7f-\x9f"
"""Control characters (C0, DEL, C1), as a regex class body: no id, name or URI may hold one."""
_URI_SCHEME = r"[A-Za-z][A-Za-z0-9+.-]*://"
SERVICE_URI_REGEX = rf"^{_URI_SCHEME}\S+$"
"""A documentId or parentId the service takes: a URI with a scheme (`https://…`, `file://…`), no whitespace."""
URI_REGEX = rf"^{_URI_SCHEME}[^\s{_CONTROL}]+$"
"""A documentId or parentId an event may name: the service's rule, and no control characters either."""
ID_REGEX = rf"^[^\s{{}}/?#{_CONTROL}][^{{}}/?#{_CONTROL}]*$"
"""Source and provider ids: no braces (Redis hash tags), no URL delimiters, no control characters."""
NAME_REGEX = rf"^[^{_CONTROL}]+$"
"""Event ids, identity names and the providers they name: anything but control characters, which
would forge lines in logs and are no part of a name."""
EXTENSION_REGEX = r"^\.[^\s./\\]+$"
RUN_ID_REGEX = r"^[A-Za-z0-9._-]+$"
MAX_RUN_ID_LENGTH = 64
