"""Receiver fuzz lane: random requests, most of them malformed, to the real receiver over HTTP and a real broker.

Hypothesis draws the method, the target (hook names in several encodings, unknown names with
control characters, other paths), the content type, the body (random bytes, random JSON, JSON
nested up to 100,000 levels, lone surrogates, 1e400, events and payloads the adapters map,
bodies over the limit, sent whole or chunked) and the credentials (none, garbage, odd
timestamps and signatures, stale, another secret, or valid). Every answer must be a 4xx with a
reason, a 200 or 202, or a 503 (none here: the broker is up); every answer is counted once in
pushsync_webhook_requests_total under the right hook and status; nothing reaches the events
queue without valid credentials, and what a 202 announces is exactly what is on the queue.

Examples per broker: PUSHSYNC_RECEIVER_EXAMPLES (default 100); a few thousand for a long run.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from producers.webhook import metrics
from producers.webhook.signatures import contentful_signature_headers, pushsync_signature
from tests.producers.conftest import item_upsert
from tests.producers.payloads import contentful_published_entry, strapi_event
from tests.support import http_raw
from tests.support.raw import drain

EXAMPLES = int(os.environ.get("PUSHSYNC_RECEIVER_EXAMPLES", "100"))
GENERIC_SECRET = "generic-fuzz-secret"
CONTENTFUL_SECRET = "f" * 64
STRAPI_TOKEN = "Bearer fuzz-token"
MAX_BODY_BYTES = 256 * 1024
"""Large enough for JSON nested 100,000 levels deep, small enough to pass now and then."""
TOLERANCE_SECONDS = 300
CONTENTFUL_ITEM = {"document_id": "https://blog.example.com/{contentType}/{id}", "title": "title", "body": "body",
                   "metadata": {"author": "author", "tags": "tags"}}
HOOKS: dict[str, dict[str, Any]] = {
    "direct": {"adapter": "generic", "secret": GENERIC_SECRET, "source_id": "source-a", "provider_id": "provider-a"},
    "blog": {"adapter": "contentful", "secret": CONTENTFUL_SECRET, "source_id": "source-blog", "item": CONTENTFUL_ITEM},
    "news feed": {"adapter": "contentful", "secret": CONTENTFUL_SECRET, "source_id": "source-news",
                  "item": CONTENTFUL_ITEM},
    "shop": {"adapter": "strapi", "secret": STRAPI_TOKEN, "source_id": "source-shop",
             "item": {"document_id": "https://shop.example.com/{model}/{documentId}", "title": "title",
                      "body": "body"}},
}
CONFIG = {"server": {"max_body_bytes": MAX_BODY_BYTES, "tolerance_seconds": TOLERANCE_SECONDS}, "sources": HOOKS}
REQUESTS_METRIC = "pushsync_webhook_requests"
CONTENT_TYPES = (None, "application/json", "application/json; charset=utf-8", "APPLICATION/JSON",
                 'application/json;charset="UTF-8"', "application/vnd.contentful.management.v1+json",
                 "application/json; charset=latin-1", "text/plain", "text/json", "multipart/form-data; boundary=x",
                 "application/x-www-form-urlencoded", "application/+json", "application/", ";", "json",
                 "application/jsonx", "application/json; charset=")
JSON_CONTENT_TYPE = "application/json"
UNKNOWN_NAMES = ("nowhere", "a%0Ab", "a%0D%0A[fake]%20line", "%00", "%C3%A9", "blog%20", "%2e%2e", "x" * 300)
OTHER_PATHS = ("/", "/hooks/", "/hooks", "/hooks/blog/extra", "/healthz/x", "/%FF", "/hooks/direct/",
               "/hooks/a b", "/hooks/\u00e9")
"""The last two are no valid request targets: the HTTP layer refuses them before the app sees them."""
TIMESTAMPS = ("\u00b2", "1" * 400, "\u0661\u0662\u0663", "-5", "", "0x10", "1e9", " 17 ", "9" * 15, "9" * 16)
SIGNATURES = ("\u00e9", "\u00e9" * 64, "0" * 64, "", "zz", "\u00ff" * 63 + "a")
VALUE_CHARS = st.sampled_from([*(chr(code) for code in range(0x21, 0x7F)), " ", *(chr(code) for code in range(0x80, 0x100))])
CREDENTIALS = ("none", "valid", "valid", "valid", "stale", "future", "other-secret", "garbage", "odd-timestamp",
               "odd-signature")
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)


@dataclass(frozen=True)
class Sent:
    """One fuzzed request: what was sent, and what the answer must show."""

    method: str
    target: str
    hook: str | None
    """The configured hook the target names, if any."""
    headers: list[tuple[str, str]]
    body: bytes
    chunked: bool
    authentic: bool
    """Carries the hook's valid credentials."""


