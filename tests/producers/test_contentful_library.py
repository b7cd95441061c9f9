"""The receiver's verdict on Contentful requests equals Contentful's own verifier's, request by request.

Requests are signed by Contentful's signing library (@contentful/node-apps-toolkit, run by Node:
tests/support/contentful_toolkit.py), often tampered with, sent byte for byte to the real
receiver over HTTP, and the same request as a Node server would see it is given to the
toolkit's verifyRequest. Paths need percent-encoding (and are encoded in more than one way),
queries hold more `?`, headers hold Latin-1 text and spaces the two trims treat differently.
The one expected difference: a timestamp further in the future than the tolerance, which the
toolkit takes and the receiver refuses (see producers/webhook/signatures.py).

Examples: PUSHSYNC_CONTENTFUL_EXAMPLES (default 200); set it to a few thousand for a long run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from producers.webhook.signatures import CONTENTFUL_SIGNATURE, CONTENTFUL_SIGNED_HEADERS, CONTENTFUL_TIMESTAMP
from tests.support import http_raw
from tests.support.contentful_toolkit import Toolkit, start_toolkit

# Contentful's verifier runs in a Node.js process.
pytestmark = pytest.mark.process

EXAMPLES = int(os.environ.get("PUSHSYNC_CONTENTFUL_EXAMPLES", "200"))
SECRET = "Qm9vZ2FsbG9vNzE4Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1u"[:64]
OTHER_SECRET = SECRET[::-1]
TOLERANCE_SECONDS = 300
MARGIN_MS = 100_000
"""Ages are this far from the tolerance's edge, so the two clocks reading now a little apart never matter."""
OLDEST_MS = 4 * 365 * 24 * 3600 * 1000
"""The toolkit signs nothing dated before 2020: requests are at most four years old."""
HOOK_NAMES = ("blog", "news feed", "café crème", "50%off", "a+b;c=d", "it's (new)*~!", "[x]{y}|z^`", "q?a#b")
ITEM = {"document_id": "https://blog.example.com/{id}", "body": "body"}
CONFIG: dict[str, Any] = {
    "server": {"tolerance_seconds": TOLERANCE_SECONDS},
    "sources": {name: {"adapter": "contentful", "secret": SECRET, "source_id": f"source-{index}", "item": ITEM}
                for index, name in enumerate(HOOK_NAMES)},
}
CONTENT_TYPES = ("application/vnd.contentful.management.v1+json", "application/json",
                 "application/vnd.contentful.management.v1+json; charset=utf-8")
# What the test sets itself, or what changes how the body is read: never among the random headers.
RESERVED_HEADERS = frozenset({"host", "content-length", "content-type", "transfer-encoding", "connection", "expect",
                              "te", "upgrade", "keep-alive", "trailer", CONTENTFUL_SIGNATURE, CONTENTFUL_SIGNED_HEADERS,
                              CONTENTFUL_TIMESTAMP})
TOKEN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"
VCHAR = [chr(code) for code in range(0x21, 0x7F)]
# Header values: visible ASCII, inner spaces and tabs, and Latin-1 bytes 0x80-0xFF (obs-text),
# among them U+0085 and U+00A0, which Python's strip and JavaScript's trim do not agree on.
VALUE_CHARS = st.sampled_from([*VCHAR, " ", "\t", *(chr(code) for code in range(0x80, 0x100))])
TIMESTAMP_FORMS: tuple[Callable[[int], str], ...] = (
    lambda ts: f"{ts}abc", lambda ts: f"+{ts}", lambda ts: f"{ts}.9", lambda ts: f"0{ts}", lambda ts: f"{ts}\u00a0",
    lambda ts: "\u00b2" * 13, lambda ts: "1" * 400, lambda ts: "", lambda ts: f"-{ts}", lambda ts: f"{ts // 1000}",
)
TAMPERINGS = ("none", "none", "none", "body", "path-encoding", "query-tail", "header-value", "header-dropped",
              "list-extra", "list-upper", "list-short", "signature", "signature-upper", "secret", "timestamp-form",
              "signature-dropped", "list-dropped", "timestamp-dropped")


