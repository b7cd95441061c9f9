"""Items: the single-item and batch operations, their validation, orderingId, olderthan and the
asynchronous rejections, against the emulator over real HTTP."""

from __future__ import annotations

import base64
import gzip
import json
import lzma
import time
import zlib

import pytest
import requests

from tests.emulator.conftest import PROVIDER, SOURCE, PushApi, assert_error
from tests.plugins.emulator import EmulatorServer

DOC = "https://example.com/doc"
MIB = 1024 * 1024
ALICE = {"identity": "alice@example.com", "identityType": "User", "securityProvider": PROVIDER}


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def test_an_item_is_accepted_then_indexed_later_with_its_metadata_and_content(api: PushApi) -> None:
    api.server.configure(applyDelay=0.5)
    before_ms = int(time.time() * 1000)
    body = {"data": "<p>hello</p>", "title": "Hello", "tags": ["a", "b"], "size": 3, "fileExtension": ".html",
            "parentId": "https://example.com/", "permissions": [{"allowAnonymous": False, "allowedPermissions": [ALICE]}]}
    response = api.put_item(DOC, body)
    assert response.status_code == 202 and response.json() == {}
    listing = requests.get(f"{api.server.url}/_emulator/organizations/{api.server.organization}/sources/{SOURCE}/items")
    assert listing.json()["items"] == [], "202 means accepted, not indexed"
    (item,) = api.server.items(SOURCE)
    assert item["documentId"] == DOC
    assert item["metadata"] == {"title": "Hello", "tags": ["a", "b"], "size": 3}
    assert item["content"] == "<p>hello</p>" and item["fileExtension"] == ".html"
    assert item["parentId"] == "https://example.com/" and item["permissions"] == body["permissions"]
    assert before_ms <= item["orderingId"] <= int(time.time() * 1000), "the service assigns epoch ms"


@pytest.mark.parametrize(
    ("compression", "encode"),
    [
        ("UNCOMPRESSED", lambda data: data),
        ("DEFLATE", raw_deflate),
        ("GZIP", gzip.compress),
        ("LZMA", lzma.compress),
        ("ZLIB", zlib.compress),
    ],
)
def test_compressed_content_is_decoded(api: PushApi, compression: str, encode) -> None:
    text = "compressed content é " * 50
    body = {"compressedBinaryData": base64.b64encode(encode(text.encode())).decode(), "compressionType": compression}
    assert api.put_item(DOC, body).status_code == 202
    assert api.server.item(SOURCE, DOC)["content"] == text


def test_compression_type_defaults_to_zlib_and_may_be_a_query_parameter(api: PushApi) -> None:
    api.put_item(DOC, {"compressedBinaryData": base64.b64encode(zlib.compress(b"zlib")).decode()})
    api.put_item(DOC + "2", {"compressedBinaryData": base64.b64encode(gzip.compress(b"gz")).decode()}, compressionType="GZIP")
    assert [item["content"] for item in api.server.items(SOURCE)] == ["zlib", "gz"]


def test_binary_content_is_shown_in_base64(api: PushApi) -> None:
    payload = bytes(range(256))
    api.put_item(DOC, {"compressedBinaryData": base64.b64encode(payload).decode(), "compressionType": "UNCOMPRESSED"})
    item = api.server.item(SOURCE, DOC)
    assert item["content"] is None and base64.b64decode(item["contentBase64"]) == payload


def test_content_that_does_not_decode_is_rejected_after_the_202(api: PushApi) -> None:
    assert api.put_item(DOC, {"compressedBinaryData": base64.b64encode(b"not zlib").decode()}).status_code == 202
    assert api.server.items(SOURCE) == []
    (rejection,) = api.server.rejections(SOURCE)
    assert rejection["documentId"] == DOC and rejection["reason"] == "INVALID_CONTENT"


