"""The indexing pipeline: what an accepted operation does to the index when its turn comes.

This is where the service's late refusals happen, after the 202: an invalid entry of a batch
file, more than 5,000 permissions, an identity a strict provider does not know, content that
does not decode, the item allowance reached. Each refused item lands in its source's (or
provider's) rejections, as it would in the organization's logs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from emulator.batchfile import BatchEntry
from emulator.content import Content, ContentError, decode_base64, decode_file, text_content
from emulator.identities import Provider
from emulator.identity_body import IdentityUpdate, parse_batch_entry
from emulator.index import Item, Source
from emulator.item_body import (
    ADD_SECTION,
    DeleteRecord,
    ItemRecord,
    identity_type_of,
    parse_batch_delete,
    parse_batch_item,
    permission_identities,
)
from emulator.quotas import TOO_MANY_DOCUMENTS_DAILY
from emulator.state import DOCUMENT_LIMIT_EXCEEDED, Emulator, Organization

ITEMS_PER_STEP = 1_000
"""Entries applied between two yields to the event loop, so a big batch never stalls the API."""
UNKNOWN_IDENTITY = "UNKNOWN_IDENTITY"
INVALID_CONTENT = "INVALID_CONTENT"
OLDER_THAN_A_DELETE = "OLDER_THAN_A_DELETE"
OVER_DAILY_ALLOWANCE = (TOO_MANY_DOCUMENTS_DAILY, "today's item allowance was spent before this item")

Change = ItemRecord | DeleteRecord
FILE_KEY = "compressedBinaryDataFileId"


@dataclass(slots=True)
class ItemOperation:
    """An accepted item call, waiting for its turn."""

    source: Source
    changes: list[Change] | list[BatchEntry]
    """The records of a single-item call, or a batch file's entries."""
    ordering_id: int
    blobs: dict[str, Path]
    """The consumed containers that items name as their content, by fileId; deleted once applied."""
    admitted: int
    """How many of its adds fit in today's item allowance; the adds after them are rejected."""


def count_adds(changes: list[Change] | list[BatchEntry]) -> int:
    """How many add-or-update entries `changes` holds (what the daily item allowance counts)."""
    return sum(1 for change in changes
               if isinstance(change, ItemRecord) or (isinstance(change, tuple) and change[0] == ADD_SECTION))


def content_files(changes: list[Change] | list[BatchEntry]) -> list[str]:
    """The fileIds that entries name as their content (the containers the call consumes)."""
    named = (
        change.content_value if isinstance(change, ItemRecord) and change.content_key == FILE_KEY
        else change[1].get(FILE_KEY) if isinstance(change, tuple) and change[0] == ADD_SECTION
        else None
        for change in changes
    )
    return [file_id for file_id in named if isinstance(file_id, str)]


async def apply_items(emulator: Emulator, organization: Organization, operation: ItemOperation) -> None:
    """Apply an item operation's changes in order, a step at a time."""
    adds = 0
    try:
        for start in range(0, len(operation.changes), ITEMS_PER_STEP):
            step = operation.changes[start : start + ITEMS_PER_STEP]
            prepare = partial(_prepare, step, operation.blobs, emulator.content_directory)
            prepared = await asyncio.to_thread(prepare) if any(map(_needs_thread, step)) else prepare()
            now = emulator.clock.now()
            for change, content in prepared:
                if isinstance(change, ItemRecord):
                    adds += 1
                    if adds > operation.admitted:
                        change.rejection = change.rejection or OVER_DAILY_ALLOWANCE
                _apply(emulator, organization, operation.source, change, content, operation.ordering_id, now)
            if start + ITEMS_PER_STEP < len(operation.changes):
                await asyncio.sleep(0)
    finally:
        for blob in operation.blobs.values():
            blob.unlink(missing_ok=True)


async def apply_identities(emulator: Emulator, provider: Provider, updates: list[IdentityUpdate] | list[BatchEntry],
                           ordering_id: int) -> None:
    """Apply identity changes in order, judging batch entries: an invalid one is rejected alone."""
    for start in range(0, len(updates), ITEMS_PER_STEP):
        now = emulator.clock.now()
        for update in updates[start : start + ITEMS_PER_STEP]:
            if isinstance(update, tuple):
                update = parse_batch_entry(*update)
            if update.rejection is not None:
                provider.reject(now, update, ordering_id)
            else:
                provider.apply(update, ordering_id)
        await asyncio.sleep(0)


