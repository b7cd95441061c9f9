"""Hooks run before each request: what a push fences its calls with (its lease), over real HTTP."""

from __future__ import annotations

import threading

import pytest

from worker.pushapi.batches import ContainerPusher, Upsert
from worker.pushapi.client import EventHooks, PushApiClient

STATUS = r"/sources/src/status$"


class Stop(Exception):
    pass


class Gate:
    """A hook that lets `allowed` requests through, then stops every call; records what it saw."""

    def __init__(self, allowed: int) -> None:
        self.allowed = allowed
        self.seen: list[str] = []

    def __call__(self, operation: str) -> None:
        self.seen.append(operation)
        if len(self.seen) > self.allowed:
            raise Stop(operation)


def test_the_hook_runs_before_every_attempt_and_what_it_raises_stops_the_retries(client, server):
    server.script("POST", STATUS, 503, times=5)
    gate = Gate(allowed=2)
    with client.before_each_request(gate), pytest.raises(Stop):
        client.set_source_status("src", "REFRESH")
    assert gate.seen == ["set_source_status"] * 3
    assert len(server.matching("POST", STATUS)) == 2, "the stopped attempt was never sent"


def test_a_stopped_push_sends_nothing_after_the_stop(client, server):
    gate = Gate(allowed=2)  # the container and the upload, not the batch call
    with client.before_each_request(gate), pytest.raises(Stop):
        ContainerPusher(client).push_documents("src", [Upsert({"documentId": "https://example.com/a", "data": "a"})])
    assert gate.seen == ["create_file_container", "upload", "push_documents_batch"]
    assert [request.method for request in server.requests] == ["POST", "PUT"]


def test_the_hook_holds_only_inside_its_block_and_its_thread(client, server):
    gate = Gate(allowed=0)
    with client.before_each_request(gate):
        other = threading.Thread(target=client.set_source_status, args=("src", "IDLE"))
        other.start()
        other.join()
    client.set_source_status("src", "REFRESH")
    assert gate.seen == [] and len(server.matching("POST", STATUS)) == 2


def test_event_hooks_hear_every_attempt_its_answer_and_each_retry_with_its_wait(client, server):
    answered: list[tuple[str, int | None, str | None]] = []
    retried: list[tuple[str, float, float | None, str]] = []
    client.event_hooks.request.append(
        lambda operation, status, error: answered.append((operation, status, type(error).__name__ if error else None)))
    client.event_hooks.retry.append(lambda operation, wait, retry_after, error: retried.append(
        (operation, wait, retry_after, type(error).__name__)))
    server.script("POST", STATUS, 429, headers={"Retry-After": "1"}, times=1)
    client.set_source_status("src", "REFRESH")
    assert answered == [("set_source_status", 429, None), ("set_source_status", 201, None)]
    assert [(operation, retry_after, error) for operation, _, retry_after, error in retried] == [
        ("set_source_status", 1.0, "ThrottledError")]
    assert retried[0][1] >= 1.0, "the wait honours Retry-After"


def test_event_hooks_hear_a_request_that_got_no_answer(server, waits):
    answered: list[tuple[str, int | None, str | None]] = []
    hooks = EventHooks(request=[lambda operation, status, error: answered.append(
        (operation, status, type(error).__name__ if error else None))])
    dead = PushApiClient(base_url="http://127.0.0.1:9/push/v1", organization_id="org", api_key="k",
                         retry_budget_seconds=0, sleep=waits, event_hooks=hooks)
    with pytest.raises(Exception, match="connection failed"):
        dead.set_source_status("src", "REFRESH")
    assert answered == [("set_source_status", None, "ConnectError")]


def test_a_retry_hook_scoped_to_a_block_hears_only_that_thread_and_block(client, server):
    heard: list[str] = []
    server.script("POST", STATUS, 503, times=1)
    with client.on_each_retry(lambda operation, wait, retry_after, error: heard.append(str(error))):
        client.set_source_status("src", "REFRESH")
    server.script("POST", STATUS, 503, times=1)
    client.set_source_status("src", "IDLE")  # retried too, after the block
    assert len(heard) == 1 and "503" in heard[0]
    assert len(server.matching("POST", STATUS)) == 4
