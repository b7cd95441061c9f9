"""Pushing a whole batch of items or identities through file containers, or a small one item by item.

`Entries` turns each operation into its batch-file entry without calling the service (so a
run can size its windows from them, see `worker/runs/packing.py`); `ContainerPusher` streams those
entries into batch files that fit one container each, sends item content that is too large to
inline through a container of its own, and for every finished file creates a container,
uploads, and calls the batch operation. A batch of one or two operations is cheaper by the
single-item calls (`PUT`/`DELETE .../documents?documentId=`, `.../permissions`, `.../mappings`):
one call each instead of three. An item that cannot be sent at all (too large, invalid) is
reported back instead of failing the batch, so the caller can dead-letter it alone.
"""

from __future__ import annotations

import base64
import logging
import os
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import Any

from producers.events.limits import CONTAINER_LIMIT_BYTES, INLINE_CONTENT_LIMIT_BYTES, REQUEST_BODY_LIMIT_BYTES
from worker.pushapi import documents
from worker.pushapi.batchfile import (
    DELETE_SECTIONS,
    IDENTITY_SECTIONS,
    ITEM_SECTIONS,
    BatchFile,
    BatchFileWriter,
    encode,
)
from worker.pushapi.client import FileContainer, PushApiClient
from worker.pushapi.errors import (
    ContainerExpiredError,
    InvalidInputError,
    InvalidRequestError,
    ItemTooLargeError,
    OrganizationPausedError,
    PushApiError,
)

log = logging.getLogger(__name__)

CONTAINER_ATTEMPTS = 3
"""Fresh containers tried for one file when the previous one expired or vanished."""
COUNT_FIELDS = {"addOrUpdate": "items", "delete": "deletes", "members": "identities", "mappings": "aliases",
                "deleted": "disables"}
"""What a log line calls the entries of each batch-file section."""
ZLIB_LEVEL = 6
ALIAS_SECTION = IDENTITY_SECTIONS[1]
"""The identity batch file's section of aliases, whose single-item call is PUT .../mappings."""
PROBE_LOOKAHEAD = 20
"""Operations a probing push looks through for one that adds (what a quota or an item limit refuses) to
send alone first: those before it are held in memory (an item too large to go alone holds its content),
the rest of the batch is streamed."""
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
    rejected: list[tuple[Any, PushApiError]] = field(default_factory=list)
    """Operations that cannot be sent, with the reason: too large or invalid (refused before sending), or
    refused by their single-item call."""


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


@dataclass(frozen=True)
class _Route:
    """How the operations of one kind of target travel: their sections, entries and calls."""

    target: str
    """The source or provider id."""
    sections: tuple[str, ...]
    entry: Callable[[Any], BatchFileEntry]
    """An operation's entry, built without calling the service."""
    apply: Callable[[str], None]
    """The batch call that applies an uploaded container, by fileId."""
    alone: Callable[[BatchFileEntry], None]
    """The single-item call that applies one entry by itself."""