@pytest.mark.parametrize(
    ("raw_body", "why"),
    [
        (b'{"data": "x", ', "malformed JSON"),
        (b'{"data": "x", "title": "a", "title": "b"}', "a key given twice"),
        (b'{"data": "x", "Title": "a", "title": "b"}', "keys compare case-insensitively"),
        (b'{"Data": "x"}', "a reserved key in another case used as metadata"),
        (b'{"data": "x", "orderingId": 5}', "orderingId is reserved"),
        (b'{"data": "x", "author": {"name": "a"}}', "a metadata object"),
        (b'{"data": "x", "authors": [{"name": "a"}]}', "an array of objects as metadata"),
        (b'{"data": "x", "compressedBinaryData": "eA=="}', "content in more than one field"),
        (b'{"title": "no content"}', "no content"),
        (b'{"data": "x", "documentId": "https://example.com/other"}', "documentId differs from the parameter"),
        (b'{"compressedBinaryData": "eA==", "compressionType": "zlib"}', "compressionType is case-sensitive"),
        (b'{"data": "x", "fileExtension": "html"}', "fileExtension without its dot"),
        (b'{"data": "x", "parentId": "not a uri"}', "parentId that is not a URI"),
        (b'{"data": "x", "permissions": []}', "an empty permissions array"),
        (b'{"data": "x", "permissions": [{"allowedPermissions": [{"identity": "a", "identityType": "Robot"}]}]}',
         "an unknown identityType"),
        (b'{"data": "x", "permissions": [{"alowedPermissions": []}]}', "a misspelt permission key"),
        (b'{"data": NaN}', "NaN is not JSON"),
        (b'[{"data": "x"}]', "a body that is not an object"),
        (b"\xff\xfe", "bytes that are not UTF-8"),
    ],
)
def test_invalid_item_bodies_are_400_invalid_json(api: PushApi, raw_body: bytes, why: str) -> None:
    response = api.call("PUT", f"/sources/{SOURCE}/documents", params={"documentId": DOC}, data=raw_body)
    assert_error(response, 400, "INVALID_JSON")
    assert api.put_item(DOC, {"data": "still serving"}).status_code == 202, why


def test_identity_type_is_accepted_in_any_case(api: PushApi) -> None:
    permissions = [{"allowedPermissions": [{**ALICE, "identityType": "USER"}], "deniedPermissions": []}]
    assert api.put_item(DOC, {"data": "x", "permissions": permissions}).status_code == 202
    complete_model = [{"name": "level", "permissionSets": [{"allowAnonymous": True}]}]
    assert api.put_item(DOC + "2", {"data": "x", "permissions": complete_model}).status_code == 202
    assert len(api.server.items(SOURCE)) == 2


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"documentId": "not-a-uri"}, "documentId must be a URI"),
        ({}, "documentId is required"),
        ({"documentId": DOC, "orderingId": "soon"}, "orderingId is an integer"),
        ({"documentId": DOC, "compressionType": "BROTLI"}, "an unknown compressionType"),
    ],
)
def test_invalid_parameters_are_400(api: PushApi, params: dict, why: str) -> None:
    assert_error(api.call("PUT", f"/sources/{SOURCE}/documents", params=params, json={"data": "x"}), 400, "INVALID_JSON")


def test_inline_content_over_5_mb_is_refused(api: PushApi) -> None:
    body = {"data": "x" * (5 * MIB + 1)}
    assert_error(api.put_item(DOC, body), 400, "INVALID_JSON")


def test_a_single_item_request_over_6_mb_is_413(api: PushApi) -> None:
    body = {"data": "x" * (4 * MIB), "padding": "y" * (2 * MIB + 10)}
    assert_error(api.put_item(DOC, body), 413)
    assert api.put_item(DOC, {"data": "after"}).status_code == 202


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_json_operations_need_a_json_content_type(api: PushApi, content_type: str | None) -> None:
    headers = {"Authorization": f"Bearer {api.server.api_key}"}
    if content_type:
        headers["Content-Type"] = content_type
    response = requests.put(f"{api.base}/sources/{SOURCE}/documents", params={"documentId": DOC},
                            data=b'{"data": "x"}', headers=headers)
    assert_error(response, 415)


