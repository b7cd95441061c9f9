"""Batches are streamed into files that each fit one container; oversized items travel alone."""

from __future__ import annotations

import base64
import json
import os
import zlib

import pytest

from tests.support.scripted_server import UPLOAD_PREFIX
from worker.pushapi import errors
from worker.pushapi.batches import ContainerPusher, Delete, IdentityOp, Upsert
from worker.pushapi.batchfile import ITEM_SECTIONS, BatchFileWriter

MB = 1024 * 1024
LIMIT = 256 * MB


def uploads(server):
    return server.matching("PUT", "^" + UPLOAD_PREFIX)


def batch_calls(server):
    return server.matching("PUT", r"/documents/batch$")


def test_300_mb_batch_becomes_two_containers_under_the_limit(client, server, tmp_path):
    text = "x" * MB
    operations = (Upsert({"documentId": f"https://example.com/{i}", "data": text}) for i in range(300))
    report = ContainerPusher(client, directory=tmp_path).push_documents("src", operations)
    sizes = [request.size for request in uploads(server)]
    assert len(sizes) == 2 and all(size <= LIMIT for size in sizes)
    assert sum(sizes) > 300 * MB
    assert report.counts == {"addOrUpdate": 300, "delete": 0}
    assert [call.query["fileId"][0] for call in batch_calls(server)] == report.file_ids
    assert os.listdir(tmp_path) == []


def test_7_mb_item_goes_through_its_own_container(client, server, tmp_path):
    content = os.urandom(7 * MB)
    report = ContainerPusher(client, directory=tmp_path).push_documents(
        "src", [Upsert({"documentId": "https://example.com/big", "title": "Big"}, content=content),
                Upsert({"documentId": "https://example.com/small", "data": "small"})])
    first, second = uploads(server)
    assert first.size == len(zlib.compress(content, 6))
    batch = second.json()
    big, small = batch["addOrUpdate"]
    assert big["compressionType"] == "ZLIB" and "compressedBinaryData" not in big
    assert big["compressedBinaryDataFileId"] == first.path.removeprefix(UPLOAD_PREFIX)
    assert small == {"documentId": "https://example.com/small", "data": "small"}
    assert report.rejected == [] and len(report.file_ids) == 1


def test_small_content_is_compressed_inline(client, server):
    ContainerPusher(client).push_documents("src", [Upsert({"documentId": "file://a/b.txt"}, content=b"hello " * 100)])
    (upload,) = uploads(server)
    (item,) = upload.json()["addOrUpdate"]
    assert item["compressionType"] == "ZLIB"
    assert zlib.decompress(base64.b64decode(item["compressedBinaryData"])) == b"hello " * 100


def test_data_over_5_mb_is_compressed_inline_when_it_fits(client, server):
    text = "y" * (6 * MB)
    ContainerPusher(client).push_documents("src", [Upsert({"documentId": "https://example.com/t", "data": text})])
    (upload,) = uploads(server)
    (item,) = upload.json()["addOrUpdate"]
    assert "data" not in item and item["compressionType"] == "ZLIB"
    assert zlib.decompress(base64.b64decode(item["compressedBinaryData"])).decode() == text


def test_data_with_a_file_extension_is_sent_compressed_when_that_is_smaller(client, server):
    text = "<p>Pushed again whenever the article changes, with the same paragraph.</p>" * 40
    ContainerPusher(client, compress_data=True).push_documents("src", [
        Upsert({"documentId": "https://example.com/page", "data": text, "fileExtension": ".html", "title": "Page"}),
    ])
    (upload,) = uploads(server)
    (item,) = upload.json()["addOrUpdate"]
    assert "data" not in item and item["compressionType"] == "ZLIB" and item["fileExtension"] == ".html"
    assert zlib.decompress(base64.b64decode(item["compressedBinaryData"])).decode() == text
    assert item["title"] == "Page"
    assert len(item["compressedBinaryData"]) < len(text) / 4


@pytest.mark.parametrize("document", [
    {"documentId": "https://example.com/no-extension", "data": "same words again and again " * 40},
    {"documentId": "https://example.com/tiny", "data": "short", "fileExtension": ".txt"},
    {"documentId": "https://example.com/random", "fileExtension": ".txt",
     "data": base64.b64encode(os.urandom(3000)).decode()},
], ids=["no file extension", "too small to gain", "incompressible"])
def test_data_stays_inline_text_when_compressing_would_not_be_safe_or_smaller(client, server, document):
    ContainerPusher(client, compress_data=True).push_documents("src", [Upsert(document)])
    (upload,) = uploads(server)
    assert upload.json()["addOrUpdate"] == [document]


