"""Pushing a whole batch of items or identities through file containers.

`Entries` turns each operation into its batch-file entry without calling the service (so a
run can size its windows from them, see `worker/runs/packing.py`); `ContainerPusher` streams those
entries into batch files that fit one container each, sends item content that is too large to
inline through a container of its own, and for every finished file creates a container,
uploads, and calls the batch operation. An item that cannot be sent at all (too large,
invalid) is reported back instead of failing the batch, so the caller can dead-letter it alone.
"""

from __future__ import annotations

import base64
import logging
import os
import tempfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from producers.events.limits import CONTAINER_LIMIT_BYTES, INLINE_CONTENT_LIMIT_BYTES
from worker.pushapi import documents
from worker.pushapi.batchfile import IDENTITY_SECTIONS, ITEM_SECTIONS, BatchFile, BatchFileWriter
from worker.pushapi.client import FileContainer, PushApiClient
from worker.pushapi.errors import ContainerExpiredError, InvalidInputError, ItemTooLargeError, PushApiError

log = logging.getLogger(__name__)

CONTAINER_ATTEMPTS = 3
"""Fresh containers tried for one file when the previous one expired or vanished."""
COUNT_FIELDS = {"addOrUpdate": "items", "delete": "deletes", "members": "identities", "mappings": "aliases",
                "deleted": "disables"}
"""What a log line calls the entries of each batch-file section."""
ZLIB_LEVEL = 6
CONTENT_FILE_ID_FIELD = "compressedBinaryDataFileId"


@dataclass(frozen=True)
class Upsert:
    """Add or update one item.

    document: the item's JSON (documentId, metadata, data, fileExtension, permissions...).
    content: raw content bytes, sent compressed inline or through a container of their own.
    compression_type: how `content` is already compressed; UNCOMPRESSED content is ZLIB-compressed here.
    """

    document: Mapping[str, Any]
    content: bytes | None = None
    compression_type: str = "UNCOMPRESSED"
    ref: str = ""
    """The caller's name for this operation, handed back with it when it is rejected."""


@dataclass(frozen=True)
class Delete:
    """Delete one item, and its children when `delete_children` is true."""

    document_id: str
    delete_children: bool = False
    ref: str = ""


@dataclass(frozen=True)
class IdentityOp:
    """One entry of an identity batch: `section` is members, mappings or deleted."""

    section: str
    body: Mapping[str, Any]
    ref: str = ""


@dataclass
class PushReport:
    """What one push sent, and what it refused to send."""

    file_ids: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    rejected: list[tuple[Any, InvalidInputError]] = field(default_factory=list)
    """Operations refused before sending, with the reason (too large, invalid)."""


@dataclass(frozen=True)
class BatchFileEntry:
    """One operation's batch-file entry, as `Entries` builds it."""

    section: str
    body: Mapping[str, Any]
    name: str
    """What an error calls it (its documentId or identity name)."""
    content_apart: bytes | None = None
    """Compressed content too large to inline: it goes to a container of its own, whose fileId
    the pusher puts into `body` as compressedBinaryDataFileId before the entry is written."""


class Entries:
    """Builds batch-file entries from operations; pure: it never calls the service."""

    def __init__(self, *, max_bytes: int = CONTAINER_LIMIT_BYTES, compress_data: bool = False) -> None:
        """
        max_bytes: the largest content container; an item whose content is larger is refused.
        compress_data: send the `data` of items that state their fileExtension compressed, when that is smaller.
        """
        self.max_bytes = max_bytes
        self.compress_data = compress_data

    def item(self, operation: Upsert | Delete) -> BatchFileEntry:
        """The batch-file entry of an item operation."""
        if isinstance(operation, Delete):
            documents.check_document_id(operation.document_id)
            entry = {"documentId": operation.document_id, "deleteChildren": operation.delete_children}
            return BatchFileEntry("delete", entry, operation.document_id)
        return self._upsert(operation)

    @staticmethod
    def identity(operation: IdentityOp) -> BatchFileEntry:
        """The batch-file entry of an identity operation."""
        identity = operation.body.get("identity", {})
        documents.check_identity(identity)
        return BatchFileEntry(operation.section, operation.body, str(identity.get("name")))

    def _upsert(self, upsert: Upsert) -> BatchFileEntry:
        """The entry for `upsert`, its content inline or set apart for a container of its own."""
        document = dict(upsert.document)
        documents.check_document(document, content_apart=upsert.content is not None)
        name = str(document["documentId"])
        content, compression = upsert.content, upsert.compression_type
        data = document.get("data")
        if content is None and isinstance(data, str):
            content, compression = self._data_content(document, data.encode())
        if content is None:
            return BatchFileEntry("addOrUpdate", document, name)
        document.pop("data", None)
        if compression == "UNCOMPRESSED":
            content, compression = zlib.compress(content, ZLIB_LEVEL), "ZLIB"
        document["compressionType"] = compression
        if len(content) > self.max_bytes:
            raise ItemTooLargeError(name, len(content), self.max_bytes)
        if _base64_length(len(content)) <= INLINE_CONTENT_LIMIT_BYTES:
            document["compressedBinaryData"] = base64.b64encode(content).decode()
            return BatchFileEntry("addOrUpdate", document, name)
        return BatchFileEntry("addOrUpdate", document, name, content_apart=content)

    def _data_content(self, document: Mapping[str, Any], data: bytes) -> tuple[bytes | None, str]:
        """How to send an item's `data` (UTF-8): as content bytes and their compression, or (None, "") inline.

        Too large to inline, it must go as content. Compressed, it is the same content to the service
        (compressedBinaryData takes text as well as binary data), but only when the item states its
        fileExtension: the converter picks the format from it, and might guess otherwise without it.
        """
        if len(data) > INLINE_CONTENT_LIMIT_BYTES:
            return data, "UNCOMPRESSED"
        if self.compress_data and "fileExtension" in document:
            packed = zlib.compress(data, ZLIB_LEVEL)
            if _base64_length(len(packed)) < len(data):
                return packed, "ZLIB"
        return None, ""