async def delete_older_than(source: Source, ordering_id: int) -> None:
    """The `olderthan` call on items, once its queueDelay passed."""
    source.delete_older_than(ordering_id)


async def disable_older_than(provider: Provider, ordering_id: int) -> None:
    """The `olderthan` call on identities, once its queueDelay passed."""
    provider.disable_older_than(ordering_id)


def _needs_thread(change: Change | BatchEntry) -> bool:
    """Whether preparing `change` is more than cheap: judging a batch entry, or decoding content."""
    return isinstance(change, tuple) or (isinstance(change, ItemRecord) and change.content_key not in (None, "data"))


def _prepare(step: list[Change] | list[BatchEntry], blobs: dict[str, Path],
             directory: Path) -> list[tuple[Change, Content | ContentError | None]]:
    """Judge batch entries and decode content (in a worker thread when it is heavy)."""
    prepared = []
    for change in step:
        if isinstance(change, tuple):
            section, entry = change
            change = parse_batch_item(entry) if section == ADD_SECTION else parse_batch_delete(entry)
        prepared.append((change, _decode(change, blobs, directory)))
    return prepared


def _decode(change: Change, blobs: dict[str, Path], directory: Path) -> Content | ContentError | None:
    if not isinstance(change, ItemRecord) or change.rejection is not None:
        return None
    value = str(change.content_value)
    try:
        if change.content_key == "data":
            return text_content(value)
        if change.content_key == "compressedBinaryData":
            return decode_base64(value, change.compression_type, directory)
        return decode_file(blobs[value], change.compression_type, directory)
    except ContentError as error:
        return error


def _apply(emulator: Emulator, organization: Organization, source: Source, change: Change,
           content: Content | ContentError | None, ordering_id: int, now: float) -> None:
    if change.rejection is not None:
        if isinstance(content, Content):
            content.discard()  # decoded before a daily-allowance refusal was known
        source.reject(now, change.document_id, ordering_id, *change.rejection)
    elif isinstance(change, DeleteRecord):
        source.delete(change.document_id, ordering_id, children=change.delete_children)
    elif isinstance(content, ContentError):
        source.reject(now, change.document_id, ordering_id, INVALID_CONTENT, str(content))
    elif ordering_id < source.floor:
        content.discard()  # type: ignore[union-attr]
        message = f"orderingId {ordering_id} is below the last olderthan's {source.floor}"
        source.reject(now, change.document_id, ordering_id, OLDER_THAN_A_DELETE, message)
    elif source.is_stale(change.document_id, ordering_id):
        content.discard()  # type: ignore[union-attr]  # a newer operation already touched this item
    else:
        assert content is not None
        refusal = _refusal(emulator, organization, source, change)
        if refusal is not None:
            content.discard()
            source.reject(now, change.document_id, ordering_id, *refusal)
        else:
            source.put(Item(change.document_id, ordering_id, change.metadata, change.permissions,
                            change.parent_id, change.file_extension, content))


def _refusal(emulator: Emulator, organization: Organization, source: Source,
             record: ItemRecord) -> tuple[str, str] | None:
    """Why the pipeline refuses a valid item now, if it does."""
    default_provider = source.security_providers[0] if source.security_providers else None
    for permission in permission_identities(record.permissions):
        provider = organization.providers.get(permission.get("securityProvider") or default_provider or "")
        name = permission["identity"]
        if provider is not None and provider.strict and not provider.knows(name, identity_type_of(permission)):
            return UNKNOWN_IDENTITY, f"provider {provider.id!r} has no identity {name!r}"
    allowance = emulator.limits.item_allowance
    if allowance is not None and record.document_id not in source.items and organization.item_count() >= allowance:
        return DOCUMENT_LIMIT_EXCEEDED, f"the organization holds its {allowance} allowed items"
    return None