def _bodies(hook: str | None, proper: bool) -> st.SearchStrategy[bytes]:
    """Bodies for `hook`'s adapter: what it maps when `proper`, else anything."""
    adapter = HOOKS[hook]["adapter"] if hook else "generic"
    mapped = {"generic": st.integers(1, 10**6).map(lambda n: json.dumps(item_upsert(n)).encode()),
              "contentful": st.just(json.dumps(contentful_published_entry()).encode()),
              "strapi": st.just(json.dumps(strapi_event("entry.update")).encode())}[adapter]
    deep = st.integers(1, 100_000).map(lambda depth: b"[" * depth + b"]" * depth)
    deep_object = st.integers(900, 1100).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth)
    surrogate = mapped.map(lambda body: body.replace(b'"https://', b'"\\ud800https://', 1).replace(
        b'"5KsD', b'"\\udfff5KsD', 1).replace(b'"qx0u', b'"\\ud83dqx0u', 1))
    huge_number = mapped.map(lambda body: body.replace(b'"tags"', b'"big": 1e400, "tags"', 1))
    if proper:
        return mapped
    return st.one_of(
        mapped, mapped, deep, deep_object, surrogate, huge_number,
        st.binary(max_size=64), JSON_VALUES.map(lambda value: json.dumps(value).encode()),
        st.integers(MAX_BODY_BYTES - 2, MAX_BODY_BYTES + 2).map(lambda size: b" " * size),
    )


def _credentials(hook: str | None, kind: str, target: str, body: bytes, content_type: str | None,
                 draw: st.DrawFn) -> list[tuple[str, str]]:
    adapter = HOOKS[hook]["adapter"] if hook else draw(st.sampled_from(["generic", "contentful", "strapi"]))
    now = time.time()
    moment = {"stale": now - 2 * TOLERANCE_SECONDS, "future": now + 2 * TOLERANCE_SECONDS}.get(kind, now)
    if kind == "none":
        return []
    if adapter == "strapi":
        token = {"valid": STRAPI_TOKEN, "other-secret": "Bearer guess"}.get(kind, draw(st.text(VALUE_CHARS, max_size=20)))
        return [("Authorization", token)]
    if adapter == "generic":
        secret = "another-secret" if kind == "other-secret" else GENERIC_SECRET
        header = pushsync_signature(secret, body, int(moment))
        if kind == "odd-timestamp":
            header = f"t={draw(st.sampled_from(TIMESTAMPS))},{header.split(',')[1]}"
        elif kind == "odd-signature":
            header = f"t={int(now)},v1={draw(st.sampled_from(SIGNATURES))}"
        elif kind == "garbage":
            header = draw(st.text(VALUE_CHARS, max_size=40))
        return [("X-Pushsync-Signature", header.strip(" \t"))]
    secret = "e" * 64 if kind == "other-secret" else CONTENTFUL_SECRET
    signed = {"x-contentful-topic": "ContentManagement.Entry.publish"}
    if content_type is not None:
        signed["content-type"] = content_type
    headers = contentful_signature_headers(secret, "POST", target, signed, body, int(moment * 1000))
    if kind == "odd-timestamp":
        headers["x-contentful-timestamp"] = draw(st.sampled_from(TIMESTAMPS))
    elif kind == "odd-signature":
        headers["x-contentful-signature"] = draw(st.sampled_from(SIGNATURES))
    elif kind == "garbage":
        headers = {name: draw(st.text(VALUE_CHARS, max_size=30)).strip(" \t") for name in headers}
    return [("X-Contentful-Topic", "ContentManagement.Entry.publish"), *headers.items()]


