"""Console fuzz lane: random raw HTTP requests, most of them malformed, to a real console over a
real store and a real Redis broker holding dead letters and quarantined events.

Hypothesis draws the method, the path (the console's pages and actions, entry ids in several
encodings, markup, control characters, unknown paths), the Host header, the token (none, a
wrong one, one in a header or a form field), the Content-Length (missing, wrong, negative, not a
number, over the form limit) and the body. Every answer must be a well-formed HTTP answer with a
status the console documents (never a 500), within a few seconds; no request without the token
changes anything (the dead-letter queue and the quarantine keep every entry); and a page never
echoes the markup it was sent unescaped.

Examples: PUSHSYNC_CONSOLE_EXAMPLES (default 60); a few thousand for a long run.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator

import pytest
import redis
from celery import Celery
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers import broker
from producers.events.codec import InvalidEvent
from worker.commands.console.server import TOKEN_HEADER, Console, ConsoleServer, Handler
from worker.deadletter.operator import DeadLetterBrowser
from worker.ingest import quarantine
from worker.settings import load_settings

EXAMPLES = int(os.environ.get("PUSHSYNC_CONSOLE_EXAMPLES", "60"))
TOKEN = "fuzz-console-token-0123456789"
MARKUP = "<script>alert(1)</script>"
ANSWERED = {200, 400, 403, 404, 405, 408, 411, 413, 414, 431, 501, 503, 505}
"""What the console (or http.server under it) may answer; never 500."""
ANSWER_SECONDS = 10.0


@pytest.fixture(scope="module")
def console(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    """A console on a free loopback port over the test's store and a Redis broker with 3 dead
    letters and 2 quarantine entries; gives its port and its broker URL."""
    base, _, db = redis_url.rpartition("/")
    broker_url = f"{base}/{int(db) + 1}"
    settings = load_settings(redis_url=redis_url, broker_url=broker_url)
    for url in (redis_url, broker_url):
        redis.Redis.from_url(url).flushdb()
    store = redis.Redis.from_url(redis_url)
    letters = DeadLetterBrowser(broker_url, store)
    for n in range(3):
        event = {"kind": "item.delete", "source": "fz", "version": n + 1, "documentId": f"https://example.com/{n}"}
        letters.send("source:fz", f"b{n}", [json.dumps(event).encode()], RuntimeError(MARKUP), attempts=1)
    pipe = store.pipeline()
    for raw in (b"not json " + MARKUP.encode(), {"kind": MARKUP}):
        quarantine.keep(pipe, quarantine.entry_for(InvalidEvent(f"invalid: {MARKUP}", raw), queue=broker.EVENTS_QUEUE))
    pipe.execute()
    # A Celery app of the test's broker: the overview pings for workers and finds none.
    server = ConsoleServer(Console(Celery(broker=broker_url), settings, TOKEN), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], broker_url
    server.shutdown()
    server.server_close()


def state(broker_url: str, redis_url: str) -> tuple[int, int]:
    return DeadLetterBrowser(broker_url).depth(), quarantine.count(redis.Redis.from_url(redis_url))


segments = st.sampled_from(["", "dead-letters", "quarantine", "console.js", "x", "..", "%2e%2e", "%00", "%FF",
                            "b0", MARKUP, "dead-letters/%3Cscript%3E", "replay", "purge", "é", "a" * 300])
actions = st.sampled_from(["/dead-letters/{entry}/replay", "/dead-letters/{entry}/purge", "/quarantine/{entry}/replay",
                           "/quarantine/{entry}/purge", "/dead-letters/{entry}", "/quarantine/{entry}"])
entries = st.sampled_from(["b0", "nope", "%3Cscript%3E", "%ZZ", "", "a/b", "%00", "é"])
paths = st.one_of(st.builds(lambda action, entry: action.format(entry=entry), actions, entries),
                  st.lists(segments, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts)))
hosts = st.sampled_from([None, "127.0.0.1:{port}", "localhost:{port}", "evil.example:{port}", "127.0.0.1", "",
                         "127.0.0.1:{port}\r\nX-Injected: 1"])
tokens = st.sampled_from([None, "", "wrong", TOKEN[:-1], TOKEN + "x", "é" * 20])
lengths = st.sampled_from([None, "0", "5", "-1", "abc", "99999999", "4097", " 3", "1e3"])
bodies = st.one_of(st.binary(max_size=200), st.sampled_from([b"token=wrong&confirm=yes", b"confirm=yes",
                                                              b"token=" + TOKEN.encode()[:-1] + b"&confirm=yes"]))


def send(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_SECONDS) as connection:
        connection.sendall(request)
        connection.shutdown(socket.SHUT_WR)  # what a length too large waits for: the end of the body
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("PUSHSYNC_CONSOLE_EXAMPLES"),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(method=st.sampled_from(["POST", "POST", "POST", "GET", "GET", "PUT", "DELETE", "HEAD", "OPTIONS", "G\x00T"]),
       path=paths, host=hosts, token=tokens, length=lengths, body=bodies, token_in_header=st.booleans())
def test_no_request_without_the_token_changes_anything_or_fails_the_console(
        console, redis_url, method, path, host, token, length, body, token_in_header):
    port, broker_url = console
    before = state(broker_url, redis_url)
    lines = [f"{method} {path} HTTP/1.1"]
    if host is not None:
        lines.append("Host: " + host.format(port=port))
    if token is not None and token_in_header:
        lines.append(f"{TOKEN_HEADER}: {token}")
    elif token is not None:
        body = f"token={token}&confirm=yes&".encode() + body
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines.append("Connection: close")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body
    answer = send(port, request)
    status_line = answer.split(b"\r\n", 1)[0].decode("latin-1")
    assert status_line.startswith("HTTP/1."), answer[:200]
    status = int(status_line.split()[1])
    assert status in ANSWERED, answer[:600]
    assert MARKUP.encode() not in answer, "markup echoed unescaped"
    assert state(broker_url, redis_url) == before, f"{method} {path} changed the queue or the quarantine"


def test_a_client_that_stops_sending_holds_its_thread_no_longer_than_the_timeout(console, monkeypatch):
    port, _ = console
    monkeypatch.setattr(Handler, "timeout", 0.5)
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_SECONDS) as connection:
        connection.sendall(f"POST /dead-letters/b0/replay HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                           "Content-Length: 50\r\n\r\ntoken=".encode())  # and then nothing
        answer = connection.recv(65536)
    assert answer.startswith(b"HTTP/1.0 408"), answer[:200]