def encoded(name: str, choices: list[bool]) -> str:
    """`name` as a raw path segment: characters a target cannot hold literally are always
    percent-encoded, the others when their entry in `choices` says so (hex case varies too)."""
    out = []
    for index, char in enumerate(name):
        flip = choices[index % len(choices)] if choices else False
        if char in "%?#/ " or not char.isascii():
            hex_form = "%{:02X}" if flip else "%{:02x}"
            out.append("".join(hex_form.format(byte) for byte in char.encode()))
        else:
            out.append(f"%{ord(char):02X}" if flip else char)
    return "".join(out)


@dataclass
class Case:
    hook: str
    path_choices: list[bool]
    other_path_choices: list[bool]
    query: str | None
    content_type: str
    headers: dict[str, str]
    signed_names: list[str]
    body: str
    age_ms: int
    tampering: str
    timestamp_form: int
    forged_signature: str


def header_names() -> st.SearchStrategy[str]:
    invented = st.text(st.sampled_from(TOKEN), min_size=1, max_size=12)
    known = st.sampled_from(["x-contentful-topic", "X-Contentful-Topic", "x-contentful-crn", "User-Agent",
                             "Accept", "x-contentful-webhook-name", "1", "__proto__", "constructor"])
    return st.one_of(known, invented).filter(lambda name: name.lower() not in RESERVED_HEADERS)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    names = draw(st.lists(header_names(), max_size=6, unique_by=str.lower))
    headers = {name: draw(st.text(VALUE_CHARS, max_size=20)).strip(" \t") for name in names}
    query_piece = st.one_of(st.sampled_from(VCHAR), st.integers(0, 255).map(lambda byte: f"%{byte:02X}"), st.just("?"))
    ages = st.one_of(st.integers(-TOLERANCE_SECONDS * 1000 + MARGIN_MS, TOLERANCE_SECONDS * 1000 - MARGIN_MS),
                     st.integers(TOLERANCE_SECONDS * 1000 + MARGIN_MS, OLDEST_MS),
                     st.integers(-OLDEST_MS, -TOLERANCE_SECONDS * 1000 - MARGIN_MS))
    return Case(
        hook=draw(st.sampled_from(HOOK_NAMES)),
        path_choices=draw(st.lists(st.booleans(), max_size=8)),
        other_path_choices=draw(st.lists(st.booleans(), min_size=1, max_size=8)),
        query=draw(st.none() | st.lists(query_piece, max_size=16).map("".join)),
        content_type=draw(st.sampled_from(CONTENT_TYPES)),
        headers=headers,
        signed_names=draw(st.lists(st.sampled_from(["Content-Type", "Host", *names]), unique=True)),
        body=draw(st.text(st.characters(exclude_categories=("Cs",)), max_size=64)),
        age_ms=draw(ages),
        tampering=draw(st.sampled_from(TAMPERINGS)),
        timestamp_form=draw(st.integers(0, len(TIMESTAMP_FORMS) - 1)),
        forged_signature=draw(st.text(VALUE_CHARS.filter(lambda c: c not in " \t"), min_size=64, max_size=64)),
    )


@pytest.fixture(scope="module")
def toolkit() -> Iterator[Toolkit]:
    helper = start_toolkit()
    yield helper
    helper.close()


@pytest.fixture()
def receiver(start_receiver: Callable[..., str], redis_url: str) -> str:
    return start_receiver(CONFIG, redis_url)


def target(case: Case, choices: list[bool], query: str | None) -> str:
    path = f"/hooks/{encoded(case.hook, choices)}"
    return path if query is None else f"{path}?{query}"


