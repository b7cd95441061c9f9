"""Hooks run before each request: what a push fences its calls with (its lease), over real HTTP."""

from __future__ import annotations

import threading

import pytest

from worker.pushapi.batches import BatchPusher, Upsert

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
        BatchPusher(client).push_documents("src", [Upsert({"documentId": "https://example.com/a", "data": "a"})])
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
