"""Conformance with the Push API's Swagger file: for every operation it describes (but the Stream
API), a valid request and invalid ones are replayed against the emulator over HTTP, and every
answer is checked against the file's response definition for its status: the status must be one
the file lists for the operation, the Content-Type one the operation produces, and the body strict
JSON that validates against the definition's schema (the Error schema for errors).

The Swagger file is found and parsed by tests/support/openapi.py (never copied into the project);
the tests skip, saying so, when it is absent.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import pytest
import requests

from tests.emulator.conftest import PROVIDER, SOURCE, PushApi
from tests.support.openapi import SPEC_PATH, Operation, Spec, load_spec, read_spec

IDENTITY = {"name": "alice@example.com", "type": "USER"}
VALID_BODIES = {
    "DocumentBody": {"data": "<p>conformance</p>", "title": "Conformance"},
    "IdentityBody": {"identity": IDENTITY, "members": [], "wellKnowns": []},
    "BaseIdentityBody": {"identity": IDENTITY},
    "MappedIdentityBody": {"identity": IDENTITY, "mappings": [{"name": "alice", "type": "USER"}]},
}
BATCH_FILES = {
    "/documents/batch": {"addOrUpdate": [{"documentId": "https://example.com/batch", "data": "x"}], "delete": []},
    "/permissions/batch": {"members": [{"identity": IDENTITY}], "mappings": [], "deleted": []},
}


def _operations() -> list:
    spec = read_spec()
    if spec is None:
        reason = f"the Push API's Swagger file is absent ({SPEC_PATH}): conformance cannot be checked here"
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=reason), id="no-swagger")]
    return [pytest.param(op.method, op.template, id=f"{op.method} {op.template}") for op in spec.operations]


def _operation(spec: Spec, method: str, template: str) -> Operation:
    return next(op for op in spec.operations if (op.method, op.template) == (method, template))


class Replay:
    """Builds the requests of one operation from its Swagger description."""

    def __init__(self, api: PushApi, operation: Operation) -> None:
        self.api, self.method, self.path, self.operation = api, operation.method, operation.template, operation
        self.parameters = operation.parameters

    def valid_request(self) -> dict:
        """A request the operation must accept: every required parameter with a valid value."""
        path_values = {"organizationId": self.api.server.organization, "sourceId": SOURCE, "providerId": PROVIDER}
        query, body = {}, None
        for parameter in self.parameters:
            if parameter["in"] == "query" and parameter.get("required"):
                query[parameter["name"]] = self._query_value(parameter)
            elif parameter["in"] == "body":
                body = VALID_BODIES[parameter["schema"]["$ref"].rsplit("/", 1)[-1]]
        headers = dict(self.api.server.headers())
        if "application/json" not in self.operation.consumes and body is None:
            headers.pop("Content-Type")
        return {"method": self.method, "url": self.api.server.push_url + self.path.format(**path_values),
                "params": query, "data": None if body is None else json.dumps(body), "headers": headers}

    def invalid_requests(self) -> dict[str, dict]:
        """Requests the operation must refuse, by what is wrong with them."""
        valid = self.valid_request()
        variants = {
            "no key": {**valid, "headers": {k: v for k, v in valid["headers"].items() if k != "Authorization"}},
            "wrong key": {**valid, "headers": {**valid["headers"], "Authorization": "Bearer not-the-key"}},
            "unknown organization": {**valid, "url": valid["url"].replace(f"/organizations/{self.api.server.organization}",
                                                                          "/organizations/no-such-org")},
        }
        for name in ("sourceId", "providerId"):
            if "{" + name + "}" in self.path:
                variants[f"unknown {name}"] = {**valid, "url": valid["url"].replace(f"/{SOURCE}/", "/nope/").replace(f"/{PROVIDER}/", "/nope/")}
        for parameter in self.parameters:
            if parameter["in"] == "query" and parameter.get("required"):
                variants[f"no {parameter['name']}"] = {**valid, "params": {k: v for k, v in valid["params"].items() if k != parameter["name"]}}
            if parameter["in"] == "query" and parameter.get("type") in ("integer", "boolean") or "enum" in parameter:
                variants[f"bad {parameter['name']}"] = {**valid, "params": {**valid["params"], parameter["name"]: "not-valid"}}
            if parameter["in"] == "body":
                variants["malformed JSON body"] = {**valid, "data": "{not json"}
                variants["body that breaks the model"] = {**valid, "data": json.dumps({"unexpected": {"object": 1}})}
        if "application/json" in self.operation.consumes:
            variants["wrong Content-Type"] = {**valid, "headers": {**valid["headers"], "Content-Type": "text/plain"}}
        return variants

    def _query_value(self, parameter: dict) -> object:
        if parameter["name"] == "fileId":
            batch = next(content for suffix, content in BATCH_FILES.items() if self.path.endswith(suffix))
            return self.api.upload(json.dumps(batch).encode())
        if parameter["name"] == "documentId":
            return "https://example.com/conformance"
        if parameter["name"] == "orderingId":
            return int(time.time() * 1000)
        if "enum" in parameter:
            return parameter["enum"][0]
        raise AssertionError(f"no valid value known for the required parameter {parameter['name']!r} of {self.path}")


def assert_answer_conforms(spec: Spec, request: dict, response: requests.Response, why: str) -> None:
    """The answer to `request` matches the file's response definition for its status."""
    path = urlsplit(response.request.url).path
    problems = spec.check_response(request["method"], path, response.status_code,
                                   response.headers.get("content-type"), response.content)
    assert problems == [], f"{why}: {problems}"


@pytest.mark.parametrize(("method", "path"), _operations())
def test_each_operation_answers_as_the_swagger_file_says(api: PushApi, method: str, path: str) -> None:
    spec = load_spec()
    operation = _operation(spec, method, path)
    replay = Replay(api, operation)
    (success,) = [status for status in operation.responses if status.startswith("2")]

    first_log_id = max((entry["id"] for entry in api.server.requests()), default=0)
    valid_request = replay.valid_request()
    valid = requests.request(**valid_request)
    assert valid.status_code == int(success), f"valid {method} {path}: {valid.status_code} {valid.text}"
    assert_answer_conforms(spec, valid_request, valid, "valid request")
    logged = api.server.requests(since=first_log_id)
    assert any(entry["route"] == "/push/v1" + path for entry in logged), "the emulator serves this very path"

    for why, request in replay.invalid_requests().items():
        response = requests.request(**request)
        assert response.status_code >= 400, f"{why}: {response.status_code} {response.text}"
        assert_answer_conforms(spec, request, response, why)
        assert set(response.json()) == {"errorCode", "message"}, f"{why}: {response.text}"
