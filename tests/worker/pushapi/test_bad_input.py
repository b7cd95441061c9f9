"""Bodies that break the contract are refused with a clear error before any request is sent."""

from __future__ import annotations

import time

import pytest

from worker.pushapi.errors import InvalidInputError

GOOD = {"documentId": "https://example.com/a", "data": "text"}


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"documentId": "https://example.com/a", "title": "no content"}, "no content"),
        ({"documentId": "a/b/c"}, "is not a URI"),
        ({"documentId": None}, "is not a URI"),
        ({**GOOD, "author": {"name": "x"}}, "metadata 'author' must be a primitive"),
        ({**GOOD, "tags": [1, {"a": 1}]}, "metadata 'tags' must be a primitive"),
        ({**GOOD, "orderingId": 5}, "'orderingId' is a reserved key"),
        ({**GOOD, "Permissions": "x"}, "'Permissions' is a reserved key"),
        ({**GOOD, "Title": "a", "title": "b"}, "are the same key"),
        ({**GOOD, "data": "a", "compressedBinaryData": "YQ=="}, "more than one field"),
        ({**GOOD, "compressionType": "zip"}, "compressionType 'zip'"),
        ({**GOOD, "fileExtension": "html"}, "must start with a dot"),
        ({**GOOD, "parentId": "folder"}, "is not a URI"),
        ({**GOOD, "permissions": []}, "non-empty array"),
        ({**GOOD, "permissions": [{"allowedPermissions": [{"identity": str(i)} for i in range(5001)]}]}, "over the limit"),
    ],
)
def test_bad_documents_are_refused_before_sending(client, server, document, reason):
    with pytest.raises(InvalidInputError, match=reason):
        client.add_document("src", document)
    assert server.requests == []


def test_unknown_status_type_is_refused(client, server):
    with pytest.raises(InvalidInputError, match="statusType 'RESCAN'"):
        client.set_source_status("src", "RESCAN")
    assert server.requests == []


def test_future_ordering_id_is_refused(client, server):
    future = int(time.time() * 1000) + 3_600_000
    with pytest.raises(InvalidInputError, match="in the future"):
        client.delete_documents_older_than("src", future)
    with pytest.raises(InvalidInputError, match="non-negative integer"):
        client.push_documents_batch("src", "f", ordering_id="12")
    assert server.requests == []


def test_bad_identity_is_refused(client, server):
    with pytest.raises(InvalidInputError, match="type 'ADMIN'"):
        client.add_identity("prov", {"identity": {"name": "a", "type": "ADMIN"}})
    with pytest.raises(InvalidInputError, match="non-empty 'name'"):
        client.disable_identity("prov", {"type": "USER"})
    assert server.requests == []


def test_complete_permission_model_is_counted(client, server):
    levels = [{"name": "L1", "permissionSets": [
        {"allowedPermissions": [{"identity": str(i)} for i in range(3000)]},
        {"deniedPermissions": [{"identity": str(i)} for i in range(2001)]},
    ]}]
    with pytest.raises(InvalidInputError, match="5001 permissions"):
        client.add_document("src", {**GOOD, "permissions": levels})
