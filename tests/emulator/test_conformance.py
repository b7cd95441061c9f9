"""Conformance with the Push API's Swagger file: for every operation it describes (but the Stream
API), a valid request and invalid ones are replayed against the emulator, and the statuses and
bodies are checked against the file: the status must be one it lists for the operation, a
success body must match its schema, and an error body must match its Error schema.

The Swagger file is read from ../shared/push-api/ beside the repository, never copied into it;
the tests skip, saying so, when it is absent.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from tests.emulator.conftest import PROVIDER, SOURCE, PushApi

REPO_ROOT = Path(__file__).resolve().parents[2]
SWAGGER = REPO_ROOT.parent / "shared" / "push-api" / "coveo-push-openapi.yml"
HTTP_METHODS = {"get", "put", "post", "delete", "patch"}
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


def _load() -> dict:
    import yaml

    return yaml.safe_load(SWAGGER.read_text())


def _operations() -> list:
    if not SWAGGER.exists():
        reason = f"the Push API's Swagger file is absent ({SWAGGER}): conformance cannot be checked here"
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=reason), id="no-swagger")]
    operations = []
    for path, item in _load()["paths"].items():
        if "/stream/" in path or "data-collections" in path:
            continue  # the Stream API (catalog sources) is not part of the Push API the emulator serves
        operations += [pytest.param(method.upper(), path, id=f"{method.upper()} {path}") for method in item if method in HTTP_METHODS]
    return operations


@pytest.fixture(scope="module")
def spec() -> dict:
    return _load()


def conforms(value: object, schema: dict, definitions: dict) -> bool:
    """Whether `value` matches a Swagger 2.0 schema (the subset this file uses)."""
    if "$ref" in schema:
        return conforms(value, definitions[schema["$ref"].rsplit("/", 1)[-1]], definitions)
    kind = schema.get("type", "object" if "properties" in schema else None)
    checks = {
        "object": lambda: isinstance(value, dict)
        and all(conforms(value[key], sub, definitions) for key, sub in schema.get("properties", {}).items() if key in value)
        and all(conforms(v, schema["additionalProperties"], definitions)
                for k, v in value.items() if k not in schema.get("properties", {}) and "additionalProperties" in schema),
        "array": lambda: isinstance(value, list) and all(conforms(v, schema.get("items", {}), definitions) for v in value),
        "string": lambda: isinstance(value, str),
        "integer": lambda: isinstance(value, int) and not isinstance(value, bool),
        "boolean": lambda: isinstance(value, bool),
        None: lambda: True,
    }
    return checks[kind]() and ("enum" not in schema or value in schema["enum"])


class Replay:
    """Builds the requests of one operation from its Swagger description."""

    def __init__(self, api: PushApi, method: str, path: str, operation: dict) -> None:
        self.api, self.method, self.path, self.operation = api, method, path, operation
        self.parameters = operation.get("parameters", [])

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
        if "application/json" not in self.operation.get("consumes", []) and body is None:
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
        if "application/json" in self.operation.get("consumes", []):
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


@pytest.mark.parametrize(("method", "path"), _operations())
def test_each_operation_answers_as_the_swagger_file_says(api: PushApi, spec: dict, method: str, path: str) -> None:
    operation = spec["paths"][path][method.lower()]
    definitions = spec["definitions"]
    replay = Replay(api, method, path, operation)
    listed = {int(status) for status in operation["responses"]}
    (success,) = [status for status in operation["responses"] if status.startswith("2")]

    first_log_id = max((entry["id"] for entry in api.server.requests()), default=0)
    valid = requests.request(**replay.valid_request())
    assert valid.status_code == int(success), f"valid {method} {path}: {valid.status_code} {valid.text}"
    success_schema = operation["responses"][success].get("schema")
    if success_schema:
        assert conforms(valid.json(), success_schema, definitions), valid.text
    logged = api.server.requests(since=first_log_id)
    assert any(entry["route"] == "/push/v1" + path for entry in logged), "the emulator serves this very path"

    for why, request in replay.invalid_requests().items():
        response = requests.request(**request)
        assert response.status_code in listed and response.status_code >= 400, f"{why}: {response.status_code} not in {sorted(listed)}"
        error_schema = operation["responses"][str(response.status_code)]["schema"]
        assert response.headers["content-type"].startswith("application/json"), why
        body = response.json()
        assert conforms(body, error_schema, definitions) and set(body) == {"errorCode", "message"}, f"{why}: {body}"

