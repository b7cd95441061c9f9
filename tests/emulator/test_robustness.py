"""Bad input of every kind: answered with a 4xx and the service's error body, never a 500 or a
traceback, and the emulator keeps serving after it."""

from __future__ import annotations

import http.client
import json
import random
import socket
import time
from urllib.parse import urlsplit

import pytest
import requests

from emulator.bodies import MAX_NESTING_DEPTH
from emulator.limits import MIB
from tests.emulator.conftest import PROVIDER, SOURCE, PushApi, assert_error

ROUTES = [
    ("PUT", f"/sources/{SOURCE}/documents"),
    ("DELETE", f"/sources/{SOURCE}/documents"),
    ("PUT", f"/sources/{SOURCE}/documents/batch"),
    ("DELETE", f"/sources/{SOURCE}/documents/olderthan"),
    ("POST", f"/sources/{SOURCE}/status"),
    ("POST", "/files"),
    ("PUT", f"/providers/{PROVIDER}/permissions"),
    ("DELETE", f"/providers/{PROVIDER}/permissions"),
    ("PUT", f"/providers/{PROVIDER}/permissions/batch"),
    ("DELETE", f"/providers/{PROVIDER}/permissions/olderthan"),
    ("PUT", f"/providers/{PROVIDER}/mappings"),
]
QUERIES = [
    b"documentId=%ZZ&orderingId=%FF",
    b"documentId=%FF%FE&statusType=%C3",
    b"orderingId=99999999999999999999999&queueDelay=-5&fileId=",
    b"orderingId=-1&deleteChildren=maybe&compressionType=zlib",
    b"documentId=https%3A%2F%2Fe.com%2F%20space&statusType=IDLE&fileId=../../etc/passwd",
    b"a=" + b"x" * 8000,
]
BODIES = [b"", b"\x00\x01\x02", b"{" * 5000 + b"}" * 5000, b'{"data": "\\ud800"}', b"[]", b"null", b"1e999999",
          b'{"data": 1}', b'{"identity": []}', b'{"data": "x", "permissions": [null]}']


def raw_request(api: PushApi, method: str, path: str, query: bytes, body: bytes, content_type: str) -> tuple[int, bytes]:
    """One request sent byte for byte (http.client refuses non-ASCII targets); (status, body)."""
    url = urlsplit(api.base)
    head = b"\r\n".join([
        f"{method} {url.path}{path}?".encode() + query + b" HTTP/1.1",
        f"Host: {url.netloc}".encode(),
        f"Authorization: Bearer {api.server.api_key}".encode(),
        f"Content-Type: {content_type}".encode(),
        f"Content-Length: {len(body)}".encode(),
        b"Connection: close",
    ])
    with socket.create_connection((url.hostname, url.port), timeout=10) as connection:
        connection.sendall(head + b"\r\n\r\n" + body)
        answer = b"".join(iter(lambda: connection.recv(65536), b""))
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_bad_input_never_makes_a_5xx_and_errors_have_the_error_body(api: PushApi, method: str, path: str) -> None:
    chooser = random.Random(f"{method} {path}")
    cases = [(query, body) for query in QUERIES for body in BODIES]
    for query, body in chooser.sample(cases, 20) + [(QUERIES[0], BODIES[0])]:
        status, content = raw_request(api, method, path, query, body, chooser.choice(["application/json", "text/html"]))
        assert status < 500, f"{method} {path}?{query[:60]!r} body {body[:20]!r}: {status} {content[:200]!r}"
        assert status < 400 or content.startswith(b'{"errorCode":'), content[:200]
    assert api.put_item("https://example.com/still", {"data": "serving"}).status_code == 202


