"""The receiver against requests no CMS should send: slow or stalled connections, odd content types,
names that would forge log lines, signature headers no parser expects, bodies no adapter can map.
Over real HTTP (raw sockets where a client library would refuse or fix the request) to a real broker."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from producers.webhook import metrics
from producers.webhook.signatures import contentful_signature_headers, pushsync_signature
from tests.producers.conftest import item_upsert
from tests.producers.payloads import contentful_published_entry, strapi_event
from tests.support import http_raw
from tests.support.logs import logging_to
from worker.settings import LogFormat

GENERIC_SECRET = "generic-secret-value"
CONTENTFUL_SECRET = "c" * 64
STRAPI_TOKEN = "Bearer strapi-token-value"
READ_TIMEOUT_SECONDS = 0.5
CLOSE_WAIT_SECONDS = 30.0
"""How long a test waits for the receiver to close a stalled connection: far past the timeout, never reached."""
CONFIG: dict[str, Any] = {
    "server": {"read_timeout_seconds": READ_TIMEOUT_SECONDS},
    "sources": {
        "direct": {"adapter": "generic", "secret": GENERIC_SECRET, "source_id": "source-a"},
        "mirror": {"adapter": "generic", "secret": GENERIC_SECRET, "source_id": "source-a"},
        "blog": {"adapter": "contentful", "secret": CONTENTFUL_SECRET, "source_id": "source-blog",
                 "item": {"document_id": "https://blog.example.com/{id}", "title": "title", "body": "body",
                          "metadata": {"tags": "tags"}}},
        "shop": {"adapter": "strapi", "secret": STRAPI_TOKEN, "source_id": "source-shop",
                 "item": {"document_id": "https://shop.example.com/{documentId}", "title": "title",
                          "body": "body"}},
    },
}
JSON = "application/json"
DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.fixture()
def receiver(start_receiver: Callable[..., str], redis_url: str) -> str:
    return start_receiver(CONFIG, redis_url)


@pytest.fixture()
def published(redis_url: str, read_queue: Callable[[str], list[dict[str, Any]]]) -> Callable[[], list[dict[str, Any]]]:
    return lambda: [event for message in read_queue(redis_url) for event in message["body"]["events"]]


def post_generic(base: str, body: bytes, *, hook: str = "direct", content_type: str | None = JSON,
                 signature: str | bytes | None = None) -> requests.Response:
    headers: dict[str, str | bytes] = {"X-Pushsync-Signature": signature or pushsync_signature(
        GENERIC_SECRET, body, int(time.time()))}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return requests.post(f"{base}/hooks/{hook}", data=body, headers=headers, timeout=10)


def post_contentful(base: str, body: bytes, **replaced: str | bytes) -> requests.Response:
    headers: dict[str, str | bytes] = {"content-type": JSON, "x-contentful-topic": "ContentManagement.Entry.publish"}
    headers |= contentful_signature_headers(CONTENTFUL_SECRET, "POST", "/hooks/blog", headers, body,
                                            int(time.time() * 1000))
    headers |= {name.replace("_", "-"): value for name, value in replaced.items()}
    return requests.post(f"{base}/hooks/blog", data=body, headers=headers, timeout=10)


def post_strapi(base: str, body: bytes) -> requests.Response:
    return requests.post(f"{base}/hooks/shop", data=body, headers={"Authorization": STRAPI_TOKEN,
                                                                   "Content-Type": JSON}, timeout=10)


def counted(hook: str, status: int) -> float:
    return metrics.REGISTRY.get_sample_value("pushsync_webhook_requests_total",
                                             {"hook": hook, "status": str(status)}) or 0.0


def closed_by_server(sock: socket.socket) -> bytes:
    """Read until the receiver closes the connection (polling; fails after CLOSE_WAIT_SECONDS); what it sent."""
    sock.settimeout(CLOSE_WAIT_SECONDS)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


# ---------------------------------------------------------------- read timeout


@pytest.mark.parametrize("sent", [b"", b"POST /hooks/direct HTTP/1.1\r\nHost: x\r\nContent-Ty"], ids=["idle", "half-header"])
def test_a_connection_without_complete_headers_is_closed(receiver: str, sent: bytes) -> None:
    host, port = receiver.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(sent)
        assert closed_by_server(sock) == b""


def test_headers_trickled_byte_by_byte_do_not_keep_the_connection(receiver: str) -> None:
    host, port = receiver.removeprefix("http://").split(":")
    request = b"POST /hooks/direct HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 4000
    with socket.create_connection((host, int(port))) as sock:
        deadline = time.monotonic() + CLOSE_WAIT_SECONDS
        try:
            for byte in request:  # far slower, in all, than the read timeout
                sock.sendall(bytes([byte]))
                time.sleep(0.01)
                assert time.monotonic() < deadline, "the receiver kept a trickling connection open"
        except (BrokenPipeError, ConnectionResetError):
            return
        pytest.fail("the receiver read 4,000 header bytes sent one by one over 40 s")


def test_a_body_trickled_after_an_early_answer_does_not_keep_the_connection(receiver: str) -> None:
    host, port = receiver.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"POST /hooks/nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
        sock.settimeout(CLOSE_WAIT_SECONDS)
        assert sock.recv(65536).startswith(b"HTTP/1.1 404 ")  # answered without reading the body
        deadline = time.monotonic() + CLOSE_WAIT_SECONDS
        try:
            while time.monotonic() < deadline:
                sock.sendall(b"x")
                time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            return
        pytest.fail("the receiver kept reading a body it had answered for")


def test_a_client_that_never_reads_its_answers_does_not_keep_the_connection(receiver: str) -> None:
    """Pipelined requests whose (large) answers the client never reads: the receiver's writes stall."""
    host, port = receiver.removeprefix("http://").split(":")
    refused = (b"POST /hooks/blog HTTP/1.1\r\nHost: x\r\nContent-Type: text/" + b"x" * 15_000
               + b"\r\nContent-Length: 0\r\n\r\n")
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        sock.setblocking(False)
        deadline = time.monotonic() + CLOSE_WAIT_SECONDS
        try:
            while time.monotonic() < deadline:
                try:
                    sock.send(refused)
                except BlockingIOError:
                    time.sleep(0.05)  # the receiver stopped reading: it is stuck writing, or gone
        except (BrokenPipeError, ConnectionResetError):
            return
        pytest.fail("the receiver kept a connection whose answers were never read")