class ContainerPusher:
    """Sends batches of items or identities through file containers, or with single-item calls.

    A batch of at most `single_max` operations goes by the single-item calls, one call each,
    instead of a container, its upload and the batch call. A push that `probe`s sends one added
    item (or identity) alone first: what a quota or an item limit refuses, refused for the price
    of one small call, before the rest is built and uploaded.

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
        single_max: int = 0,
    ) -> None:
        """
        client: the Push API client to call.
        max_bytes: the largest batch file (and content container) to send.
        directory: where batch files are written while they are built.
        compress_data: send the `data` of items that state their fileExtension compressed, when that is smaller.
        single_max: the most operations a batch sent by single-item calls holds; 0: always containers.
        """
        self.client = client
        self.max_bytes = max_bytes
        self.directory = directory
        self.entries = Entries(max_bytes=max_bytes, compress_data=compress_data)
        self.single_max = single_max
        self.containers: list[str] = []

    def push_documents(self, source_id: str, operations: Iterable[Upsert | Delete], *,
                       probe: bool = False) -> PushReport:
        """Push item upserts and deletes to `source_id` in as few calls as fit.

        probe: send one upsert alone before anything is uploaded (the source was paused)."""
        route = _Route(source_id, ITEM_SECTIONS, self.entries.item,
                       lambda file_id: self.client.push_documents_batch(source_id, file_id),
                       lambda entry: self._document_alone(source_id, entry))
        return self._push(route, operations, probe)

    def push_identities(self, provider_id: str, operations: Iterable[IdentityOp], *,
                        probe: bool = False) -> PushReport:
        """Push identity members, aliases and disables to `provider_id`.

        probe: send one identity or alias alone before anything is uploaded (the provider was paused)."""
        route = _Route(provider_id, IDENTITY_SECTIONS, self.entries.identity,
                       lambda file_id: self.client.push_identities_batch(provider_id, file_id),
                       lambda entry: self._identity_alone(provider_id, entry))
        return self._push(route, operations, probe)

    def _push(self, route: _Route, operations: Iterable[Any], probe: bool) -> PushReport:
        """Send a small batch by single-item calls, else the probe alone and the rest in batch files."""
        report = PushReport()
        entries = self._entries(route, operations, report)
        try:
            head = list(islice(entries, self.single_max + 1))
            if len(head) <= self.single_max and all(_fits_alone(entry) for _, entry in head):
                # In the order a batch file applies them: its sections one after the other.
                for operation, entry in sorted(head, key=lambda pair: route.sections.index(pair[1].section)):
                    self._alone(route, operation, entry, report)
                return report
            probing = _probe(head, entries) if probe else None
            if probing is not None:
                self._alone(route, *head.pop(probing), report)
            self._through_containers(route, chain(head, entries), report)
        except PushApiError as exc:
            exc.file_ids = list(self.containers)
            raise
        return report

    def _entries(self, route: _Route, operations: Iterable[Any],
                 report: PushReport) -> Iterator[tuple[Any, BatchFileEntry]]:
        """Each operation with its entry; an operation that cannot be sent at all goes into `report`."""
        for operation in operations:
            try:
                yield operation, route.entry(operation)
            except InvalidInputError as exc:
                report.rejected.append((operation, exc))

    def _alone(self, route: _Route, operation: Any, entry: BatchFileEntry, report: PushReport) -> None:
        """Send one entry by its single-item call and record it in `report`."""
        try:
            route.alone(entry)
        except InvalidRequestError as exc:
            if isinstance(exc, OrganizationPausedError):
                raise
            # Refused at once where a batch call would take it and reject it after its 202: this
            # entry alone cannot be sent, the others can.
            report.rejected.append((operation, exc))
            return
        report.counts[entry.section] = report.counts.get(entry.section, 0) + 1
        report.bytes += len(encode(entry.body))
        log.info("%s %s accepted for %s by a single-item call", COUNT_FIELDS[entry.section], entry.name, route.target,
                 extra={"singleCall": entry.section, "entry": entry.name})

    def _document_alone(self, source_id: str, entry: BatchFileEntry) -> None:
        if entry.section in DELETE_SECTIONS:
            self.client.delete_document(source_id, entry.name, delete_children=bool(entry.body["deleteChildren"]))
        else:
            self.client.add_document(source_id, entry.body)

    def _identity_alone(self, provider_id: str, entry: BatchFileEntry) -> None:
        if entry.section in DELETE_SECTIONS:
            self.client.disable_identity(provider_id, entry.body["identity"])
        elif entry.section == ALIAS_SECTION:
            self.client.add_alias(provider_id, entry.body)
        else:
            self.client.add_identity(provider_id, entry.body)

    def _through_containers(self, route: _Route, entries: Iterable[tuple[Any, BatchFileEntry]],
                            report: PushReport) -> None:
        """Write the entries into batch files, sending each file as it fills."""
        writer = BatchFileWriter(route.sections, max_bytes=self.max_bytes,
                                 on_file=self._sender(report, route.apply, route.target), directory=self.directory)
        try:
            for operation, entry in entries:
                try:
                    entry = self._content_sent(entry)
                    writer.add(entry.section, entry.body, name=entry.name)
                except InvalidInputError as exc:
                    report.rejected.append((operation, exc))
            writer.close()
        finally:
            writer.discard()

    def _content_sent(self, entry: BatchFileEntry) -> BatchFileEntry:
        """`entry`, its content over 5 MB uploaded to a container of its own first."""
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


def _probe(head: list[tuple[Any, BatchFileEntry]], entries: Iterator[tuple[Any, BatchFileEntry]]) -> int | None:
    """Where in `head` the first entry is that adds and fits a single-item call, looking on into
    `entries` (taking what it reads into `head`) up to PROBE_LOOKAHEAD; None when there is none that early."""
    for index, (_, entry) in enumerate(head):
        if _can_probe(entry):
            return index
    for pair in entries:
        head.append(pair)
        if _can_probe(pair[1]):
            return len(head) - 1
        if len(head) >= PROBE_LOOKAHEAD:
            return None
    return None


def _can_probe(entry: BatchFileEntry) -> bool:
    """Whether `entry` adds (what a quota or an item limit refuses) and can go alone."""
    return entry.section not in DELETE_SECTIONS and _fits_alone(entry)


def _fits_alone(entry: BatchFileEntry) -> bool:
    """Whether a single-item call can carry `entry`: its content inline, within the request limit."""
    return entry.content_apart is None and len(encode(entry.body)) <= REQUEST_BODY_LIMIT_BYTES


def _base64_length(size: int) -> int:
    return 4 * ((size + 2) // 3)
