"""The webhook receiver over real HTTP, publishing to a real broker: right events in, nothing for refusals."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
import requests

from producers.webhook.signatures import contentful_signature_headers, pushsync_signature
from tests.producers.conftest import item_delete, item_upsert
from tests.producers.payloads import (
    ENTRY_ID,
    contentful_archived_entry,
    contentful_published_entry,
    contentful_tombstone,
    strapi_event,
)

CONTENTFUL_SECRET = "c" * 64
GENERIC_SECRET = "generic-secret-value"
STRAPI_TOKEN = "Bearer strapi-token-value"
MAX_BODY_BYTES = 16 * 1024
CONFIG: dict[str, Any] = {
    "server": {"max_body_bytes": MAX_BODY_BYTES, "tolerance_seconds": 300},
    "sources": {
        "blog": {
            "adapter": "contentful", "secret": CONTENTFUL_SECRET, "source_id": "source-blog",
            "item": {"document_id": "https://blog.example.com/{contentType}/{id}", "title": "title", "body": "body",
                     "locale": "en-US", "file_extension": ".txt", "metadata": {"author": "author", "tags": "tags"},
                     "permissions": [{"allowAnonymous": True}]},
        },
        "shop": {
            "adapter": "strapi", "secret": STRAPI_TOKEN, "source_id": "source-shop",
            "item": {"document_id": "https://shop.example.com/{model}/{documentId}", "title": "title", "body": "body",
                     "locale": "en", "metadata": {"slug": "slug", "category": "category"}},
        },
        "direct": {"adapter": "generic", "secret": GENERIC_SECRET, "source_id": "source-a", "provider_id": "provider-a"},
    },
}
Reader = Callable[[str], list[dict[str, Any]]]


def epoch_ms(moment: str) -> int:
    return int(datetime.fromisoformat(moment).timestamp()) * 1000 + datetime.fromisoformat(moment).microsecond // 1000


@pytest.fixture()
def receiver(start_receiver: Callable[..., str], redis_url: str) -> str:
    return start_receiver(CONFIG, redis_url)


@pytest.fixture()
def published(redis_url: str, read_queue: Reader) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The events the receiver published to the test's queue, in order."""
    yield lambda: [event for message in read_queue(redis_url) for event in message["body"]["events"]]


def post_contentful(base: str, topic: str, payload: dict[str, Any], *, secret: str = CONTENTFUL_SECRET,
                    signed_at_ms: int | None = None) -> requests.Response:
    body = json.dumps(payload).encode()
    headers = {"content-type": "application/vnd.contentful.management.v1+json", "x-contentful-topic": topic}
    signed_at_ms = int(time.time() * 1000) if signed_at_ms is None else signed_at_ms
    headers |= contentful_signature_headers(secret, "POST", "/hooks/blog", headers, body, signed_at_ms)
    return requests.post(f"{base}/hooks/blog", data=body, headers=headers, timeout=10)


def post_strapi(base: str, payload: dict[str, Any], *, token: str = STRAPI_TOKEN) -> requests.Response:
    return requests.post(f"{base}/hooks/shop", json=payload, headers={"Authorization": token}, timeout=10)


def post_generic(base: str, body: bytes, *, secret: str = GENERIC_SECRET, signed_at: int | None = None) -> requests.Response:
    signature = pushsync_signature(secret, body, int(time.time()) if signed_at is None else signed_at)
    return requests.post(f"{base}/hooks/direct", data=body, timeout=10,
                         headers={"X-Pushsync-Signature": signature, "Content-Type": "application/json"})


def test_a_contentful_publish_becomes_an_item_upsert(receiver: str, published: Callable[[], list]) -> None:
    answer = post_contentful(receiver, "ContentManagement.Entry.publish", contentful_published_entry())
    assert answer.status_code == 202, answer.text
    [event] = published()
    assert answer.json() == {"published": 1, "eventIds": [event["eventId"]]}
    assert event["kind"] == "item.upsert" and event["source"] == "source-blog"
    assert event["documentId"] == f"https://blog.example.com/blogPost/{ENTRY_ID}"
    assert event["version"] == epoch_ms("2026-11-22T10:00:00.456+00:00")  # sys.publishedAt
    assert event["occurredAt"] == "2026-11-22T10:00:00.456000Z"
    assert event["item"] == {
        "metadata": {"author": "author-17", "tags": ["food", "health"], "title": "Hello, World!"},
        "data": "Bacon is healthy!\nSecond paragraph.",
        "fileExtension": ".txt",
        "permissions": [{"allowAnonymous": True, "allowedPermissions": [], "deniedPermissions": []}],
    }


@pytest.mark.parametrize(("action", "body", "stamped"), [
    ("unpublish", contentful_tombstone(), "2026-11-22T11:00:00+00:00"),  # sys.deletedAt
    ("delete", contentful_tombstone(), "2026-11-22T11:00:00+00:00"),
    ("archive", contentful_archived_entry(), "2026-11-22T12:00:00+00:00"),  # sys.archivedAt
])
def test_contentful_removals_become_item_deletes(receiver: str, published: Callable[[], list], action: str,
                                                 body: dict[str, Any], stamped: str) -> None:
    answer = post_contentful(receiver, f"ContentManagement.Entry.{action}", body)
    assert answer.status_code == 202, answer.text
    [event] = published()
    assert (event["kind"], event["version"], event["deleteChildren"]) == ("item.delete", epoch_ms(stamped), False)
    assert event["documentId"] == f"https://blog.example.com/blogPost/{ENTRY_ID}"


def test_the_same_delivery_twice_has_the_same_event_id(receiver: str, published: Callable[[], list]) -> None:
    for _ in range(2):
        assert post_contentful(receiver, "ContentManagement.Entry.publish", contentful_published_entry()).status_code == 202
    first, second = published()
    assert first["eventId"] == second["eventId"]


