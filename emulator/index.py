"""A Push source's index: its items, keyed by documentId, under the orderingId rule.

An item remembers the orderingId of the operation that last touched it, deletes included, and
an operation with a lower orderingId than that leaves it alone.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from emulator.activities import ActivityLog
from emulator.content import Content
from emulator.limits import MIB

INSPECTION_CONTENT_BYTES = MIB
"""Content up to this size is shown inline by the items listing; larger content has its own route."""


@dataclass(slots=True)
class Item:
    """An indexed item."""

    document_id: str
    ordering_id: int
    """orderingId of the operation that indexed it."""
    metadata: dict[str, object]
    permissions: list[object] | None
    parent_id: str | None
    file_extension: str | None
    content: Content

    def to_json(self) -> dict[str, object]:
        """The item as the admin API shows it: text content inline, binary content in base64."""
        text = encoded = None
        if self.content.size <= INSPECTION_CONTENT_BYTES:
            raw = self.content.read()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                encoded = base64.b64encode(raw).decode("ascii")
        return {
            "documentId": self.document_id,
            "orderingId": self.ordering_id,
            "metadata": self.metadata,
            "permissions": self.permissions,
            "parentId": self.parent_id,
            "fileExtension": self.file_extension,
            "contentSize": self.content.size,
            "content": text,
            "contentBase64": encoded,
        }


class Source:
    """One Push source: its items, what deleted ones were deleted by, rejections and status."""

    def __init__(self, source_id: str, security_providers: tuple[str, ...] = ()) -> None:
        self.id = source_id
        self.security_providers = security_providers
        """Providers whose identities its items name; the first is the default securityProvider."""
        self.items: dict[str, Item] = {}
        self._deleted: dict[str, int] = {}
        """orderingId of the operation that deleted each item, so older operations stay ignored."""
        self.rejections: list[dict[str, object]] = []
        self.activity = ActivityLog()
        self.floor = 0
        """The highest orderingId an `olderthan` ran with: every operation below it is too old."""

    def is_stale(self, document_id: str, ordering_id: int) -> bool:
        """Whether an operation with `ordering_id` is older than the last one on that item."""
        item = self.items.get(document_id)
        last = item.ordering_id if item is not None else self._deleted.get(document_id)
        return last is not None and ordering_id < last

    def put(self, item: Item) -> None:
        """Index `item`, replacing the one with its documentId (the caller checked staleness)."""
        old = self.items.get(item.document_id)
        if old is not None:
            old.content.discard()
        self._deleted.pop(item.document_id, None)
        self.items[item.document_id] = item

    def delete(self, document_id: str, ordering_id: int, *, children: bool) -> None:
        """Delete an item, and with `children` every item under its URI, unless newer operations touched them."""
        targets = [document_id, *self._descendants(document_id)] if children else [document_id]
        for target in targets:
            if not self.is_stale(target, ordering_id):
                self._remove(target, ordering_id)

    def delete_older_than(self, ordering_id: int) -> int:
        """Delete every item last touched before `ordering_id`; how many were deleted. Later
        operations below it are refused too: an orderingId in the future blocks the source until then."""
        self.floor = max(self.floor, ordering_id)
        old = [item.document_id for item in self.items.values() if item.ordering_id < ordering_id]
        for document_id in old:
            self._remove(document_id, ordering_id)
        return len(old)

    def reject(self, now: float, document_id: str, ordering_id: int, reason: str, message: str) -> None:
        """Log an item the pipeline refused after its 202, as the organization's logs would."""
        self.rejections.append({
            "time": now,
            "documentId": document_id,
            "orderingId": ordering_id,
            "reason": reason,
            "message": message,
        })

    def _remove(self, document_id: str, ordering_id: int) -> None:
        item = self.items.pop(document_id, None)
        if item is not None:
            item.content.discard()
        self._deleted[document_id] = ordering_id

    def _descendants(self, document_id: str) -> list[str]:
        # The service's "children" are the items whose URI begins with the item's URI and a slash.
        prefix = document_id if document_id.endswith("/") else document_id + "/"
        return [other for other in self.items if other.startswith(prefix) and other != document_id]
