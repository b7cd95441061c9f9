"""Source status and the admin API: activities, the request log, faults, clock, reset and limits."""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.emulator.conftest import SOURCE, PushApi, assert_error
from tests.plugins.emulator import EmulatorServer

DOC = "https://example.com/doc"


def set_status(api: PushApi, status_type: str) -> requests.Response:
    return api.call("POST", f"/sources/{SOURCE}/status", params={"statusType": status_type})


def test_active_statuses_open_an_activity_and_idle_closes_it(api: PushApi) -> None:
    for status_type in ("REFRESH", "IDLE", "REBUILD", "INCREMENTAL", "IDLE"):
        response = set_status(api, status_type)
        assert response.status_code == 201 and response.json() == {}
    log = api.server.activities(SOURCE)
    assert log["status"] == "IDLE"
    assert [t["statusType"] for t in log["transitions"]] == ["REFRESH", "IDLE", "REBUILD", "INCREMENTAL", "IDLE"]
    assert [a["type"] for a in log["activities"]] == ["REFRESH", "REBUILD", "INCREMENTAL"]
    assert all(a["closedAt"] is not None and a["closedAt"] >= a["openedAt"] for a in log["activities"])
    times = [t["time"] for t in log["transitions"]]
    assert times == sorted(times)


@pytest.mark.parametrize("status_type", ["RESCAN", "refresh", ""])
def test_a_bad_status_type_is_400(api: PushApi, status_type: str) -> None:
    assert_error(set_status(api, status_type), 400, "INVALID_JSON")
    assert api.server.activities(SOURCE)["transitions"] == []


def test_the_request_log_keeps_conformance_headers_but_never_the_key(api: PushApi) -> None:
    first = api.server.requests()[-1]["id"] if api.server.requests() else 0
    api.put_item(DOC, {"data": "x"})
    requests.post(f"{api.base}/files", headers={"Authorization": "Token abc"})
    logged = api.server.requests(since=first)
    assert [entry["status"] for entry in logged] == [202, 401]
    put, post = logged
    assert put["method"] == "PUT" and put["path"].endswith(f"/sources/{SOURCE}/documents")
    assert put["route"] == "/push/v1/organizations/{organizationId}/sources/{sourceId}/documents"
    assert put["query"] == "documentId=https%3A%2F%2Fexample.com%2Fdoc" and put["bytes"] == len(b'{"data": "x"}')
    assert (put["contentType"], put["accept"], put["authorization"]) == ("application/json", "application/json", "bearer")
    assert put["userAgent"].startswith("python-requests/")
    assert post["authorization"] == "other"
    assert put["client"] == post["client"] == "127.0.0.1", "where each request came from (tests/worker/test_hosts.py)"
    assert api.server.api_key not in json.dumps(logged)
    assert all(not entry["path"].startswith("/_emulator") for entry in api.server.requests())


def test_the_key_is_masked_wherever_a_client_puts_it(api: PushApi) -> None:
    api.call("POST", "/files", params={"access_token": api.server.api_key})
    assert api.server.api_key not in json.dumps(api.server.requests())


def test_a_fault_answers_its_status_for_the_next_n_matches(api: PushApi) -> None:
    rule = api.server.add_fault(method="PUT", path="*/documents", status=503, retryAfter=7, times=2)
    assert rule["id"] >= 1 and rule["errorCode"] == "SERVICE_UNAVAILABLE"
    for _ in range(2):
        response = api.put_item(DOC, {"data": "x"})
        assert_error(response, 503, "SERVICE_UNAVAILABLE")
        assert response.headers["Retry-After"] == "7"
    assert api.put_item(DOC, {"data": "x"}).status_code == 202
    assert api.server.requests()[-2]["fault"] == rule["id"]
    assert len(api.server.items(SOURCE)) == 1, "faulted calls did nothing"


def test_a_429_fault_carries_retry_after_and_its_error_code(api: PushApi) -> None:
    api.server.add_fault(path="*/files", status=429, errorCode="TOO_MANY_REQUESTS")
    response = api.call("POST", "/files")
    assert_error(response, 429, "TOO_MANY_REQUESTS")
    assert int(response.headers["Retry-After"]) >= 1
    api.server.clear_faults()
    assert api.call("POST", "/files").status_code == 201


