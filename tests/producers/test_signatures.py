"""The signature schemes on their own: what verifies, and why the rest does not."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from producers.webhook.signatures import (
    CONTENTFUL_SIGNED_HEADERS,
    SignatureError,
    contentful_signature_headers,
    pushsync_signature,
    verify_contentful,
    verify_pushsync,
)

SECRET = "s" * 64
NOW = 1_800_000_000.0
BODY = b'{"sys":{"id":"abc"}}'


def test_pushsync_signature_verifies_and_accepts_any_listed_secret_during_rotation() -> None:
    header = pushsync_signature(SECRET, BODY, int(NOW))
    verify_pushsync(SECRET, header, BODY, now=NOW, tolerance=300)
    old = pushsync_signature("old-secret", BODY, int(NOW)).split(",")[1]
    verify_pushsync(SECRET, f"{old},{header}", BODY, now=NOW + 10, tolerance=300)


@pytest.mark.parametrize(
    ("header", "body", "now", "reason"),
    [
        (None, BODY, NOW, "missing X-Pushsync-Signature header"),
        ("v1=abc", BODY, NOW, "malformed X-Pushsync-Signature header"),
        (pushsync_signature(SECRET, BODY, int(NOW)), BODY + b" ", NOW, "signature does not match the body"),
        (pushsync_signature(SECRET, BODY, int(NOW)), BODY, NOW + 301, "outside the 300 s tolerance"),
        (pushsync_signature(SECRET, BODY, int(NOW)), BODY, NOW - 301, "outside the 300 s tolerance"),
        ("t=\u00b2,v1=ab", BODY, NOW, "malformed X-Pushsync-Signature header"),
        ("t=" + "1" * 400 + ",v1=ab", BODY, NOW, "malformed X-Pushsync-Signature header"),
        (f"t={int(NOW)},v1=\u00e9", BODY, NOW, "signature does not match the body"),
    ],
)
def test_pushsync_refusals(header: str | None, body: bytes, now: float, reason: str) -> None:
    with pytest.raises(SignatureError, match=re.escape(reason)):
        verify_pushsync(SECRET, header, body, now=now, tolerance=300)


def signed(path: str = "/hooks/blog", **extra: str) -> dict[str, str]:
    headers = {"content-type": "application/json", "x-contentful-topic": "ContentManagement.Entry.publish", **extra}
    return headers | contentful_signature_headers(SECRET, "POST", path, headers, BODY, int(NOW * 1000))


def test_contentful_signature_covers_sorted_headers_and_its_own_metadata() -> None:
    headers = signed()
    assert headers[CONTENTFUL_SIGNED_HEADERS] == (
        "content-type,x-contentful-signed-headers,x-contentful-timestamp,x-contentful-topic"
    )
    verify_contentful(SECRET, "POST", "/hooks/blog", headers, BODY, now=NOW, tolerance=30)


def test_contentful_paths_with_queries_verify_and_differ_by_query() -> None:
    headers = signed("/hooks/blog?a=1&b=2")
    verify_contentful(SECRET, "POST", "/hooks/blog?a=1&b=2", headers, BODY, now=NOW, tolerance=30)
    with pytest.raises(SignatureError):
        verify_contentful(SECRET, "POST", "/hooks/blog?b=2&a=1", headers, BODY, now=NOW, tolerance=30)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda h: h | {"x-contentful-topic": "ContentManagement.Entry.delete"}, "does not match the request"),
        (lambda h: {k: v for k, v in h.items() if k != "x-contentful-signature"}, "missing Contentful signature"),
        (lambda h: h | {CONTENTFUL_SIGNED_HEADERS: "content-type"}, "lists fewer than 2 headers"),
        # A signed header left out is left out of the recomputed list too: the HMAC differs.
        (lambda h: {k: v for k, v in h.items() if k != "x-contentful-topic"}, "does not match the request"),
        (lambda h: h | {"x-contentful-timestamp": str(int((NOW - 31) * 1000))}, "outside the 30 s tolerance"),
        (lambda h: h | {"x-contentful-timestamp": str(int((NOW - 30) * 1000))}, "outside the 30 s tolerance"),
        (lambda h: h | {"x-contentful-timestamp": str(int((NOW + 31) * 1000))}, "in the future"),
        (lambda h: h | {"x-contentful-timestamp": "\u00b2" * 13}, "not a time in milliseconds"),
        (lambda h: h | {"x-contentful-timestamp": "1" * 400}, "not a time in milliseconds"),
        (lambda h: h | {"x-contentful-signature": "\u00e9" * 64}, "does not match the request"),
        (lambda h: h | {"x-contentful-signature": "\u00e9"}, "not 64 characters long"),
    ],
)
def test_contentful_refusals(change: Callable[[dict[str, str]], dict[str, str]], reason: str) -> None:
    with pytest.raises(SignatureError, match=re.escape(reason)):
        verify_contentful(SECRET, "POST", "/hooks/blog", change(signed()), BODY, now=NOW, tolerance=30)


def test_contentful_follows_the_toolkit_where_it_is_lenient() -> None:
    """What Contentful's own verifier takes is taken: the list of signed headers may be re-ordered or
    name headers that are not there (the HMAC covers the list recomputed from the headers present),
    and the timestamp may carry what parseInt stops at."""
    headers = signed()
    listed = headers[CONTENTFUL_SIGNED_HEADERS]
    for changed in (f"{listed},not-sent", ",".join(reversed(listed.split(","))), "content-type,x-contentful-topic"):
        verify_contentful(SECRET, "POST", "/hooks/blog", headers | {CONTENTFUL_SIGNED_HEADERS: changed}, BODY,
                          now=NOW, tolerance=30)
    stamp = headers["x-contentful-timestamp"]
    verify_contentful(SECRET, "POST", "/hooks/blog", headers | {"x-contentful-timestamp": f" {stamp}.9xyz"}, BODY,
                      now=NOW, tolerance=30)


def test_contentful_signs_the_target_as_sent() -> None:
    """The path stays as it came (a %20 is encoded once more, not decoded), and what follows a second
    `?` is no part of the signed request, as in the toolkit."""
    headers = signed("/hooks/news%20feed?return=/preview?entry=5KsD")
    verify_contentful(SECRET, "POST", "/hooks/news%20feed?return=/preview?entry=5KsD", headers, BODY,
                      now=NOW, tolerance=30)
    verify_contentful(SECRET, "POST", "/hooks/news%20feed?return=/preview?other", headers, BODY, now=NOW, tolerance=30)
    for other in ("/hooks/news feed?return=/preview?entry=5KsD", "/hooks/news%2520feed?return=/preview?entry=5KsD"):
        with pytest.raises(SignatureError, match="does not match"):
            verify_contentful(SECRET, "POST", other, headers, BODY, now=NOW, tolerance=30)


# Signatures computed by Contentful's own signRequest (@contentful/node-apps-toolkit 3.16.1, run
# through tests/node/contentful_sign.mjs) with the secret "c" * 64, at 1_800_000_000_000 ms, over
# the body "{}" and a Content-Type of application/json (plus the extra header shown).
TOOLKIT_SECRET = "c" * 64
TOOLKIT_SIGNED = [
    ("/hooks/news%20feed", {}, "33635f203ac2560785854c1a3d40c73fa60e0f5d42b55791c06226cbdb1dd10a"),
    ("/hooks/news%20feed?return=/preview?entry=5KsD", {},
     "ec270ea9ed40ec3958263e436b851052d153feeefeade75369e3eecd11b8c2ec"),
    ("/hooks/blog", {"x-tag": "v\u0085"}, "de93be2c53cc1214f0db08a2aad5414076be46bf482b40a6da11fe7deb6c976a"),
]


@pytest.mark.parametrize(("target", "extra", "signature"), TOOLKIT_SIGNED, ids=["encoded-path", "second-?", "nel"])
def test_requests_signed_by_contentfuls_toolkit_verify(target: str, extra: dict[str, str], signature: str) -> None:
    names = ",".join(sorted(["content-type", CONTENTFUL_SIGNED_HEADERS, "x-contentful-timestamp", *extra]))
    headers = {"content-type": "application/json", **extra, "x-contentful-signature": signature,
               CONTENTFUL_SIGNED_HEADERS: names, "x-contentful-timestamp": "1800000000000"}
    verify_contentful(TOOLKIT_SECRET, "POST", target, headers, b"{}", now=NOW, tolerance=30)
    assert contentful_signature_headers(TOOLKIT_SECRET, "POST", target, {"content-type": "application/json", **extra},
                                        b"{}", int(NOW * 1000))["x-contentful-signature"] == signature
