"""File containers: creation, the S3-like upload route, one upload, expiry, consumption, limits."""

from __future__ import annotations

import hashlib
import http.client
import json
from urllib.parse import parse_qs, urlsplit

import requests

from tests.emulator.conftest import SOURCE, PushApi, assert_error

MIB = 1024 * 1024
BATCH = json.dumps({"addOrUpdate": [{"documentId": "https://e.com/1", "data": "one"}]}).encode()


def create(api: PushApi) -> dict:
    response = api.call("POST", "/files")
    assert response.status_code == 201, response.text
    return response.json()


def test_a_container_has_a_presigned_looking_upload_uri_on_the_emulator(api: PushApi) -> None:
    container = create(api)
    assert set(container) == {"uploadUri", "fileId", "requiredHeaders"}
    assert container["requiredHeaders"] == {"x-amz-server-side-encryption": "AES256", "Content-Type": "application/octet-stream"}
    uri = urlsplit(container["uploadUri"])
    assert f"{uri.scheme}://{uri.netloc}" == api.server.url
    assert not uri.path.startswith(("/push/", "/_emulator/")) and container["fileId"] in uri.path
    query = parse_qs(uri.query)
    assert query["X-Amz-Expires"] == ["3600"] and len(query["X-Amz-Signature"][0]) == 64


def test_the_upload_streams_to_disk_and_answers_200_with_an_etag(api: PushApi) -> None:
    container = create(api)
    payload = b"x" * (3 * MIB + 17)
    response = requests.put(container["uploadUri"], data=payload, headers=container["requiredHeaders"])
    assert response.status_code == 200
    assert response.headers["ETag"] == f'"{hashlib.md5(payload).hexdigest()}"'
    (state,) = [c for c in api.server.containers() if c["fileId"] == container["fileId"]]
    assert (state["state"], state["size"]) == ("UPLOADED", len(payload))


def test_a_container_takes_one_upload(api: PushApi) -> None:
    container = create(api)
    assert requests.put(container["uploadUri"], data=b"1", headers=container["requiredHeaders"]).status_code == 200
    again = requests.put(container["uploadUri"], data=b"2", headers=container["requiredHeaders"])
    assert_error(again, 403, "CONTAINER_CONSUMED")


def test_the_required_headers_are_checked(api: PushApi) -> None:
    container = create(api)
    for headers in ({"Content-Type": "application/octet-stream"},
                    {"x-amz-server-side-encryption": "AES256", "Content-Type": "application/json"}):
        assert_error(requests.put(container["uploadUri"], data=b"x", headers=headers), 403, "SIGNATURE_DOES_NOT_MATCH")
    assert requests.put(container["uploadUri"], data=b"x", headers=container["requiredHeaders"]).status_code == 200


def test_an_upload_carrying_the_api_key_is_refused_and_logged_without_it(api: PushApi) -> None:
    container = create(api)
    headers = {**container["requiredHeaders"], "Authorization": f"Bearer {api.server.api_key}"}
    assert_error(requests.put(container["uploadUri"], data=b"secret", headers=headers), 400, "INVALID_ARGUMENT")
    log = api.server.requests()
    assert api.server.api_key not in json.dumps(log)
    upload = log[-1]
    assert (upload["method"], upload["status"], upload["authorization"]) == ("PUT", 400, "bearer")
    assert {"authorization", "x-amz-server-side-encryption", "content-type"} <= set(upload["headerNames"])
    assert requests.put(container["uploadUri"], data=b"x", headers=container["requiredHeaders"]).status_code == 200


def test_a_tampered_or_unknown_upload_url_is_403(api: PushApi) -> None:
    container = create(api)
    tampered = container["uploadUri"].replace("X-Amz-Expires=3600", "X-Amz-Expires=99999")
    assert_error(requests.put(tampered, data=b"x", headers=container["requiredHeaders"]), 403, "SIGNATURE_DOES_NOT_MATCH")
    other = create(api)
    unknown = other["uploadUri"].replace(other["fileId"], "0" * 36)
    assert_error(requests.put(unknown, data=b"x", headers=container["requiredHeaders"]), 403)


def test_a_chunked_upload_without_content_length_is_411(api: PushApi) -> None:
    container = create(api)
    response = requests.put(container["uploadUri"], data=iter([b"a", b"b"]), headers=container["requiredHeaders"])
    assert_error(response, 411, "MISSING_CONTENT_LENGTH")


