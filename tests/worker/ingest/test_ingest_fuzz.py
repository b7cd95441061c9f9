"""Fuzzing ingestion through a real broker and a real worker: any message, whatever it holds.

Each example publishes a few messages built to a known fate, as a third-party publisher could
send them: valid envelopes (plain, padded to megabytes, kombu-compressed), envelopes mixing
valid and invalid events (lone surrogates, deep nesting, control characters), bodies that are
not JSON, nested 100,000 levels deep or random bytes, compression headers that lie, unknown
codecs, compression bombs, and stream entries without a body. Then every valid event must be
in its window, every bad part in quarantine with a reason, each entry under its cap, and the
worker the same living process.

The default profile is short; `PUSHSYNC_FUZZ_EXAMPLES=N` runs N examples per broker (see
docs/reliability.md for the long campaign's figures).
"""

from __future__ import annotations

import json
import os
import uuid
import zlib
from dataclasses import dataclass, field

import pytest
import redis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from producers import broker
from tests.support.raw import append_entry, publish_raw
from tests.support.times import occurred
from tests.worker.e2e import wait_for
from worker.ingest import quarantine
from worker.store import keys

pytestmark = pytest.mark.slow

SOURCE = keys.Target(keys.SOURCE, "fuzzed")
EXAMPLES = int(os.environ.get("PUSHSYNC_FUZZ_EXAMPLES", "20"))
BOMB = zlib.compress(b"\0" * (20 * 1024 * 1024), 9)
"""20 MiB of NULs in about 20 KB: over the message limit once decompressed."""


@dataclass
class Fate:
    """What must become of the messages of one example."""

    valid: set[str] = field(default_factory=set)
    """documentIds that must reach the window."""
    quarantined: int = 0
    """Quarantine entries the example must add."""


def valid_event(document_id: str) -> dict:
    return {"schemaVersion": 1, "eventId": uuid.uuid4().hex, "occurredAt": occurred(),
            "kind": "item.upsert", "source": SOURCE.id, "documentId": document_id, "version": 1,
            "item": {"data": "fuzz", "metadata": {"title": "t"}}}


def new_id() -> str:
    return f"https://fuzz.example/{uuid.uuid4().hex}"


INVALID_EVENT_TEXTS = {
    # Raw JSON text of one event each: what json.dumps cannot produce (surrogates, depth) is written by hand.
    "surrogate": lambda: json.dumps(valid_event(new_id())).replace('"title": "t"', '"title": "\\ud800"'),
    # Deep, yet within what the JSON parser reads: the event is refused, its neighbours are not.
    "deep": lambda: json.dumps(valid_event(new_id())).replace('"title": "t"', '"title": ' + "[" * 500 + "]" * 500),
    "control": lambda: json.dumps(valid_event("https://fuzz.example/\x07\x00")),
    "no-version": lambda: json.dumps({k: v for k, v in valid_event(new_id()).items() if k != "version"}),
    "string-version": lambda: json.dumps({**valid_event(new_id()), "version": "7"}),
}


CONTENT_TYPES = ["application/json", "text/plain", "application/x-msgpack", "multipart/form-data; boundary=x", ""]
CONTENT_ENCODINGS = ["binary", "utf-8", "latin-1", "gzip"]
"""What a publisher may claim of a body: ingestion reads the body as JSON whatever these say."""
Message = tuple[bytes, dict[str, str] | None]