def check(case: Case, toolkit: Toolkit, base: str) -> None:
    """Sign `case` with the toolkit, tamper with it as it says, send it, and compare the two verdicts."""
    now_ms = int(time.time() * 1000)
    signed_at = now_ms - case.age_ms
    host = http_raw.host_header(base)[1].decode()
    sent_body = case.body + (" " if case.tampering == "body" else "")
    common = {"Host": host, "Content-Type": case.content_type, **case.headers}
    signed_target = target(case, case.path_choices, case.query)
    sent_target = signed_target
    if case.tampering == "path-encoding":
        sent_target = target(case, case.other_path_choices, case.query)
    elif case.tampering == "query-tail":
        sent_target = f"{signed_target}{'?' if case.query is not None else '??'}tail=1"
    to_sign = {name: value for name, value in common.items() if name in case.signed_names}
    secret = OTHER_SECRET if case.tampering == "secret" else SECRET
    signature = toolkit.sign(secret, {"method": "POST", "path": signed_target, "headers": to_sign,
                                      "body": case.body}, signed_at)
    sent = dict(common)
    extra = [name for name in case.headers if name in case.signed_names]
    if case.tampering == "header-value" and extra:
        sent[extra[0]] += "x"
    elif case.tampering == "header-dropped" and extra:
        del sent[extra[0]]
    sent |= signature
    if case.tampering == "list-extra":
        sent[CONTENTFUL_SIGNED_HEADERS] += ",not-sent"
    elif case.tampering == "list-upper":
        sent[CONTENTFUL_SIGNED_HEADERS] = sent[CONTENTFUL_SIGNED_HEADERS].upper()
    elif case.tampering == "list-short":
        sent[CONTENTFUL_SIGNED_HEADERS] = CONTENTFUL_TIMESTAMP
    elif case.tampering == "signature":
        sent[CONTENTFUL_SIGNATURE] = case.forged_signature
    elif case.tampering == "signature-upper":
        sent[CONTENTFUL_SIGNATURE] = sent[CONTENTFUL_SIGNATURE].upper()
    elif case.tampering == "timestamp-form":
        sent[CONTENTFUL_TIMESTAMP] = TIMESTAMP_FORMS[case.timestamp_form](signed_at)
    elif case.tampering.endswith("-dropped") and case.tampering != "header-dropped":
        del sent[{"signature-dropped": CONTENTFUL_SIGNATURE, "list-dropped": CONTENTFUL_SIGNED_HEADERS,
                  "timestamp-dropped": CONTENTFUL_TIMESTAMP}[case.tampering]]
    body = sent_body.encode()
    sent["Content-Length"] = str(len(body))

    answer = http_raw.send(base, "POST", sent_target.encode(),
                           [(name.encode(), value.encode("latin-1")) for name, value in sent.items()], body)
    library, why = toolkit.verify(SECRET, {"method": "POST", "path": sent_target, "headers": sent, "body": sent_body},
                                  TOLERANCE_SECONDS)
    assert answer.status in (200, 202, 400, 401), (answer.status, answer.body)
    accepted = answer.status != 401
    event(f"{case.tampering}: toolkit {'takes' if library else 'refuses'}")
    too_far_ahead = -case.age_ms > TOLERANCE_SECONDS * 1000
    if too_far_ahead and library:
        assert not accepted and "in the future" in answer.json()["error"]
        return
    assert accepted == library, (f"receiver {answer.status} {answer.body!r}; toolkit {library} ({why}); "
                                 f"target {sent_target!r}, headers {sent!r}")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                      HealthCheck.too_slow])
@given(case=cases())
@example(case=Case("news feed", [], [True], None, CONTENT_TYPES[0], {}, ["Content-Type"], "{}", 0, "none", 0, "x" * 64))
@example(case=Case("blog", [], [True], "return=/preview?entry=5KsD", CONTENT_TYPES[0], {"X-Contentful-Topic": "t"},
                   ["X-Contentful-Topic"], "{}", 0, "none", 0, "x" * 64))
@example(case=Case("blog", [], [True], None, CONTENT_TYPES[0], {"x-a": "v\u0085"}, ["x-a"], "{}", 0, "none", 0, "x" * 64))
def test_the_receiver_agrees_with_contentfuls_verifier(case: Case, toolkit: Toolkit, receiver: str) -> None:
    check(case, toolkit, receiver)