def test_a_charset_parameter_is_fine(api: PushApi) -> None:
    response = api.call("PUT", f"/sources/{SOURCE}/documents", params={"documentId": DOC}, data=b'{"data": "x"}',
                        headers={"Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 202


@pytest.mark.parametrize(
    ("authorization", "error_code"),
    [(None, "UNAUTHORIZED"), ("Basic dXNlcjpwYXNz", "UNAUTHORIZED"), ("Bearer wrong-key", "INVALID_TOKEN")],
)
def test_a_missing_or_wrong_key_is_401(api: PushApi, authorization: str | None, error_code: str) -> None:
    headers = {"Content-Type": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    response = requests.put(f"{api.base}/sources/{SOURCE}/documents", params={"documentId": DOC},
                            json={"data": "x"}, headers=headers)
    body = assert_error(response, 401, error_code)
    assert api.server.api_key not in json.dumps(body)


def test_unknown_organization_or_source_is_404(api: PushApi) -> None:
    unknown_org = api.session.put(f"{api.server.push_url}/organizations/nope/sources/{SOURCE}/documents",
                                  params={"documentId": DOC}, json={"data": "x"})
    assert_error(unknown_org, 404, "ORGANIZATION_NOT_FOUND")
    assert_error(api.call("PUT", "/sources/nope/documents", params={"documentId": DOC}, json={"data": "x"}),
                 404, "SOURCE_NOT_FOUND")


def test_an_older_operation_never_overwrites_a_newer_one(api: PushApi) -> None:
    api.put_item(DOC, {"data": "v2"}, orderingId=200)
    api.put_item(DOC, {"data": "v1"}, orderingId=100)
    api.call("DELETE", f"/sources/{SOURCE}/documents", params={"documentId": DOC, "orderingId": 150})
    item = api.server.item(SOURCE, DOC)
    assert (item["content"], item["orderingId"]) == ("v2", 200)
    api.call("DELETE", f"/sources/{SOURCE}/documents", params={"documentId": DOC, "orderingId": 300})
    api.put_item(DOC, {"data": "v-resurrected"}, orderingId=250)
    assert api.server.items(SOURCE) == [], "the delete's orderingId is remembered"
    api.put_item(DOC, {"data": "v4"}, orderingId=400)
    assert api.server.item(SOURCE, DOC)["content"] == "v4"


def test_delete_children_deletes_the_items_under_the_uri(api: PushApi) -> None:
    for document_id in ("file://folder", "file://folder/a.txt", "file://folder/sub/b.txt", "file://folder-2/c.txt"):
        api.put_item(document_id, {"data": "x"})
    api.call("DELETE", f"/sources/{SOURCE}/documents", params={"documentId": "file://folder/sub"})
    assert len(api.server.items(SOURCE)) == 4, "without deleteChildren, only that item (there is none)"
    api.call("DELETE", f"/sources/{SOURCE}/documents", params={"documentId": "file://folder", "deleteChildren": "true"})
    assert [item["documentId"] for item in api.server.items(SOURCE)] == ["file://folder-2/c.txt"]


def test_olderthan_deletes_what_was_last_touched_before_after_queue_delay(api: PushApi) -> None:
    api.put_item(DOC + "/old", {"data": "x"}, orderingId=100)
    api.put_item(DOC + "/new", {"data": "x"}, orderingId=200)
    response = api.call("DELETE", f"/sources/{SOURCE}/documents/olderthan", params={"orderingId": 150, "queueDelay": 10})
    assert response.status_code == 202
    assert len(api.server.items(SOURCE)) == 2, "not before queueDelay minutes"
    api.server.advance_clock(9 * 60)
    assert len(api.server.items(SOURCE)) == 2
    api.server.advance_clock(60)
    assert [item["documentId"] for item in api.server.items(SOURCE)] == [DOC + "/new"]


def test_olderthan_waits_15_minutes_by_default_and_needs_an_ordering_id(api: PushApi) -> None:
    api.put_item(DOC, {"data": "x"}, orderingId=100)
    assert_error(api.call("DELETE", f"/sources/{SOURCE}/documents/olderthan"), 400, "INVALID_JSON")
    api.call("DELETE", f"/sources/{SOURCE}/documents/olderthan", params={"orderingId": 150})
    api.server.advance_clock(14 * 60)
    assert len(api.server.items(SOURCE)) == 1
    api.server.advance_clock(60)
    assert api.server.items(SOURCE) == []


def test_an_olderthan_in_the_future_blocks_the_source_until_then(api: PushApi) -> None:
    future = int(time.time() * 1000) + 3_600_000
    api.call("DELETE", f"/sources/{SOURCE}/documents/olderthan", params={"orderingId": future, "queueDelay": 0})
    api.put_item(DOC, {"data": "x"})
    assert api.server.items(SOURCE) == []
    assert api.server.rejections(SOURCE)[0]["reason"] == "OLDER_THAN_A_DELETE"
    api.put_item(DOC, {"data": "x"}, orderingId=future)
    assert len(api.server.items(SOURCE)) == 1


def test_a_batch_applies_its_entries_and_rejects_invalid_ones_alone(api: PushApi) -> None:
    api.put_item(DOC + "/gone", {"data": "x"})
    batch = {
        "addOrUpdate": [
            {"documentId": DOC + "/1", "data": "one", "title": "One"},
            {"documentId": "not a uri", "data": "bad"},
            {"documentId": DOC + "/2", "data": "two", "meta": {"object": True}},
            {"documentId": DOC + "/3", "compressedBinaryData": base64.b64encode(zlib.compress(b"three")).decode(),
             "compressionType": "ZLIB"},
        ],
        "delete": [{"documentId": DOC + "/gone", "deleteChildren": False}],
    }
    assert api.push_batch(batch, orderingId=5_000_000_000_000).status_code == 202
    items = api.server.items(SOURCE)
    assert [(item["documentId"], item["content"]) for item in items] == [(DOC + "/1", "one"), (DOC + "/3", "three")]
    assert {item["orderingId"] for item in items} == {5_000_000_000_000}
    rejections = api.server.rejections(SOURCE)
    assert [(r["documentId"], r["reason"]) for r in rejections] == [("not a uri", "INVALID_ITEM"), (DOC + "/2", "INVALID_ITEM")]


def test_a_batch_item_with_a_key_given_twice_is_rejected(api: PushApi) -> None:
    raw = b'{"addOrUpdate": [{"documentId": "https://e.com/1", "data": "a", "data": "b"}]}'
    file_id = api.upload(raw)
    assert api.call("PUT", f"/sources/{SOURCE}/documents/batch", params={"fileId": file_id}).status_code == 202
    assert api.server.items(SOURCE) == []
    assert api.server.rejections(SOURCE)[0]["reason"] == "INVALID_ITEM"


@pytest.mark.parametrize(
    "raw",
    [b"not json", b'["addOrUpdate"]', b'{"addOrUpdate": {"documentId": "x"}}', b'{"addOrUpdate": ["x"]}',
     b'{"items": []}', b'{"addOrUpdate": [], "addOrUpdate": []}', b'{"addOrUpdate": [{"documentId": "a"}'],
)
def test_a_batch_file_of_the_wrong_shape_is_400_and_leaves_the_container_unused(api: PushApi, raw: bytes) -> None:
    file_id = api.upload(raw)
    for _ in range(2):
        assert_error(api.call("PUT", f"/sources/{SOURCE}/documents/batch", params={"fileId": file_id}), 400, "INVALID_JSON")


def test_items_with_over_5000_permissions_are_rejected_after_the_202(api: PushApi) -> None:
    allowed = [{"identity": f"user{n}@e.com", "identityType": "User"} for n in range(5001)]
    body = {"data": "x", "permissions": [{"allowedPermissions": allowed}]}
    assert api.put_item(DOC, body).status_code == 202
    assert api.server.items(SOURCE) == []
    assert api.server.rejections(SOURCE)[0]["reason"] == "TOO_MANY_PERMISSIONS"


def test_a_strict_provider_rejects_items_naming_unknown_identities(api: PushApi) -> None:
    api.server.create_provider(PROVIDER, strict=True)
    body = {"data": "x", "permissions": [{"allowedPermissions": [{"identity": "alice@example.com", "identityType": "user"}]}]}
    assert api.put_item(DOC, body).status_code == 202
    assert api.server.items(SOURCE) == []
    assert api.server.rejections(SOURCE)[0]["reason"] == "UNKNOWN_IDENTITY"
    identity = {"identity": {"name": "alice@example.com", "type": "USER"}}
    assert api.call("PUT", f"/providers/{PROVIDER}/permissions", json=identity).status_code == 202
    api.put_item(DOC, body)
    assert len(api.server.items(SOURCE)) == 1, "identities pushed first make the item valid"


def test_content_from_a_container_is_decoded_and_the_container_used_once(api: PushApi) -> None:
    content = ("large content " * 100_000).encode()
    file_id = api.upload(zlib.compress(content))
    body = {"compressedBinaryDataFileId": file_id, "compressionType": "ZLIB", "fileExtension": ".txt"}
    assert api.put_item(DOC, body).status_code == 202
    item = api.server.item(SOURCE, DOC)
    assert item["contentSize"] == len(content) and item["content"] is None, "large content has its own route"
    assert api.server.item_content(SOURCE, DOC) == content
    assert_error(api.put_item(DOC + "2", body), 404, "FILE_NOT_FOUND")


def test_an_unknown_content_container_is_404_for_the_item_and_for_its_batch(api: PushApi) -> None:
    body = {"compressedBinaryDataFileId": "no-such-file", "compressionType": "UNCOMPRESSED"}
    assert_error(api.put_item(DOC, body), 404, "FILE_NOT_FOUND")
    batch = {"addOrUpdate": [{"documentId": DOC, **body}]}
    assert_error(api.push_batch(batch), 404, "FILE_NOT_FOUND")


def test_the_item_allowance_answers_412_then_rejects_the_excess(api: PushApi) -> None:
    api.server.configure(itemAllowance=2)
    api.push_batch({"addOrUpdate": [{"documentId": f"{DOC}/{n}", "data": "x"} for n in range(3)]})
    assert len(api.server.items(SOURCE)) == 2
    assert api.server.rejections(SOURCE)[0]["reason"] == "DOCUMENT_LIMIT_EXCEEDED"
    assert_error(api.put_item(DOC + "/more", {"data": "x"}), 412, "DOCUMENT_LIMIT_EXCEEDED")
    assert api.put_item(f"{DOC}/0", {"data": "update"}).status_code == 412, "no item adds while at the allowance"
    assert api.call("DELETE", f"/sources/{SOURCE}/documents", params={"documentId": f"{DOC}/0"}).status_code == 202


def test_the_daily_item_limit_answers_429_too_many_documents_daily(api: PushApi) -> None:
    api.server.configure(dailyDocumentLimit=2)
    api.push_batch({"addOrUpdate": [{"documentId": f"{DOC}/{n}", "data": "x"} for n in range(3)]})
    assert [r["reason"] for r in api.server.rejections(SOURCE)] == ["TOO_MANY_DOCUMENTS_DAILY"]
    response = api.put_item(DOC, {"data": "x"})
    assert_error(response, 429, "TOO_MANY_DOCUMENTS_DAILY")
    retry_after = int(response.headers["Retry-After"])
    assert 0 < retry_after <= 86_400, "retrying today does not help"
    api.server.advance_clock(retry_after)
    assert api.put_item(DOC, {"data": "tomorrow"}).status_code == 202


def test_the_daily_call_limit_answers_429_too_many_requests(api: PushApi) -> None:
    api.server.configure(dailyRequestLimit=2)
    assert api.call("POST", "/files").status_code == 201
    assert api.put_item(DOC, {"data": "x"}).status_code == 202
    response = api.call("POST", "/files")
    assert_error(response, 429, "TOO_MANY_REQUESTS")
    api.server.advance_clock(int(response.headers["Retry-After"]))
    assert api.call("POST", "/files").status_code == 201


def test_a_paused_organization_answers_400(api: PushApi) -> None:
    api.server.pause_organization()
    assert_error(api.put_item(DOC, {"data": "x"}), 400, "ORGANIZATION_IS_PAUSED")
    api.server.pause_organization(paused=False)
    assert api.put_item(DOC, {"data": "x"}).status_code == 202


def test_items_are_kept_per_source_and_organization(clean_emulator: EmulatorServer, api: PushApi) -> None:
    clean_emulator.create_source("other-source", organization="other-org")
    api.put_item(DOC, {"data": "x"})
    other = api.session.put(f"{clean_emulator.push_url}/organizations/other-org/sources/other-source/documents",
                            params={"documentId": DOC + "/other"}, json={"data": "y"})
    assert other.status_code == 202
    assert [i["documentId"] for i in clean_emulator.items("other-source", organization="other-org")] == [DOC + "/other"]
    assert [i["documentId"] for i in clean_emulator.items(SOURCE)] == [DOC]