@st.composite
def messages(draw: st.DrawFn, on_redis: bool) -> tuple[list[Message], Fate, tuple[str, str]]:
    fate = Fate()
    out: list[Message] = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["valid", "mixed", "junk", "not-envelope", "deep-body", "bytes",
                                     "lying-gzip", "bogus-codec", "bomb", "zlib-valid", "padded",
                                     *(["no-body"] if on_redis else [])]))
        if kind in ("valid", "zlib-valid", "padded"):
            ids = [new_id() for _ in range(draw(st.integers(1, 5)))]
            body = json.dumps({"events": [valid_event(i) for i in ids]}).encode()
            headers = None
            if kind == "padded":
                body = body[:-1] + b" " * draw(st.sampled_from([1024, 1024 * 1024, 10 * 1024 * 1024])) + b"}"
            if kind == "zlib-valid":
                body, headers = zlib.compress(body), {"compression": "application/x-gzip"}
            fate.valid |= set(ids)
            out.append((body, headers))
        elif kind == "mixed":
            ids = [new_id() for _ in range(draw(st.integers(0, 3)))]
            bad = draw(st.lists(st.sampled_from(sorted(INVALID_EVENT_TEXTS)), min_size=1, max_size=3))
            texts = [json.dumps(valid_event(i)) for i in ids] + [INVALID_EVENT_TEXTS[b]() for b in bad]
            texts = draw(st.permutations(texts))
            out.append((('{"events": [' + ",".join(texts) + "]}").encode(), None))
            fate.valid |= set(ids)
            fate.quarantined += len(bad)
        else:
            body, headers = {
                "junk": (draw(st.text(max_size=200)).encode("utf-8", "surrogatepass") + b"\x00not json", None),
                "not-envelope": (json.dumps(draw(st.sampled_from([[1, 2], {"event": []}, "x", None]))).encode(), None),
                "deep-body": (b'{"events": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", None),
                "bytes": (draw(st.binary(min_size=1, max_size=300)) + b"\xff", None),
                "lying-gzip": (b'{"events": []} not zlib at all', {"compression": "application/x-gzip"}),
                "bogus-codec": (zlib.compress(b'{"events": []}'), {"compression": "application/x-bogus"}),
                "bomb": (BOMB, {"compression": "application/x-gzip"}),
                "no-body": (b"", None),
            }[kind]
            if kind == "no-body":
                headers = {"__no_body__": "1"}
            out.append((body, headers))
            fate.quarantined += 1
    return out, fate, (draw(st.sampled_from(CONTENT_TYPES)), draw(st.sampled_from(CONTENT_ENCODINGS)))


def send(url: str, batch: list[Message], claims: tuple[str, str]) -> None:
    content_type, content_encoding = claims
    for body, headers in batch:
        if headers and "__no_body__" in headers:
            append_entry(url, {b"content-type": content_type.encode(), b"note": b"no body"})
        else:
            publish_raw(url, [body], headers=headers, content_type=content_type, content_encoding=content_encoding)


def test_any_message_is_coalesced_or_quarantined_and_the_worker_lives(workers, redis_client, redis_url, events_broker):
    worker = workers.start("worker", {"REDIS_URL": redis_url, "BROKER_URL": events_broker,
                                      "PUSHSYNC_WINDOW_SECONDS": "3600"})
    store = redis.Redis.from_url(redis_url)
    on_redis = not broker.is_amqp(events_broker)

    # No shrinking: each try costs a round trip through the worker, and the failing example is printed whole.
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("PUSHSYNC_FUZZ_EXAMPLES"),
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate], database=None)
    @given(example=messages(on_redis))
    def check(example: tuple[list[Message], Fate, tuple[str, str]]) -> None:
        batch, fate, claims = example
        before = quarantine.count(store)
        send(events_broker, batch, claims)
        wait_for(lambda: quarantine.count(store) >= before + fate.quarantined
                 and all(store.hexists(SOURCE.window, i) for i in fate.valid), 20, 0.02,
                 f"{len(fate.valid)} valid event(s) in the window and {fate.quarantined} quarantine entries")
        assert quarantine.count(store) == before + fate.quarantined
        assert worker.popen.poll() is None, worker.log()[-3000:]

    check()
    for raw in store.hvals(keys.QUARANTINE):
        assert len(raw) <= quarantine.ENTRY_MAX_CHARS
        assert json.loads(raw)["reason"]
    assert "Unrecoverable error" not in worker.log()