def test_a_body_that_stops_coming_gets_408_and_the_connection_closed(receiver: str, published: Callable) -> None:
    host, port = receiver.removeprefix("http://").split(":")
    before = counted("direct", 408)
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"POST /hooks/direct HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"kind\":")
        answer = closed_by_server(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ") and b"connection: close" in head.lower()
    assert "did not arrive within 0.5 s" in json.loads(body)["error"]
    assert counted("direct", 408) == before + 1
    assert published() == []


# ---------------------------------------------------------------- content types


@pytest.mark.parametrize("content_type", [None, "text/plain", "multipart/form-data; boundary=x",
                                          "application/x-www-form-urlencoded", "application/json; charset=latin-1"])
def test_bodies_not_declared_as_utf8_json_get_415(receiver: str, published: Callable, content_type: str | None) -> None:
    answer = post_generic(receiver, json.dumps(item_upsert(1)).encode(), content_type=content_type)
    assert answer.status_code == 415
    assert "Content-Type must be application/json" in answer.json()["error"] or "must be UTF-8" in answer.json()["error"]
    assert published() == []


@pytest.mark.parametrize("content_type", ["application/json; charset=UTF-8", "Application/JSON",
                                          "application/vnd.contentful.management.v1+json"])
def test_json_and_vendor_json_types_are_taken(receiver: str, published: Callable, content_type: str) -> None:
    assert post_generic(receiver, json.dumps(item_upsert(1)).encode(), content_type=content_type).status_code == 202
    assert len(published()) == 1


# ---------------------------------------------------------------- logs


@pytest.fixture()
def text_log(tmp_path: Path) -> Iterator[Path]:
    """This process's logging in pushsync's text format, into a file; undone afterwards."""
    with logging_to(tmp_path / "receiver.log", LogFormat.TEXT) as path:
        yield path


def test_a_hook_name_cannot_forge_a_log_line(receiver: str, text_log: Path) -> None:
    forged = "producers.webhook.app: hook direct: 202 {'published': 1}"  # a name cannot hold a '/'
    target = "/hooks/x%0A" + quote(forged) + "%0D%0Ay"
    answer = http_raw.send(receiver, "POST", target.encode(), [http_raw.host_header(receiver),
                                                              (b"Content-Length", b"0")])
    assert answer.status == 404
    logging.getLogger().handlers[-1].flush()
    lines = text_log.read_text(encoding="utf-8").splitlines()
    [line] = [line for line in lines if "404" in line]
    assert line.startswith("[") and f"hook x\\n{forged}\\r\\ny: 404" in line
    assert not any(line.startswith(forged) for line in lines)


# ---------------------------------------------------------------- ids and numbers


def test_generic_events_without_ids_get_the_same_id_each_delivery(receiver: str, published: Callable) -> None:
    event = {key: value for key, value in item_upsert(1).items() if key not in ("eventId", "occurredAt")}
    reordered = dict(reversed(list(event.items())))
    other = {**event, "version": event["version"] + 1}
    answers = [post_generic(receiver, json.dumps(body).encode(), hook=hook)
               for body, hook in ((event, "direct"), (reordered, "direct"), (other, "direct"), (event, "mirror"))]
    assert [answer.status_code for answer in answers] == [202] * 4
    first, again, changed, elsewhere = (answer.json()["eventIds"][0] for answer in answers)
    assert first == again and len({first, changed, elsewhere}) == 3
    assert [item["eventId"] for item in published()] == [first, again, changed, elsewhere]


def test_a_number_too_large_for_a_double_is_refused_with_its_reason(receiver: str, published: Callable) -> None:
    event = item_upsert(1)
    body = json.dumps(event).replace('"tags"', '"score": 1e400, "tags"').encode()
    answer = post_generic(receiver, body)
    assert answer.status_code == 400 and "1e400 is too large" in answer.json()["error"]
    assert published() == []


# ---------------------------------------------------------------- item 5: no 500s


@pytest.mark.parametrize("signature", [
    "t=\u00b2,v1=00".encode("latin-1"), ("t=" + "1" * 400 + ",v1=00").encode(),
    lambda: f"t={int(time.time())},v1=\u00e9".encode("latin-1"),
], ids=["unicode-digit", "400-digits", "non-ascii-v1"])
def test_odd_generic_signatures_get_401(receiver: str, signature: bytes | Callable[[], bytes]) -> None:
    before = counted("direct", 401)
    value = signature() if callable(signature) else signature
    answer = post_generic(receiver, json.dumps(item_upsert(1)).encode(), signature=value)
    assert answer.status_code == 401 and answer.json()["error"]
    assert counted("direct", 401) == before + 1


@pytest.mark.parametrize("replaced", [
    {"x_contentful_timestamp": "\u00b2".encode("latin-1")}, {"x_contentful_timestamp": "1" * 400},
    {"x_contentful_signature": "\u00e9".encode("latin-1") * 64}, {"x_contentful_signature": "\u00e9".encode("latin-1")},
], ids=["unicode-digit", "400-digits", "non-ascii-signature", "short-signature"])
def test_odd_contentful_signature_headers_get_401(receiver: str, replaced: dict[str, bytes | str]) -> None:
    before = counted("blog", 401)
    answer = post_contentful(receiver, json.dumps(contentful_published_entry()).encode(), **replaced)
    assert answer.status_code == 401 and answer.json()["error"]
    assert counted("blog", 401) == before + 1


def _with_lone_surrogate(adapter: str) -> bytes:
    if adapter == "contentful":
        return json.dumps(contentful_published_entry()).replace('"5KsD', '"\\ud800').encode()
    if adapter == "strapi":
        return json.dumps(strapi_event("entry.update")).replace('"qx0u', '"\\udfff').encode()
    return json.dumps(item_upsert(1)).replace('"Document 1"', '"\\ud800"').encode()


@pytest.mark.parametrize("adapter", ["generic", "contentful", "strapi"])
@pytest.mark.parametrize("body", ["deep", "surrogate"])
def test_authenticated_bodies_no_adapter_can_read_get_400(receiver: str, published: Callable, adapter: str,
                                                          body: str) -> None:
    content = DEEP if body == "deep" else _with_lone_surrogate(adapter)
    send = {"generic": post_generic, "contentful": post_contentful, "strapi": post_strapi}[adapter]
    hook = {"generic": "direct", "contentful": "blog", "strapi": "shop"}[adapter]
    before = counted(hook, 400)
    answer = send(receiver, content)
    assert answer.status_code == 400
    assert ("nested too deeply" if body == "deep" else "lone UTF-16 surrogate") in answer.json()["error"]
    assert counted(hook, 400) == before + 1
    assert published() == []


@pytest.mark.parametrize("adapter", ["generic", "contentful", "strapi"])
def test_signed_times_with_no_utc_equivalent_get_400(receiver: str, published: Callable, adapter: str) -> None:
    """0001-01-01T00:00:00+23:59 is valid ISO 8601 whose UTC conversion overflows (it gave 500)."""
    when = "0001-01-01T00:00:00+23:59"
    hook = {"generic": "direct", "contentful": "blog", "strapi": "shop"}[adapter]
    if adapter == "generic":
        answer = post_generic(receiver, json.dumps(item_upsert(1, occurredAt=when)).encode())
    elif adapter == "contentful":
        entry = contentful_published_entry()
        entry["sys"]["publishedAt"] = when
        answer = post_contentful(receiver, json.dumps(entry).encode())
    else:
        answer = post_strapi(receiver, json.dumps(strapi_event("entry.publish") | {"createdAt": when}).encode())
    assert answer.status_code == 400 and answer.json()["error"], answer.text
    assert counted(hook, 400) >= 1 and published() == []


@pytest.mark.parametrize("topic", ["unpublish", "delete", "archive"])
def test_a_signed_publish_relabelled_with_another_topic_is_refused(receiver: str, published: Callable,
                                                                   topic: str) -> None:
    """The topic header need not be signed: a publish body sent again under a removal topic must not remove."""
    body = json.dumps(contentful_published_entry()).encode()
    signed = {"content-type": JSON}  # what a sender may sign: the topic left out of the signed headers
    headers = signed | contentful_signature_headers(CONTENTFUL_SECRET, "POST", "/hooks/blog", signed, body,
                                                    int(time.time() * 1000))

    def post(action: str) -> requests.Response:
        return requests.post(f"{receiver}/hooks/blog", data=body, timeout=10,
                             headers=headers | {"x-contentful-topic": f"ContentManagement.Entry.{action}"})

    assert post("publish").status_code == 202
    answer = post(topic)
    assert answer.status_code == 400 and "does not match its topic" in answer.json()["error"]
    assert [event["kind"] for event in published()] == ["item.upsert"]


@pytest.mark.parametrize("draft", ["never-published", "edited-since"])
def test_a_signed_draft_relabelled_as_a_publish_is_refused(receiver: str, published: Callable, draft: str) -> None:
    """A save or auto_save body (a draft: an unarchived Entry too) resent under the publish topic must not index it."""
    entry = contentful_published_entry()
    if draft == "never-published":
        for name in ("publishedVersion", "publishedAt", "firstPublishedAt", "publishedCounter", "revision"):
            entry["sys"].pop(name, None)
    else:
        entry["sys"]["version"] = entry["sys"]["publishedVersion"] + 3
    body = json.dumps(entry).encode()
    signed = {"content-type": JSON}
    headers = signed | contentful_signature_headers(CONTENTFUL_SECRET, "POST", "/hooks/blog", signed, body,
                                                    int(time.time() * 1000))
    answer = requests.post(f"{receiver}/hooks/blog", data=body, timeout=10,
                           headers=headers | {"x-contentful-topic": "ContentManagement.Entry.publish"})
    assert answer.status_code == 400 and "does not match its topic" in answer.json()["error"]
    assert published() == []


def test_requests_to_the_probe_other_than_get_are_counted(receiver: str) -> None:
    before = counted(metrics.UNKNOWN_HOOK, 405)
    answers = [requests.request(method, f"{receiver}/healthz", timeout=10).status_code for method in ("POST", "DELETE")]
    assert answers == [405, 405] and counted(metrics.UNKNOWN_HOOK, 405) == before + 2


def test_refusals_of_the_router_are_json_and_counted(receiver: str) -> None:
    before = counted("direct", 405), counted(metrics.UNKNOWN_HOOK, 404)
    wrong_method = requests.get(f"{receiver}/hooks/direct", timeout=10)
    trailing_slash = requests.post(f"{receiver}/hooks/direct/", data=b"{}", allow_redirects=False, timeout=10)
    assert (wrong_method.status_code, trailing_slash.status_code) == (405, 404)
    assert wrong_method.json()["error"] and wrong_method.headers["allow"] == "POST"
    assert trailing_slash.json()["error"]
    assert (counted("direct", 405), counted(metrics.UNKNOWN_HOOK, 404)) == (before[0] + 1, before[1] + 1)


def test_an_unexpected_error_is_answered_500_with_a_reason_and_counted() -> None:
    """A bug in a handler (here a stand-in app that raises: no request can make the real one fail)."""
    from producers.webhook.app import AnswerCounter

    async def broken(scope: dict, receive: Callable, send: Callable) -> None:
        raise RuntimeError("a bug")

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    before = counted("direct", 500)
    scope = {"type": "http", "method": "POST", "path": "/hooks/direct", "headers": []}
    asyncio.run(AnswerCounter(broken, frozenset({"direct"}))(scope, receive, send))
    start, body = sent
    assert start["status"] == 500 and json.loads(body["body"])["error"].startswith("internal error")
    assert counted("direct", 500) == before + 1