def test_a_request_that_is_not_http_is_refused_by_the_server_and_serving_goes_on(api: PushApi) -> None:
    # Bytes over 0x7F in a request target are not HTTP (RFC 9112): the HTTP layer answers 400
    # before any route runs, as the service's front end would.
    status, _ = raw_request(api, "PUT", f"/sources/{SOURCE}/documents", b"documentId=\xff\xfe", b"{}", "application/json")
    assert status == 400
    assert api.put_item("https://example.com/still", {"data": "serving"}).status_code == 202


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/push/v1/organizations/o/sources/s/documents"), ("PUT", "/push/v1/nothing"), ("GET", "/"),
     ("PUT", "/push/v1/organizations/o/sources/s/documents/"), ("POST", "/_blob/x"), ("PATCH", "/_emulator/reset")],
)
def test_unknown_routes_and_methods_answer_json_errors(api: PushApi, method: str, path: str) -> None:
    response = api.session.request(method, api.server.url + path)
    assert response.status_code in (404, 405)
    assert set(response.json()) == {"errorCode", "message"}


def test_a_client_that_leaves_mid_upload_leaves_the_container_usable(api: PushApi) -> None:
    container = api.call("POST", "/files").json()
    url = urlsplit(container["uploadUri"])
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    connection.putrequest("PUT", f"{url.path}?{url.query}")
    for name, value in {**container["requiredHeaders"], "Content-Length": "1000000"}.items():
        connection.putheader(name, value)
    connection.endheaders(b"only part of it")
    connection.close()
    payload = b'{"addOrUpdate": [{"documentId": "https://e.com/1", "data": "whole"}]}'
    deadline = time.monotonic() + 10
    while {c["fileId"]: c["state"] for c in api.server.containers()}[container["fileId"]] != "EMPTY":
        assert time.monotonic() < deadline, "the broken upload was never noticed"
        time.sleep(0.01)
    assert requests.put(container["uploadUri"], data=payload, headers=container["requiredHeaders"]).status_code == 200


def test_a_lone_surrogate_is_kept_and_shown_escaped(api: PushApi) -> None:
    body = b'{"data": "x", "title": "broken \\ud800 pair"}'
    response = api.call("PUT", f"/sources/{SOURCE}/documents", params={"documentId": "https://e.com/s"}, data=body)
    assert response.status_code == 202
    assert api.server.item(SOURCE, "https://e.com/s")["metadata"]["title"] == "broken \ud800 pair"


DEEP_ARRAYS = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECTS = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
JUST_TOO_DEEP = b'{"data": "x", "title": ' + b"[" * (MAX_NESTING_DEPTH) + b"]" * MAX_NESTING_DEPTH + b"}"
"""One level past the limit: the item object and MAX_NESTING_DEPTH arrays inside it."""
JSON_ROUTES = [
    ("PUT", f"/sources/{SOURCE}/documents?documentId=https%3A%2F%2Fe.com%2Fdeep"),
    ("PUT", f"/providers/{PROVIDER}/permissions"),
    ("DELETE", f"/providers/{PROVIDER}/permissions"),
    ("PUT", f"/providers/{PROVIDER}/mappings"),
]


@pytest.mark.parametrize("body", [DEEP_ARRAYS, DEEP_OBJECTS, JUST_TOO_DEEP], ids=["arrays", "objects", "limit+1"])
@pytest.mark.parametrize(("method", "path"), JSON_ROUTES, ids=[f"{m} {p.split('?')[0]}" for m, p in JSON_ROUTES])
def test_deeply_nested_json_is_a_400_like_any_bad_body(api: PushApi, method: str, path: str, body: bytes) -> None:
    response = api.call(method, path, data=body)
    assert "deeper than" in assert_error(response, 400, "INVALID_JSON")["message"]
    assert api.put_item("https://example.com/still", {"data": "serving"}).status_code == 202


@pytest.mark.parametrize("body", [DEEP_ARRAYS, DEEP_OBJECTS], ids=["arrays", "objects"])
@pytest.mark.parametrize("path", ["/config", "/faults", f"/organizations/o/sources/{SOURCE}"])
def test_deeply_nested_json_is_a_400_on_the_admin_api_too(api: PushApi, path: str, body: bytes) -> None:
    method = "POST" if path == "/faults" else "PUT"
    response = requests.request(method, api.server.url + "/_emulator" + path, data=body)
    assert_error(response, 400)