class ContainerPusher:
    """Sends batches of items or identities through file containers.

    `containers` lists the fileId of every container this pusher created, in order, the one a
    failure happened on included, so that a dead-letter entry can name them.
    """

    def __init__(
        self,
        client: PushApiClient,
        *,
        max_bytes: int = CONTAINER_LIMIT_BYTES,
        directory: str | os.PathLike[str] | None = None,
        compress_data: bool = False,
    ) -> None:
        """
        client: the Push API client to call.
        max_bytes: the largest batch file (and content container) to send.
        directory: where batch files are written while they are built.
        compress_data: send the `data` of items that state their fileExtension compressed, when that is smaller.
        """
        self.client = client
        self.max_bytes = max_bytes
        self.directory = directory
        self.entries = Entries(max_bytes=max_bytes, compress_data=compress_data)
        self.containers: list[str] = []

    def push_documents(self, source_id: str, operations: Iterable[Upsert | Delete]) -> PushReport:
        """Push item upserts and deletes to `source_id` in as few containers as fit."""
        return self._push(ITEM_SECTIONS, operations, self._item_entry, source_id,
                          lambda file_id: self.client.push_documents_batch(source_id, file_id))

    def push_identities(self, provider_id: str, operations: Iterable[IdentityOp]) -> PushReport:
        """Push identity members, aliases and disables to `provider_id`."""
        return self._push(IDENTITY_SECTIONS, operations, self.entries.identity, provider_id,
                          lambda file_id: self.client.push_identities_batch(provider_id, file_id))

    def _push(self, sections: tuple[str, ...], operations: Iterable[Any], entry_of: Callable[[Any], BatchFileEntry],
              target: str, apply: Callable[[str], None]) -> PushReport:
        """Write each operation's entry into batch files, sending each file as it fills."""
        report = PushReport()
        writer = BatchFileWriter(sections, max_bytes=self.max_bytes, on_file=self._sender(report, apply, target),
                                 directory=self.directory)
        try:
            for operation in operations:
                try:
                    entry = entry_of(operation)
                    writer.add(entry.section, entry.body, name=entry.name)
                except InvalidInputError as exc:
                    report.rejected.append((operation, exc))
            writer.close()
        except PushApiError as exc:
            exc.file_ids = list(self.containers)
            raise
        finally:
            writer.discard()
        return report

    def _item_entry(self, operation: Upsert | Delete) -> BatchFileEntry:
        """An item's entry, its content over 5 MB uploaded to a container of its own first."""
        entry = self.entries.item(operation)
        if entry.content_apart is None:
            return entry
        body = {**entry.body, CONTENT_FILE_ID_FIELD: self._upload_content(entry.content_apart)}
        return BatchFileEntry(entry.section, body, entry.name)

    def _upload_content(self, content: bytes) -> str:
        """Put raw content bytes in a container of their own; return its fileId."""
        with tempfile.NamedTemporaryFile(prefix="pushsync-content-", dir=self.directory, delete=False) as handle:
            handle.write(content)
        try:
            container = self._new_container()
            self.client.upload(container, handle.name)
            return container.file_id
        finally:
            Path(handle.name).unlink(missing_ok=True)

    def _sender(self, report: PushReport, apply: Callable[[str], None], target: str) -> Callable[[BatchFile], None]:
        """A writer callback that sends each finished file and records it in `report`."""

        def send(batch: BatchFile) -> None:
            file_id = self._send_file(batch, apply)
            report.file_ids.append(file_id)
            report.bytes += batch.size
            for section, count in batch.counts.items():
                report.counts[section] = report.counts.get(section, 0) + count
            counts = {COUNT_FIELDS[name]: count for name, count in batch.counts.items()}
            log.info("file container %s accepted for %s: %s bytes=%d", file_id, target,
                     " ".join(f"{name}={count}" for name, count in counts.items()), batch.size,
                     extra={"fileId": file_id, "bytes": batch.size, **counts})

        return send

    def _send_file(self, batch: BatchFile, apply: Callable[[str], None]) -> str:
        """Create a container, upload `batch`, apply it; a vanished container gets a fresh one."""
        attempts_left = CONTAINER_ATTEMPTS
        while True:
            container = self._new_container()
            try:
                self.client.upload(container, batch.path)
                apply(container.file_id)
                return container.file_id
            except ContainerExpiredError:
                attempts_left -= 1
                if not attempts_left:
                    raise
                log.warning("file container %s vanished before use; sending through a new one", container.file_id,
                            extra={"fileId": container.file_id})

    def _new_container(self) -> FileContainer:
        container = self.client.create_file_container()
        self.containers.append(container.file_id)
        return container


def _base64_length(size: int) -> int:
    return 4 * ((size + 2) // 3)