@st.composite
def requests_(draw: st.DrawFn) -> Sent:
    # One request in four is as a CMS sends it (so some pass, and what passes is checked too).
    proper = draw(st.integers(0, 3)) == 0
    method = "POST" if proper else draw(st.sampled_from(["POST"] * 16 + ["GET", "PUT", "DELETE", "PATCH"]))
    place = "hook" if proper else draw(st.sampled_from(["hook"] * 8 + ["unknown", "other"]))
    hook = draw(st.sampled_from(sorted(HOOKS))) if place == "hook" else None
    if hook is not None:
        path = "/hooks/" + draw(st.sampled_from([hook.replace(" ", "%20"), "".join(f"%{b:02x}" for b in hook.encode())]))
    elif place == "unknown":
        path = "/hooks/" + draw(st.sampled_from(UNKNOWN_NAMES))
    else:
        path = draw(st.sampled_from(OTHER_PATHS))
    query = draw(st.none() | st.text(st.sampled_from("abc=&?%20/+"), max_size=12))
    target = path if query is None else f"{path}?{query}"
    content_type = draw(st.sampled_from(CONTENT_TYPES)) if not proper and draw(st.booleans()) else (
        "application/vnd.contentful.management.v1+json" if hook and HOOKS[hook]["adapter"] == "contentful"
        else JSON_CONTENT_TYPE)
    # The HTTP layer answers a bad target at once and closes: a large body still being sent
    # would make the kernel reset the connection before the answer is read.
    body = b"{}" if not target.isascii() or " " in target else draw(_bodies(hook, proper))
    kind = "valid" if proper else draw(st.sampled_from(CREDENTIALS))
    credentials = _credentials(hook, kind, target, body, content_type, draw)
    junk = draw(st.lists(st.tuples(st.sampled_from(["X-Junk", "Accept", "X-Pushsync-Signature", "Authorization"]),
                                   st.text(VALUE_CHARS, max_size=16).map(lambda v: v.strip(" \t"))),
                         max_size=0 if proper else 2))
    headers = [("Content-Type", content_type)] if content_type is not None else []
    headers += credentials + junk
    # A junk copy of the hook's own credential header comes last, so it is the one read.
    own = {"generic": "X-Pushsync-Signature", "strapi": "Authorization"}.get(HOOKS[hook]["adapter"]) if hook else None
    authentic = kind == "valid" and hook is not None and method == "POST" and all(name != own for name, _ in junk)
    return Sent(method, target, hook, headers, body, draw(st.booleans()), authentic)


def _counts() -> dict[tuple[str, str], float]:
    counted = {}
    for family in metrics.REGISTRY.collect():
        if family.name == REQUESTS_METRIC:
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counted[(sample.labels["hook"], sample.labels["status"])] = sample.value
    return counted


def _wire(value: str) -> bytes:
    """A header value's bytes: Latin-1 where it fits (the receiver reads it back the same), else UTF-8."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode()


def _send(base: str, sent: Sent) -> http_raw.Answer:
    headers = [http_raw.host_header(base)] + [(name.encode(), _wire(value)) for name, value in sent.headers]
    if sent.chunked:
        size = max(1, len(sent.body) // 3)
        pieces = [sent.body[start:start + size] for start in range(0, len(sent.body), size)]
        body = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"
        headers.append((b"Transfer-Encoding", b"chunked"))
    else:
        body = sent.body
        headers.append((b"Content-Length", str(len(body)).encode()))
    return http_raw.send(base, sent.method, sent.target.encode(), headers, body)


@pytest.fixture()
def fuzzed_receiver(start_receiver: Callable[..., str], events_broker: str) -> tuple[str, str]:
    return start_receiver(CONFIG, events_broker), events_broker


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(sent=requests_())
def test_no_request_breaks_the_receiver(sent: Sent, fuzzed_receiver: tuple[str, str], queue_name: str) -> None:
    base, broker_url = fuzzed_receiver
    before = _counts()
    answer = _send(base, sent)
    after = _counts()
    event(f"{answer.status}")

    assert answer.status < 500 or answer.status == 503, (answer.status, answer.body[:300], sent)
    label = sent.hook if sent.hook is not None else metrics.UNKNOWN_HOOK
    changed = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}
    assert changed == {(label, str(answer.status)): 1}, (changed, sent.target)
    if answer.status >= 400:
        assert answer.headers.get("content-type", "").startswith("application/json"), answer.body[:200]
        reason = answer.json()["error"]
        assert isinstance(reason, str) and reason
    published = drain(broker_url, queue_name)
    if not sent.authentic:
        assert answer.status >= 400, (answer.status, answer.body[:300], sent)
        assert published == []
    if answer.status == 202:
        [message] = published
        events = json.loads(message)["events"]
        assert [item["eventId"] for item in events] == answer.json()["eventIds"]
    else:
        assert published == []