def test_the_nesting_the_contract_needs_is_accepted(api: PushApi) -> None:
    # The complete permission model is the deepest body the contract has: 7 levels.
    level = {"name": "l", "permissionSets": [{"allowAnonymous": False, "allowedPermissions": [
        {"identity": "ann", "identityType": "User", "securityProvider": PROVIDER}], "deniedPermissions": []}]}
    assert api.put_item("https://e.com/complete", {"data": "x", "permissions": [level]}).status_code == 202


def _answer_to_partial_body(api: PushApi, method: str, path: str, declared: int) -> tuple[int, bytes]:
    """Send the head of a request declaring `declared` bytes, and only a few of them; the answer's
    (status, body), read while the rest of the body is still unsent."""
    url = urlsplit(api.server.url)
    head = (f"{method} {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {declared}\r\n\r\n").encode()
    with socket.create_connection((url.hostname, url.port), timeout=30) as connection:
        connection.sendall(head + b'{"securityProviders": [')
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < _content_length(answer):
            chunk = connection.recv(65536)
            assert chunk, f"the emulator closed the connection without an answer: {answer!r}"
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def _content_length(answer: bytes) -> int:
    for line in answer.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


@pytest.mark.parametrize("declared", [300 * MIB, 2 * MIB])
def test_an_admin_body_declared_too_large_is_refused_before_it_is_sent(api: PushApi, declared: int) -> None:
    # The client has sent a few bytes of the body and is still able to send the rest: the answer
    # must come now, from the declared length (a server reading the body whole would wait forever).
    status, body = _answer_to_partial_body(api, "PUT", f"/_emulator/organizations/o/sources/{SOURCE}", declared)
    assert status == 413 and json.loads(body)["errorCode"] == "REQUEST_ENTITY_TOO_LARGE", body
    assert requests.get(api.server.url + "/_emulator/health").ok


def test_an_admin_body_streamed_past_the_limit_is_refused(api: PushApi) -> None:
    providers = [f"provider-{n:07d}" for n in range(200_000)]  # ~3 MiB of valid JSON, sent chunked
    body = json.dumps({"securityProviders": providers}).encode()
    chunks = (body[start:start + 64 * 1024] for start in range(0, len(body), 64 * 1024))
    response = requests.put(api.server.url + f"/_emulator/organizations/o/sources/{SOURCE}", data=chunks)
    assert_error(response, 413, "REQUEST_ENTITY_TOO_LARGE")


def test_an_oversized_body_over_a_closing_connection_is_drained_so_the_client_reads_the_answer(api: PushApi) -> None:
    # With `Connection: close` the server closes once it answered: unread body bytes would reset
    # the connection under the client, so the emulator reads the rest (and drops it) first.
    url = urlsplit(api.server.url)
    body = b" " * (2 * MIB)
    head = (f"PUT /_emulator/organizations/o/sources/{SOURCE} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection((url.hostname, url.port), timeout=30) as connection:
        connection.sendall(head + body)
        answer = b"".join(iter(lambda: connection.recv(65536), b""))
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["errorCode"] == "REQUEST_ENTITY_TOO_LARGE"


@pytest.mark.parametrize(
    ("path", "batch"),
    [
        (f"/sources/{SOURCE}/documents/batch",
         '{"addOrUpdate": [{"documentId": "https://e.com/1", "data": "x", "permissions": %s}], "delete": []}'),
        (f"/providers/{PROVIDER}/permissions/batch",
         '{"members": [{"identity": {"name": "a", "type": "USER", "additionalInfo": {"k": "v"}}, "members": %s}]}'),
        (f"/providers/{PROVIDER}/permissions/batch", '{"deleted": [{"identity": %s}]}'),
    ],
    ids=["items", "members", "deleted"],
)
def test_a_batch_file_nested_too_deep_is_a_400_and_leaves_nothing_behind(api: PushApi, path: str, batch: str) -> None:
    file_id = api.upload((batch % DEEP_ARRAYS.decode()).encode())
    response = api.call("PUT", path, params={"fileId": file_id})
    assert "deeper than" in assert_error(response, 400, "INVALID_JSON")["message"]
    assert api.server.rejections(SOURCE) == [] and api.server.provider_rejections(PROVIDER) == []
