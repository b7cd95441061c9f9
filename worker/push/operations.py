"""From an event as a window stores it to the Push API operation that applies it."""

from __future__ import annotations

import base64
from typing import Any

from worker.pushapi.batches import Delete, IdentityOp, Upsert
from worker.pushapi.batchfile import IDENTITY_SECTIONS

ITEM_FIELDS = ("data", "fileExtension", "parentId", "permissions")
"""Fields of an event's item that go into the Push API document as they are."""
SECTION_OF_KIND = dict(zip(("identity.upsert", "identity.alias", "identity.disable"), IDENTITY_SECTIONS, strict=True))
"""The batch-file section each kind of identity event goes into."""


def to_operation(event: dict[str, Any], ref: str = "") -> Upsert | Delete | IdentityOp:
    """The push operation for one ingested event (as stored in its window); `ref` names it back."""
    kind = event["kind"]
    if kind == "item.delete":
        return Delete(event["documentId"], event.get("deleteChildren", False), ref)
    if kind == "item.upsert":
        item = event["item"]
        document = {"documentId": event["documentId"], **item.get("metadata", {})}
        document.update({name: item[name] for name in ITEM_FIELDS if name in item})
        if "binaryData" in item:
            return Upsert(document, base64.b64decode(item["binaryData"]), item["compressionType"], ref)
        return Upsert(document, ref=ref)
    section = SECTION_OF_KIND[kind]
    body = {"identity": event["identity"]}
    if kind == "identity.upsert":
        body |= {"members": event.get("members", []), "wellKnowns": event.get("wellKnowns", [])}
    elif kind == "identity.alias":
        body |= {"mappings": event["mappings"], "wellKnowns": event.get("wellKnowns", [])}
    return IdentityOp(section, body, ref)
