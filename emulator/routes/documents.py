"""Item operations: add/update or delete one item, a batch of items, old items."""

from __future__ import annotations

from functools import partial

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator import indexing
from emulator.batchfile import BatchEntry
from emulator.bodies import parse_json, read_limited
from emulator.index import Source
from emulator.item_body import BATCH_SECTIONS, COMPRESSION_TYPES, DeleteRecord, parse_item
from emulator.limits import REQUEST_BODY_LIMIT_BYTES
from emulator.paths import ORGANIZATION_PREFIX
from emulator.routes.calls import (
    PushCall,
    accepted,
    batch_entries,
    boolean,
    choice,
    document_uri,
    older_than,
    push_call,
)

DOCUMENTS = ORGANIZATION_PREFIX + "/sources/{sourceId}/documents"


async def put_document(request: Request) -> Response:
    """PUT .../documents?documentId=: add or update one item."""
    call = await push_call(request, consumes_json=True)
    source = call.organization.source(request.path_params["sourceId"])
    document_id = document_uri(request)
    operation_id = call.ordering_id()
    compression = choice(request, "compressionType", COMPRESSION_TYPES, required=False)
    body = parse_json(await read_limited(request, REQUEST_BODY_LIMIT_BYTES))
    record = parse_item(body, document_id=document_id, compression_type=compression)
    return _submit_changes(call, source, [record], operation_id, batch_file=None)


async def delete_document(request: Request) -> Response:
    """DELETE .../documents?documentId=&deleteChildren=: delete one item (and the items under its URI)."""
    call = await push_call(request, consumes_json=False)
    source = call.organization.source(request.path_params["sourceId"])
    record = DeleteRecord(document_uri(request), boolean(request, "deleteChildren", False))
    return _submit_changes(call, source, [record], call.ordering_id(), batch_file=None)


async def put_batch(request: Request) -> Response:
    """PUT .../documents/batch?fileId=: apply a batch file of addOrUpdate and delete entries.

    Each entry is judged when the batch is applied, as the service's indexing pipeline does: an
    invalid one is rejected alone, after the 202, into the source's rejections."""
    call = await push_call(request, consumes_json=True)
    source = call.organization.source(request.path_params["sourceId"])
    file_id, operation_id, entries = await batch_entries(call, BATCH_SECTIONS)
    return _submit_changes(call, source, entries, operation_id, batch_file=file_id)


async def delete_older_than(request: Request) -> Response:
    """DELETE .../documents/olderthan?orderingId=&queueDelay=: delete items older than orderingId."""
    call = await push_call(request, consumes_json=True)
    source = call.organization.source(request.path_params["sourceId"])
    return older_than(call, partial(indexing.delete_older_than, source))


def _submit_changes(call: PushCall, source: Source, changes: list[indexing.Change] | list[BatchEntry],
                    operation_id: int, batch_file: str | None) -> Response:
    """Check the allowances, consume the containers the call uses, and queue the changes.

    `batch_file`: the batch call's container, consumed with the content containers its items name.
    Every check comes before the first change of state, so a refused call leaves nothing used."""
    emulator, organization = call.emulator, call.organization
    adds = indexing.count_adds(changes)
    if adds:
        organization.check_item_allowance(emulator.limits.item_allowance)
        emulator.quotas.check_documents(emulator.limits.daily_document_limit)
    blobs = emulator.containers.take_all(([batch_file] if batch_file else []) + indexing.content_files(changes))
    if batch_file is not None:
        blobs.pop(batch_file).unlink(missing_ok=True)  # read already: the container is gone
    admitted = emulator.quotas.admit_documents(adds, emulator.limits.daily_document_limit)
    operation = indexing.ItemOperation(source, changes, operation_id, blobs, admitted)
    emulator.scheduler.submit(partial(indexing.apply_items, emulator, organization, operation))
    return accepted()


ROUTES = [
    Route(DOCUMENTS, put_document, methods=["PUT"]),
    Route(DOCUMENTS, delete_document, methods=["DELETE"]),
    Route(DOCUMENTS + "/batch", put_batch, methods=["PUT"]),
    Route(DOCUMENTS + "/olderthan", delete_older_than, methods=["DELETE"]),
]
