"""Which failures the client retries, how long it waits, and what it raises, over real HTTP."""

from __future__ import annotations

import time

import pytest

from tests.worker.pushapi.conftest import API_KEY, ORGANIZATION
from worker.pushapi import errors
from worker.pushapi.client import PushApiClient
from worker.pushapi.retry import parse_retry_after

STATUS = r"/sources/src/status$"


def test_429_with_retry_after_waits_at_least_what_was_asked(client, server, waits):
    server.script("POST", STATUS, 429, error_code="TOO_MANY_REQUESTS", headers={"Retry-After": "7"})
    client.set_source_status("src", "REFRESH")
    assert len(server.matching("POST", STATUS)) == 2
    assert len(waits) == 1 and waits[0] >= 7


def test_429_without_retry_after_backs_off_and_succeeds(client, server, waits):
    server.script("POST", STATUS, 429, error_code="TOO_MANY_REQUESTS", times=3)
    client.set_source_status("src", "IDLE")
    assert [r.status for r in server.matching("POST", STATUS)] == [429, 429, 429, 201]
    assert len(waits) == 3 and all(0 <= w <= 30 for w in waits)


def test_retry_after_as_http_date():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == pytest.approx(10.0)
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_retry_after_3_is_really_waited(server):
    api = PushApiClient(base_url=server.push_url, organization_id=ORGANIZATION, api_key=API_KEY, retry_budget_seconds=20)
    server.script("POST", STATUS, 429, error_code="TOO_MANY_REQUESTS", headers={"Retry-After": "3"})
    started = time.monotonic()
    api.set_source_status("src", "REFRESH")
    attempts = server.matching("POST", STATUS)
    assert [r.status for r in attempts] == [429, 201]
    assert attempts[1].at - attempts[0].at >= 3.0
    assert time.monotonic() - started >= 3.0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_then_success(client, server, status):
    server.script("PUT", r"/documents/batch$", status, times=2)
    client.push_documents_batch("src", "file-1")
    assert [r.status for r in server.matching("PUT", r"/documents/batch$")] == [status, status, 202]


def test_connection_reset_is_retried(client, server):
    server.script("PUT", r"/documents/batch$", reset=True)
    client.push_documents_batch("src", "file-1")
    assert [r.status for r in server.matching("PUT", r"/documents/batch$")] == [-1, 202]


def test_read_timeout_is_retried(client, server):
    server.script("POST", STATUS, 201, delay=2.5)
    client.set_source_status("src", "REFRESH")
    assert len(server.matching("POST", STATUS)) == 2


def test_create_file_container_and_upload_are_retried(client, server, tmp_path):
    server.script("POST", r"/files$", 503)
    server.script("PUT", r"^/storage/", 500)
    container = client.create_file_container()
    path = tmp_path / "batch.json"
    path.write_bytes(b'{"addOrUpdate":[],"delete":[]}')
    client.upload(container, path)
    assert [r.status for r in server.matching("POST", r"/files$")] == [503, 201]
    assert [r.status for r in server.matching("PUT", r"^/storage/")] == [500, 200]


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, "INVALID_JSON", errors.InvalidRequestError),
        (400, "ORGANIZATION_IS_PAUSED", errors.OrganizationPausedError),
        (401, "UNAUTHORIZED", errors.UnauthorizedError),
        (403, "ACCESS_DENIED", errors.AccessDeniedError),
        (404, "NOT_FOUND", errors.NotFoundError),
        (412, "DOCUMENT_LIMIT_EXCEEDED", errors.DocumentLimitExceeded),
        (413, "", errors.PayloadTooLargeError),
        (415, "", errors.InvalidRequestError),
        (429, "TOO_MANY_DOCUMENTS_DAILY", errors.DailyDocumentQuotaExceeded),
    ],
)
def test_other_4xx_are_never_retried(client, server, waits, status, code, expected):
    server.script("PUT", r"/documents/batch$", status, error_code=code, message="nope")
    with pytest.raises(expected) as caught:
        client.push_documents_batch("src", "file-1")
    assert len(server.matching("PUT", r"/documents/batch$")) == 1
    assert waits == []
    error = caught.value
    assert (error.status, error.error_code, error.message) == (status, code, "nope")
    assert (error.operation, error.target) == ("push_documents_batch", "src")
    assert not error.retryable


def test_quota_and_auth_errors_group_under_actionable_bases():
    assert issubclass(errors.DocumentLimitExceeded, errors.QuotaError)
    assert issubclass(errors.DailyDocumentQuotaExceeded, errors.QuotaError)
    assert issubclass(errors.UnauthorizedError, errors.AuthError)
    assert issubclass(errors.AccessDeniedError, errors.AuthError)
    assert errors.ThrottledError.retryable and errors.ServerError.retryable and errors.TransportError.retryable


def test_budget_stops_retries_and_raises_the_last_error(server):
    api = PushApiClient(base_url=server.push_url, organization_id=ORGANIZATION, api_key=API_KEY, retry_budget_seconds=1.5)
    server.script("POST", STATUS, 503, times=1000)
    started = time.monotonic()
    with pytest.raises(errors.ServerError) as caught:
        api.set_source_status("src", "REFRESH")
    assert time.monotonic() - started < 1.5 + 1.0
    assert caught.value.status == 503
    assert len(server.matching("POST", STATUS)) >= 2


def test_retry_after_beyond_budget_gives_up_at_once_with_the_wait(server):
    api = PushApiClient(base_url=server.push_url, organization_id=ORGANIZATION, api_key=API_KEY, retry_budget_seconds=5)
    server.script("POST", STATUS, 429, error_code="TOO_MANY_REQUESTS", headers={"Retry-After": "60"})
    started = time.monotonic()
    with pytest.raises(errors.ThrottledError) as caught:
        api.set_source_status("src", "REFRESH")
    assert caught.value.retry_after == 60
    assert time.monotonic() - started < 2


def test_expired_container_on_upload(client, server, tmp_path):
    container = client.create_file_container()
    server.script("PUT", r"^/storage/", 403, error_code="REQUEST_EXPIRED")
    path = tmp_path / "b.json"
    path.write_bytes(b"{}")
    with pytest.raises(errors.ContainerExpiredError):
        client.upload(container, path)


def test_consumed_file_id_on_batch_call(client, server):
    server.script("PUT", r"/documents/batch$", 404, error_code="FILE_NOT_FOUND")
    with pytest.raises(errors.ContainerExpiredError):
        client.push_documents_batch("src", "gone")


def test_api_key_never_in_errors(client, server):
    server.script("PUT", r"/documents/batch$", 400, error_code="INVALID_JSON", message=f"bad token {API_KEY}")
    with pytest.raises(errors.InvalidRequestError) as caught:
        client.push_documents_batch("src", "f")
    assert API_KEY not in str(caught.value) and API_KEY not in repr(caught.value.__dict__)
    assert "[redacted]" in caught.value.message


def test_unreachable_service_is_a_connect_error(waits):
    api = PushApiClient(base_url="http://127.0.0.1:9/push/v1", organization_id=ORGANIZATION, api_key=API_KEY,
                        connect_timeout=0.5, retry_budget_seconds=0.2)
    with pytest.raises(errors.ConnectError) as caught:
        api.set_source_status("src", "IDLE")
    assert API_KEY not in str(caught.value)