def test_topics_that_do_not_change_the_index_are_acknowledged_and_ignored(
    receiver: str, published: Callable[[], list],
) -> None:
    answer = post_contentful(receiver, "ContentManagement.Entry.auto_save", contentful_published_entry())
    assert answer.status_code == 200 and "does not change the index" in answer.json()["ignored"]
    assert published() == []


def test_strapi_updates_and_deletes(receiver: str, published: Callable[[], list]) -> None:
    assert post_strapi(receiver, strapi_event("entry.update")).status_code == 202
    assert post_strapi(receiver, strapi_event("entry.delete")).status_code == 202
    upsert, delete = published()
    sent_ms = epoch_ms("2026-11-22T10:00:05+00:00")  # the hook's createdAt
    assert upsert["documentId"] == delete["documentId"] == "https://shop.example.com/article/qx0u6m5lq1yb1g5hbb4rz3c8"
    assert (upsert["kind"], upsert["version"]) == ("item.upsert", sent_ms)
    assert upsert["item"] == {"metadata": {"slug": "hello", "category": "cat3xyz", "title": "Hello"}, "data": "Some text"}
    assert (delete["kind"], delete["version"]) == ("item.delete", sent_ms)


def test_strapi_drafts_and_other_locales_are_ignored(receiver: str, published: Callable[[], list]) -> None:
    assert post_strapi(receiver, strapi_event("entry.update", publishedAt=None)).status_code == 200
    assert post_strapi(receiver, strapi_event("entry.publish", locale="fr")).status_code == 200
    assert published() == []


def test_generic_events_are_published_as_signed(receiver: str, published: Callable[[], list]) -> None:
    events = [item_upsert(1), item_delete(2)]
    answer = post_generic(receiver, json.dumps({"events": events}).encode())
    assert answer.status_code == 202, answer.text
    assert published() == events


@pytest.mark.parametrize(
    ("send", "status", "reason"),
    [
        (lambda base: post_contentful(base, "ContentManagement.Entry.publish", contentful_published_entry(),
                                      secret="d" * 64), 401, "signature does not match the request"),
        (lambda base: post_contentful(base, "ContentManagement.Entry.publish", contentful_published_entry(),
                                      signed_at_ms=int(time.time() * 1000) - 3_600_000), 401, "outside the 300 s tolerance"),
        (lambda base: requests.post(f"{base}/hooks/blog", json=contentful_tombstone(), timeout=10,
                                    headers={"x-contentful-topic": "ContentManagement.Entry.delete"}),
         401, "missing Contentful signature headers"),
        (lambda base: post_generic(base, json.dumps(item_upsert(1)).encode(), secret="wrong"), 401,
         "signature does not match the body"),
        (lambda base: post_generic(base, json.dumps(item_upsert(1)).encode(), signed_at=int(time.time()) - 301), 401,
         "outside the 300 s tolerance"),
        (lambda base: requests.post(f"{base}/hooks/direct", json=item_upsert(1), timeout=10), 401,
         "missing X-Pushsync-Signature header"),
        (lambda base: post_strapi(base, strapi_event("entry.update"), token="Bearer guess"), 401,
         "missing or wrong token in the Authorization header"),
        (lambda base: post_generic(base, b"x" * (MAX_BODY_BYTES + 1)), 413, "over the 16,384-byte limit"),
        (lambda base: requests.post(f"{base}/hooks/direct", data=iter([b"x" * 8192] * 3), timeout=10,
                                    headers={"Content-Type": "application/json"}), 413,
         "body is over the 16,384-byte limit"),
        (lambda base: post_contentful(base, "ContentManagement.Entry.publish",
                                      contentful_published_entry(author={"en-US": {"lat": 45.5, "lon": -73.6}})),
         400, "field 'author' holds an object"),
        (lambda base: post_strapi(base, {**strapi_event("entry.update"), "createdAt": "yesterday"}), 400,
         "the hook's createdAt (the version) is missing or not an ISO 8601 date-time"),
        (lambda base: post_generic(base, json.dumps(item_upsert(1, source="source-other")).encode()), 400,
         "event 0: targets 'source-other'; this hook's source is 'source-a'"),
        (lambda base: post_generic(base, json.dumps(item_upsert(1, version="x")).encode()), 400,
         "event 0: version: expected an integer"),
        (lambda base: post_generic(base, b"[not json"), 400, "body: not JSON"),
        (lambda base: requests.post(f"{base}/hooks/nowhere", data=b"{}", timeout=10), 404, "no hook is configured"),
    ],
    ids=["contentful-bad-signature", "contentful-stale", "contentful-unsigned", "generic-bad-signature",
         "generic-stale", "generic-unsigned", "strapi-bad-token", "oversized", "oversized-chunked",
         "contentful-unmappable-field", "strapi-bad-version", "generic-other-source", "generic-invalid-event",
         "generic-not-json", "unknown-hook"],
)
def test_refused_requests_get_their_status_and_reason_and_publish_nothing(
    receiver: str, published: Callable[[], list], send: Callable[[str], requests.Response], status: int, reason: str,
) -> None:
    answer = send(receiver)
    assert answer.status_code == status
    assert reason in answer.json()["error"]
    for secret in (CONTENTFUL_SECRET, GENERIC_SECRET, STRAPI_TOKEN):
        assert secret not in answer.text
    assert published() == []


def test_healthz(receiver: str) -> None:
    answer = requests.get(f"{receiver}/healthz", timeout=10)
    assert (answer.status_code, answer.json()) == (200, {"status": "ok", "broker": "ok"})