def test_data_is_sent_as_it_is_when_compression_is_off(client, server):
    document = {"documentId": "https://example.com/page", "data": "same words again " * 40, "fileExtension": ".txt"}
    ContainerPusher(client, compress_data=False).push_documents("src", [Upsert(document)])
    (upload,) = uploads(server)
    assert upload.json()["addOrUpdate"] == [document]


def test_incompressible_data_over_5_mb_goes_through_its_own_container(client, server):
    text = base64.b64encode(os.urandom(5 * MB)).decode()
    ContainerPusher(client).push_documents("src", [Upsert({"documentId": "https://example.com/t", "data": text})])
    content, batch = uploads(server)
    (item,) = batch.json()["addOrUpdate"]
    assert "data" not in item and item["compressedBinaryDataFileId"] == content.path.removeprefix(UPLOAD_PREFIX)
    assert zlib.decompress(content.body).decode() == text


def test_300_mb_item_is_rejected_alone_and_the_rest_lands(client, server):
    huge = bytes(300 * MB)
    report = ContainerPusher(client).push_documents("src", [
        Upsert({"documentId": "https://example.com/ok-1", "data": "1"}),
        Upsert({"documentId": "https://example.com/huge"}, content=huge, compression_type="DEFLATE"),
        Delete("https://example.com/gone"),
    ])
    ((operation, error),) = report.rejected
    assert isinstance(error, errors.ItemTooLargeError)
    assert error.document_id == "https://example.com/huge" and "huge" in str(error)
    (upload,) = uploads(server)
    batch = upload.json()
    assert [item["documentId"] for item in batch["addOrUpdate"]] == ["https://example.com/ok-1"]
    assert batch["delete"] == [{"documentId": "https://example.com/gone", "deleteChildren": False}]


def test_invalid_items_are_reported_not_sent(client, server):
    report = ContainerPusher(client).push_documents("src", [
        Upsert({"documentId": "not a uri", "data": "x"}),
        Upsert({"documentId": "https://example.com/meta", "data": "x", "author": {"name": "x"}}),
        Upsert({"documentId": "https://example.com/fine", "data": "x"}),
    ])
    assert [str(op.document["documentId"]) for op, _ in report.rejected] == ["not a uri", "https://example.com/meta"]
    (upload,) = uploads(server)
    assert [i["documentId"] for i in upload.json()["addOrUpdate"]] == ["https://example.com/fine"]


def test_vanished_container_gets_a_fresh_one(client, server):
    server.script("PUT", r"/documents/batch$", 404, error_code="FILE_NOT_FOUND")
    report = ContainerPusher(client).push_documents("src", [Upsert({"documentId": "https://example.com/a", "data": "a"})])
    calls = batch_calls(server)
    assert [c.status for c in calls] == [404, 202]
    assert calls[0].query["fileId"] != calls[1].query["fileId"]
    assert report.file_ids == [calls[1].query["fileId"][0]]


def test_identity_batches_have_their_three_sections(client, server):
    group = {"name": "g", "type": "GROUP", "additionalInfo": {}}
    user = {"name": "u", "type": "USER", "additionalInfo": {}}
    report = ContainerPusher(client).push_identities("prov", [
        IdentityOp("members", {"identity": group, "members": [user], "wellKnowns": []}),
        IdentityOp("mappings", {"identity": user, "mappings": [{"name": "u2", "type": "USER", "provider": "p2"}]}),
        IdentityOp("deleted", {"identity": user}),
    ])
    (upload,) = uploads(server)
    assert upload.json() == {
        "members": [{"identity": group, "members": [user], "wellKnowns": []}],
        "mappings": [{"identity": user, "mappings": [{"name": "u2", "type": "USER", "provider": "p2"}]}],
        "deleted": [{"identity": user}],
    }
    assert server.matching("PUT", r"/providers/prov/permissions/batch$")[0].query["fileId"] == report.file_ids


@pytest.mark.parametrize("count", [0, 1, 5, 200])
def test_writer_files_are_valid_json_and_never_over_the_limit(tmp_path, count):
    finished = []

    def keep(batch):
        finished.append((batch.size, batch.path.stat().st_size, json.loads(batch.path.read_bytes()), batch.counts))

    writer = BatchFileWriter(ITEM_SECTIONS, max_bytes=2000, on_file=keep, directory=tmp_path)
    for i in range(count):
        writer.add("addOrUpdate", {"documentId": f"https://e.com/{i}", "data": "z" * (i % 50)}, name=str(i))
        writer.add("delete", {"documentId": f"https://e.com/d{i}", "deleteChildren": False}, name=str(i))
    writer.close()
    assert all(size == on_disk <= 2000 for size, on_disk, _, _ in finished)
    assert sum(len(doc["addOrUpdate"]) for _, _, doc, _ in finished) == count
    assert sum(len(doc["delete"]) for _, _, doc, _ in finished) == count
    assert all(c == {"addOrUpdate": len(d["addOrUpdate"]), "delete": len(d["delete"])} for _, _, d, c in finished)
    assert os.listdir(tmp_path) == []


