"""Turning a CMS entry into an item event, the same way for every CMS adapter.

Each adapter says how to read one field of its entries (`read`) and which values fill the
documentId template's placeholders; this module does the rest.
"""

from __future__ import annotations

import string
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from producers.errors import ConfigError
from producers.events import Event
from producers.webhook.adapter import Unmappable, finish
from producers.webhook.config import HookConfig, ItemMapping

EVENT_ID_NAMESPACE = uuid.UUID("6f1d3c2e-8a47-4c5b-9e0f-7d2b1a6c3e58")
"""Event ids derive from the change, so a hook the CMS delivers twice yields the same event id."""
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MILLISECOND = timedelta(milliseconds=1)
MISSING = object()
"""What `read` answers for a field the entry does not have."""

FieldReader = Callable[[str], Any]


def check_template(hook: HookConfig, placeholders: tuple[str, ...]) -> None:
    """Raise ConfigError when the hook's documentId template names a placeholder the adapter does not fill."""
    assert hook.item is not None
    names = {name for _, name, _, _ in string.Formatter().parse(hook.item.document_id) if name is not None}
    unknown = sorted(names - set(placeholders))
    if unknown or not names:
        raise ConfigError(
            f"sources.{hook.name}.item.document_id: "
            + (f"unknown placeholder(s) {', '.join(unknown)}; " if unknown else "name at least one placeholder; ")
            + f"{hook.adapter} fills {', '.join('{' + name + '}' for name in placeholders)}"
        )


def parse_time(value: Any) -> datetime | None:
    """`value` as a timezone-aware time when it is ISO 8601 text (naive times are UTC); None otherwise."""
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def epoch_millis(moment: datetime) -> int:
    """`moment` (timezone-aware) in whole epoch milliseconds: the version of a change its CMS timed.

    Integer arithmetic, as float seconds times 1000 can land a millisecond low (….456 -> 455).
    """
    return (moment - EPOCH) // MILLISECOND


def upsert_event(
    hook: HookConfig, *, values: Mapping[str, str], read: FieldReader, version: int, occurred_at: datetime,
) -> list[Event]:
    """The item.upsert event for one entry. `values` fill the template; `read` reads one entry field."""
    mapping = _mapping(hook)
    document_id = _document_id(mapping, values)
    item: dict[str, Any] = {"metadata": _metadata(mapping, read)}
    if mapping.title:
        title = read(mapping.title)
        if title is not MISSING and title is not None:
            item["metadata"]["title"] = _scalar_text(mapping.title, title)
    body = read(mapping.body)
    if body is not MISSING and body is not None:
        item["data"] = _text(mapping.body, body)
    if mapping.file_extension:
        item["fileExtension"] = mapping.file_extension
    if mapping.permissions:
        item["permissions"] = [entry.model_dump(by_alias=True, exclude_none=True) for entry in mapping.permissions]
    return finish([_event(hook, "item.upsert", document_id, version, occurred_at, item=item)])


def delete_event(hook: HookConfig, *, values: Mapping[str, str], version: int, occurred_at: datetime) -> list[Event]:
    """The item.delete event for one entry."""
    document_id = _document_id(_mapping(hook), values)
    return finish([_event(hook, "item.delete", document_id, version, occurred_at, deleteChildren=False)])


def _event(hook: HookConfig, kind: str, document_id: str, version: int, occurred_at: datetime, **rest: Any) -> dict:
    event_id = uuid.uuid5(EVENT_ID_NAMESPACE, f"{hook.source_id}\n{kind}\n{document_id}\n{version}")
    return {
        "eventId": str(event_id), "kind": kind, "source": hook.source_id, "documentId": document_id,
        "version": version, "occurredAt": occurred_at.isoformat(), **rest,
    }


def _mapping(hook: HookConfig) -> ItemMapping:
    assert hook.item is not None, "checked at start-up"
    return hook.item


def _document_id(mapping: ItemMapping, values: Mapping[str, str]) -> str:
    escaped = {name: quote(str(value), safe="") for name, value in values.items()}
    try:
        return mapping.document_id.format_map(escaped)
    except KeyError as exc:
        raise Unmappable(f"the payload has no {exc.args[0]}, which the documentId template needs") from None


def _metadata(mapping: ItemMapping, read: FieldReader) -> dict[str, Any]:
    metadata = {}
    for name, field in mapping.metadata.items():
        value = read(field)
        if value is not MISSING:
            metadata[name] = _metadata_value(field, value)
    return metadata


def _metadata_value(field: str, value: Any) -> Any:
    if isinstance(value, list):
        return [_metadata_scalar(field, element) for element in value]
    return _metadata_scalar(field, value)


def _metadata_scalar(field: str, value: Any) -> Any:
    link = _link_id(value)
    if link is not None:
        return link
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise Unmappable(
        f"field {field!r} holds an object or nested array; metadata takes strings, numbers, booleans, "
        "links or arrays of those"
    )


def _link_id(value: Any) -> str | None:
    """A reference to another entry or asset (`{"sys": {"type": "Link", "id": …}}` or `{"id": …}`) -> its id."""
    if not isinstance(value, dict):
        return None
    sys = value.get("sys")
    if isinstance(sys, dict) and sys.get("type") == "Link" and isinstance(sys.get("id"), str):
        return sys["id"]
    if set(value) <= {"id", "documentId"} and isinstance(value.get("id"), (str, int)):
        return str(value.get("documentId", value["id"]))
    return None


def _scalar_text(field: str, value: Any) -> str:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise Unmappable(f"field {field!r} is not text")


def _text(field: str, value: Any) -> str:
    """Text content: a string as is, a rich-text document flattened to its text, one block per line."""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        pieces: list[str] = []
        _collect_text(value, pieces)
        if pieces:
            return "".join(pieces).strip()
    raise Unmappable(f"field {field!r} is neither text nor rich text")


def _collect_text(node: Any, pieces: list[str]) -> None:
    # Contentful rich text: {"nodeType": "text", "value": …} leaves under "content";
    # Strapi blocks: {"type": "text", "text": …} leaves under "children".
    if isinstance(node, list):
        for child in node:
            _collect_text(child, pieces)
        return
    if not isinstance(node, dict):
        return
    leaf = node.get("value") if node.get("nodeType") == "text" else node.get("text")
    if isinstance(leaf, str):
        pieces.append(leaf)
    _collect_text(node.get("content") or node.get("children") or [], pieces)
    if node.get("nodeType", node.get("type")) in _BLOCKS:
        pieces.append("\n")


_BLOCKS = frozenset({
    "paragraph", "heading-1", "heading-2", "heading-3", "heading-4", "heading-5", "heading-6", "list-item",
    "blockquote", "heading", "list", "quote", "code",
})