def test_faults_match_by_method_and_probability(api: PushApi) -> None:
    api.server.add_fault(method="DELETE", path="*", status=500)
    api.server.add_fault(method="PUT", path="*", status=500, probability=0)
    assert api.put_item(DOC, {"data": "x"}).status_code == 202
    assert_error(api.call("DELETE", f"/sources/{SOURCE}/documents", params={"documentId": DOC}), 500, "INTERNAL_ERROR")
    assert requests.get(f"{api.server.url}/_emulator/health").status_code == 200, "the admin API is never faulted"


def test_a_latency_fault_slows_matching_requests_down(api: PushApi) -> None:
    api.server.add_fault(path="*/status", latency=0.3, times=1)
    started = time.monotonic()
    assert set_status(api, "REFRESH").status_code == 201
    assert time.monotonic() - started >= 0.3
    assert api.server.requests()[-1]["durationMs"] >= 300


def test_a_fault_can_hit_uploads(api: PushApi) -> None:
    container = api.call("POST", "/files").json()
    api.server.add_fault(method="PUT", path="/_blob/*", status=503, times=1)
    headers = container["requiredHeaders"]
    assert_error(requests.put(container["uploadUri"], data=b"x" * 100_000, headers=headers), 503)
    assert requests.put(container["uploadUri"], data=b"x", headers=headers).status_code == 200


@pytest.mark.parametrize(
    "rule",
    [{}, {"status": 200}, {"status": 503, "times": 0}, {"status": 503, "probability": 2}, {"status": "503"}, {"latency": -1},
     {"status": 503, "colour": "red"}],
)
def test_invalid_fault_rules_are_refused(api: PushApi, rule: dict) -> None:
    assert_error(requests.post(f"{api.server.url}/_emulator/faults", json=rule), 400, "INVALID_FAULT")


def test_reset_returns_to_the_start_up_state(clean_emulator: EmulatorServer, api: PushApi) -> None:
    api.put_item(DOC, {"data": "x"})
    clean_emulator.add_fault(path="*/nothing", status=500)
    clean_emulator.configure(itemAllowance=5)
    clean_emulator.advance_clock(3600)
    clean_emulator.wait_idle()
    clean_emulator.reset()
    assert requests.get(f"{clean_emulator.url}/_emulator/faults").json() == {"faults": []}
    assert clean_emulator.requests() == [] and clean_emulator.containers() == []
    assert clean_emulator.configure()["itemAllowance"] is None
    assert abs(clean_emulator.advance_clock(0)["offset"]) < 1
    assert_error(api.put_item(DOC, {"data": "x"}), 404, "SOURCE_NOT_FOUND")


def test_config_changes_are_checked(clean_emulator: EmulatorServer) -> None:
    for bad in ({"applyDelay": -1}, {"itemAllowance": "ten"}, {"containerLimitBytes": None}, {"nope": 1}):
        assert_error(requests.put(f"{clean_emulator.url}/_emulator/config", json=bad), 400, "INVALID_CONFIG")
    assert clean_emulator.configure(applyDelay=0, itemAllowance=None)["applyDelay"] == 0


def test_the_clock_only_moves_forward(clean_emulator: EmulatorServer) -> None:
    before = clean_emulator.advance_clock(0)["now"]
    assert clean_emulator.advance_clock(120)["now"] >= before + 120
    assert_error(requests.post(f"{clean_emulator.url}/_emulator/clock", json={"advance": -1}), 400)


def test_inspecting_unknown_things_is_404(clean_emulator: EmulatorServer) -> None:
    base = f"{clean_emulator.url}/_emulator/organizations/{clean_emulator.organization}"
    assert_error(requests.get(f"{base}/sources/nope/items"), 404, "SOURCE_NOT_FOUND")
    assert_error(requests.get(f"{base}/providers/nope/identities"), 404, "PROVIDER_NOT_FOUND")
    assert_error(requests.get(f"{clean_emulator.url}/_emulator/organizations/nope/sources/x/items"), 404)