def test_a_batch_of_two_goes_by_single_item_calls_adds_first(client, server):
    report = ContainerPusher(client, single_max=2).push_documents(
        "src", [Delete("https://example.com/gone", delete_children=True),
                Upsert({"documentId": "https://example.com/kept", "data": "kept"})])
    (put,) = server.matching("PUT", r"/sources/src/documents$")
    (removal,) = server.matching("DELETE", r"/sources/src/documents$")
    assert put.query["documentId"] == ["https://example.com/kept"] and put.json() == {"data": "kept"}
    assert removal.query == {"documentId": ["https://example.com/gone"], "deleteChildren": ["true"]}
    assert server.requests.index(put) < server.requests.index(removal)
    assert server.matching("POST", r"/files$") == [] and uploads(server) == []
    assert report.counts == {"addOrUpdate": 1, "delete": 1} and report.file_ids == []


def test_a_batch_of_three_or_one_too_large_to_go_alone_goes_through_a_container(client, server):
    three = [Upsert({"documentId": f"https://example.com/{n}", "data": "x"}) for n in range(3)]
    ContainerPusher(client, single_max=2).push_documents("src", three)
    big = [Upsert({"documentId": "https://example.com/big"}, content=os.urandom(7 * MB))]
    ContainerPusher(client, single_max=2).push_documents("src", big)
    assert server.matching("PUT", r"/sources/src/documents$") == []
    assert len(batch_calls(server)) == 2


def test_a_probe_is_the_first_add_alone_and_its_refusal_uploads_nothing(client, server):
    server.script("PUT", r"/sources/src/documents$", 412, error_code="DOCUMENT_LIMIT_EXCEEDED")
    operations = [Delete("https://example.com/d0"), Delete("https://example.com/d1"),
                  *(Upsert({"documentId": f"https://example.com/{n}", "data": "x"}) for n in range(5))]
    with pytest.raises(errors.DocumentLimitExceeded):
        ContainerPusher(client, single_max=2).push_documents("src", operations, probe=True)
    (probe,) = server.requests
    assert probe.query["documentId"] == ["https://example.com/0"]
    report = ContainerPusher(client, single_max=2).push_documents("src", operations, probe=True)
    (upload,) = uploads(server)
    sent = upload.json()
    assert [item["documentId"] for item in sent["addOrUpdate"]] == [f"https://example.com/{n}" for n in range(1, 5)]
    assert len(sent["delete"]) == 2
    assert report.counts == {"addOrUpdate": 5, "delete": 2}


def test_an_item_its_single_call_refuses_is_reported_alone_and_a_paused_organization_is_not(client, server):
    server.script("PUT", r"/sources/src/documents$", 400, error_code="INVALID_JSON")
    two = [Upsert({"documentId": "https://example.com/a", "data": "a"}),
           Upsert({"documentId": "https://example.com/b", "data": "b"})]
    report = ContainerPusher(client, single_max=2).push_documents("src", two)
    assert [operation.document_id if isinstance(operation, Delete) else operation.document["documentId"]
            for operation, _ in report.rejected] == ["https://example.com/a"]
    assert report.counts == {"addOrUpdate": 1}
    server.script("PUT", r"/sources/src/documents$", 400, error_code="ORGANIZATION_IS_PAUSED")
    with pytest.raises(errors.OrganizationPausedError):
        ContainerPusher(client, single_max=2).push_documents("src", two)


def test_a_small_batch_of_non_ascii_text_fits_its_single_call_as_sent(clean_emulator):
    """The single-item call's body is measured as it is sent: text of 3-byte characters, 4 MB in UTF-8, would be
    twice that \\u-escaped, over the service's 6 MB request limit (413, then the whole batch dead-lettered)."""
    from worker.pushapi.client import PushApiClient

    clean_emulator.create_source("src")
    api = PushApiClient(base_url=clean_emulator.push_url, organization_id=clean_emulator.organization,
                        api_key=clean_emulator.api_key, retry_budget_seconds=2)
    text = "日本語" * (4 * MB // 9)
    report = ContainerPusher(api, single_max=2).push_documents(
        "src", [Upsert({"documentId": "https://example.com/ja", "data": text})])
    assert report.counts.get("addOrUpdate") == 1 and report.rejected == []
    api.close()
