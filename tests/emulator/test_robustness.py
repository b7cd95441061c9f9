"""Bad input of every kind: answered with a 4xx and the service's error body, never a 500 or a
traceback, and the emulator keeps serving after it."""

from __future__ import annotations

import http.client
import random
import socket
import time
from urllib.parse import urlsplit

import pytest
import requests

from tests.emulator.conftest import PROVIDER, SOURCE, PushApi

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
