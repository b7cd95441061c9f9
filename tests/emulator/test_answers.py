"""Answers a strict client can read: every success of the Push API is JSON, and a wrong method
says which ones the path takes.

Coveo's own JS client parses the answer of every POST it sends as JSON, so an empty 201 makes it
fail; a strict parser here stands in for it (tests/node-coveo drives the client itself).
"""

from __future__ import annotations

import pytest
import requests

from emulator.activities import STATUS_TYPES
from tests.emulator.conftest import PROVIDER, SOURCE, PushApi, assert_error
from tests.support.openapi import strict_json

IDENTITY = {"name": "ann@example.com", "type": "USER"}


def assert_json_answer(response: requests.Response, status: int) -> object:
    """The answer has `status`, a JSON content type and a body that parses strictly; that body."""
    assert response.status_code == status, f"{response.status_code} {response.text}"
    assert response.headers.get("content-type", "").split(";")[0] == "application/json", response.headers
    return strict_json(response.content)


@pytest.mark.parametrize("status_type", STATUS_TYPES)
def test_a_status_call_answers_json_that_a_strict_client_parses(api: PushApi, status_type: str) -> None:
    response = api.call("POST", f"/sources/{SOURCE}/status", params={"statusType": status_type})
    assert assert_json_answer(response, 201) == {}
    assert api.server.activities(SOURCE)["transitions"][-1]["statusType"] == status_type


@pytest.mark.parametrize(
    ("method", "path", "params", "body"),
    [
        ("PUT", f"/sources/{SOURCE}/documents", {"documentId": "https://e.com/a"}, {"data": "a"}),
        ("DELETE", f"/sources/{SOURCE}/documents", {"documentId": "https://e.com/a"}, None),
        ("DELETE", f"/sources/{SOURCE}/documents/olderthan", {"orderingId": "1", "queueDelay": "0"}, None),
        ("PUT", f"/providers/{PROVIDER}/permissions", {}, {"identity": IDENTITY}),
        ("DELETE", f"/providers/{PROVIDER}/permissions", {}, {"identity": IDENTITY}),
        ("PUT", f"/providers/{PROVIDER}/mappings", {},
         {"identity": IDENTITY, "mappings": [{"name": "ann", "type": "USER", "provider": "other"}]}),
        ("DELETE", f"/providers/{PROVIDER}/permissions/olderthan", {"orderingId": "1"}, None),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_an_accepted_call_answers_json_too(api: PushApi, method: str, path: str, params: dict, body: dict | None) -> None:
    response = api.call(method, path, params=params, json=body)
    assert assert_json_answer(response, 202) == {}


def test_a_created_container_is_json(api: PushApi) -> None:
    container = assert_json_answer(api.call("POST", "/files"), 201)
    assert isinstance(container, dict) and set(container) == {"uploadUri", "fileId", "requiredHeaders"}


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/push/v1/organizations/{org}/sources/s/documents", {"PUT", "DELETE"}),
        ("POST", "/push/v1/organizations/{org}/providers/p/permissions", {"PUT", "DELETE"}),
        ("GET", "/push/v1/organizations/{org}/sources/s/status", {"POST"}),
        ("PUT", "/push/v1/organizations/{org}/files", {"POST"}),
        ("PATCH", "/_emulator/faults", {"GET", "HEAD", "POST", "DELETE"}),
        ("GET", "/_emulator/reset", {"POST"}),
    ],
)
def test_a_wrong_method_answers_405_with_every_method_the_path_takes(
    api: PushApi, method: str, path: str, allowed: set[str]
) -> None:
    response = api.session.request(method, api.server.url + path.format(org=api.server.organization))
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert {name.strip() for name in response.headers.get("allow", "").split(",")} == allowed, response.headers