def test_an_upload_over_256_mb_is_413_before_its_body_is_read(api: PushApi) -> None:
    container = create(api)
    uri = urlsplit(container["uploadUri"])
    connection = http.client.HTTPConnection(uri.hostname, uri.port, timeout=10)
    connection.putrequest("PUT", f"{uri.path}?{uri.query}")
    for name, value in {**container["requiredHeaders"], "Content-Length": str(256 * MIB + 1)}.items():
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413 and json.loads(response.read())["errorCode"] == "ENTITY_TOO_LARGE"
    connection.close()


def test_the_container_limit_can_be_lowered_and_a_refused_upload_leaves_it_empty(api: PushApi) -> None:
    api.server.configure(containerLimitBytes=1024)
    container = create(api)
    assert_error(requests.put(container["uploadUri"], data=b"x" * 1025, headers=container["requiredHeaders"]), 413)
    assert requests.put(container["uploadUri"], data=b"x" * 1024, headers=container["requiredHeaders"]).status_code == 200


def test_a_container_expires_after_60_minutes(api: PushApi) -> None:
    unused, uploaded = create(api), create(api)
    requests.put(uploaded["uploadUri"], data=BATCH, headers=uploaded["requiredHeaders"])
    api.server.advance_clock(60 * 60)
    assert_error(requests.put(unused["uploadUri"], data=b"x", headers=unused["requiredHeaders"]), 403, "REQUEST_EXPIRED")
    batch = api.call("PUT", f"/sources/{SOURCE}/documents/batch", params={"fileId": uploaded["fileId"]})
    assert_error(batch, 404, "FILE_NOT_FOUND")


def test_a_batch_consumes_its_container(api: PushApi) -> None:
    container = create(api)
    requests.put(container["uploadUri"], data=BATCH, headers=container["requiredHeaders"])
    assert api.call("PUT", f"/sources/{SOURCE}/documents/batch", params={"fileId": container["fileId"]}).status_code == 202
    again = api.call("PUT", f"/sources/{SOURCE}/documents/batch", params={"fileId": container["fileId"]})
    assert_error(again, 404, "FILE_NOT_FOUND")
    assert_error(requests.put(container["uploadUri"], data=BATCH, headers=container["requiredHeaders"]), 403, "CONTAINER_CONSUMED")
    assert [item["content"] for item in api.server.items(SOURCE)] == ["one"]


def test_a_batch_needs_an_uploaded_container(api: PushApi) -> None:
    empty = create(api)
    assert_error(api.call("PUT", f"/sources/{SOURCE}/documents/batch", params={"fileId": empty["fileId"]}), 404, "FILE_NOT_FOUND")
    assert_error(api.call("PUT", f"/sources/{SOURCE}/documents/batch"), 400, "INVALID_JSON")


def test_use_virtual_hosted_style_url_is_a_boolean(api: PushApi) -> None:
    assert api.call("POST", "/files", params={"useVirtualHostedStyleUrl": "true"}).status_code == 201
    assert_error(api.call("POST", "/files", params={"useVirtualHostedStyleUrl": "maybe"}), 400)


def test_expired_containers_blobs_are_removed_and_a_sweep_stops_at_the_first_unexpired(tmp_path):
    """A sweep at each new container walks only the expired ones (before, every container ever made)."""
    from emulator.clock import Clock
    from emulator.containers import ContainerState, ContainerStore
    from emulator.limits import CONTAINER_LIFETIME_SECONDS

    clock = Clock()
    store = ContainerStore(tmp_path / "containers", clock)
    uploading, old = store.create(), store.create()
    for container in (uploading, old):
        container.path.write_bytes(b"{}")
    uploading.state = ContainerState.UPLOADING
    clock.advance(CONTAINER_LIFETIME_SECONDS / 2)
    recent = store.create()
    recent.path.write_bytes(b"{}")
    clock.advance(CONTAINER_LIFETIME_SECONDS / 2 + 1)
    store.create()
    assert uploading.path.exists(), "an upload under way keeps its blob"
    assert not old.path.exists(), "and keeps no other from being swept"
    store.upload_finished(uploading, 2)
    store.create()
    assert not uploading.path.exists()
    assert recent.path.exists(), "not expired yet"
    clock.advance(CONTAINER_LIFETIME_SECONDS)
    store.create()
    assert not recent.path.exists()
