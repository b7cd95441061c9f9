"""Checks HTTP requests, and the answers to them, against the service's own Swagger description.

The file is read from `../shared/push-api/coveo-push-openapi.yml` beside the checkout, never
copied into the project; when it is not there, `load_spec()` skips the calling test and
`assert_conforms()` lets an integration test go on with a warning.
"""

from __future__ import annotations

import copy
import json
import re
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jsonschema
import pytest
import yaml

SPEC_PATH = Path(__file__).resolve().parents[2].parent / "shared" / "push-api" / "coveo-push-openapi.yml"
STREAM_PATH_MARKERS = ("/stream/", "/data-collections/")
"""The Stream API shares the file; pushsync does not speak it."""
DEFAULT_MEDIA_TYPE = "application/json"
"""What an answer is when its operation lists no `produces` (the file has no global one, and every
Push API call sends `Accept: application/json`)."""
LENIENT_DEFINITIONS = ("DocumentBody",)
"""Definitions whose `additionalProperties: string` the docs contradict (metadata may be any
primitive or array of primitives), so only their named properties are checked."""


@dataclass
class Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    query: dict[str, dict[str, Any]] = field(default_factory=dict)
    body_schema: dict[str, Any] | None = None
    consumes: tuple[str, ...] = ()
    produces: tuple[str, ...] = ()
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The response definitions by status code, as strings ("201", "400", ...)."""
    parameters: list[dict[str, Any]] = field(default_factory=list)


class Spec:
    """The non-stream operations of the Push API Swagger file."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.base_path = raw.get("basePath", "/v1")
        self.operations: list[Operation] = []
        for template, methods in raw["paths"].items():
            if any(marker in template for marker in STREAM_PATH_MARKERS):
                continue
            pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$")
            for method, spec in methods.items():
                operation = Operation(method.upper(), template, pattern)
                operation.consumes = tuple(spec.get("consumes") or ())
                operation.produces = tuple(spec.get("produces") or ())
                operation.responses = dict(spec.get("responses", {}))
                operation.parameters = list(spec.get("parameters", []))
                for parameter in operation.parameters:
                    if parameter["in"] == "query":
                        operation.query[parameter["name"]] = parameter
                    elif parameter["in"] == "body":
                        operation.body_schema = parameter.get("schema")
                self.operations.append(operation)

    def find(self, method: str, path: str) -> Operation | None:
        """The operation for `method` and a request path that contains the base path."""
        relative = path.split(self.base_path, 1)[-1]
        for operation in self.operations:
            if operation.method == method and operation.pattern.match(relative):
                return operation
        return None

    def check(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes | None
    ) -> list[str]:
        """Every way the request departs from the file; empty when it conforms."""
        operation = self.find(method, path)
        if operation is None:
            return [f"{method} {path}: no such operation in the Swagger file"]
        where = f"{method} {operation.template}"
        problems = []
        lowered = {name.lower(): value for name, value in headers.items()}
        if not lowered.get("authorization", "").startswith("Bearer "):
            problems.append(f"{where}: no Bearer Authorization header")
        if lowered.get("content-type", "").split(";")[0] != "application/json":
            problems.append(f"{where}: Content-Type is {lowered.get('content-type')!r}, not application/json")
        if lowered.get("accept") != "application/json":
            problems.append(f"{where}: Accept is {lowered.get('accept')!r}, not application/json")
        for name, parameter in operation.query.items():
            if parameter.get("required") and name not in query:
                problems.append(f"{where}: required query parameter {name} is missing")
        for name, values in query.items():
            parameter = operation.query.get(name)
            if parameter is None:
                problems.append(f"{where}: unknown query parameter {name}")
                continue
            for value in values:
                problem = _check_value(parameter, value)
                if problem:
                    problems.append(f"{where}: query {name}={value!r} {problem}")
        problems += self._check_body(where, operation, body)
        return problems

    def _check_body(self, where: str, operation: Operation, body: bytes | None) -> list[str]:
        """Problems with the body; None means it was not recorded, so only b"" counts as missing."""
        if operation.body_schema is None or body is None:
            return []
        if not body:
            return [f"{where}: a JSON body is required"]
        try:
            document = json.loads(body)
        except ValueError:
            return [f"{where}: the body is not JSON"]
        return [f"{where}: body {problem}" for problem in self._validate(operation.body_schema, document)]

    def check_response(self, method: str, path: str, status: int, content_type: str | None, body: bytes) -> list[str]:
        """Every way an answer departs from the file's response definition for its status: the
        status must be listed, the Content-Type one the operation produces, and the body strict
        JSON that matches the definition's schema (any JSON value when it gives none)."""
        operation = self.find(method, path)
        if operation is None:
            return [f"{method} {path}: no such operation in the Swagger file"]
        where = f"{method} {operation.template} answered {status}"
        definition = operation.responses.get(str(status))
        if definition is None:
            return [f"{where}: the file lists only {sorted(operation.responses)}"]
        problems = []
        media_type = (content_type or "").split(";", 1)[0].strip().lower()
        produced = operation.produces or (DEFAULT_MEDIA_TYPE,)
        if media_type not in produced:
            problems.append(f"{where}: Content-Type is {content_type!r}, not one of {list(produced)}")
        try:
            document = strict_json(body)
        except ValueError as exc:
            return [*problems, f"{where}: the body {body[:80]!r} is not strict JSON ({exc})"]
        if "schema" in definition:
            problems += [f"{where}: body {problem}" for problem in self._validate(definition["schema"], document)]
        return problems

    def _validate(self, schema: dict[str, Any], document: object) -> list[str]:
        validator = jsonschema.Draft4Validator(self._schema(schema))
        return [f"{error.json_path}: {error.message}" for error in validator.iter_errors(document)]

    def _schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        definitions = copy.deepcopy(self.raw["definitions"])
        for name in LENIENT_DEFINITIONS:
            definitions.get(name, {}).pop("additionalProperties", None)
        return {**schema, "definitions": definitions}

    def check_emulator_log(self, entries: list[dict[str, Any]]) -> list[str]:
        """Problems in the Push API calls of the emulator's request log (bodies are not logged)."""
        problems = []
        for entry in entries:
            if not entry["path"].startswith("/push/"):
                continue
            headers = {"Content-Type": entry.get("contentType") or "", "Accept": entry.get("accept") or "",
                       "Authorization": "Bearer ***" if entry.get("authorization") == "bearer" else ""}
            query = parse_qs(entry.get("query") or "", keep_blank_values=True)
            problems += self.check(entry["method"], entry["path"], query, headers, None)
        return problems


def strict_json(body: bytes) -> object:
    """`body` parsed as a strict JSON client does (UTF-8, one value, no NaN, no key twice); ValueError
    otherwise, an empty body included."""
    return json.loads(body.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_no_constant)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({key for key, _ in pairs}) != len(pairs):
        raise ValueError(f"a key is given twice among {[key for key, _ in pairs]}")
    return dict(pairs)


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _check_value(parameter: dict[str, Any], value: str) -> str | None:
    if "enum" in parameter and value not in parameter["enum"]:
        return f"is not one of {parameter['enum']}"
    kind = parameter.get("type")
    if kind == "integer" and not re.fullmatch(r"-?\d+", value):
        return "is not an integer"
    if kind == "boolean" and value not in ("true", "false"):
        return "is not true or false"
    return None


@lru_cache(maxsize=1)
def read_spec() -> Spec | None:
    """The parsed Swagger file, or None when it is not beside the checkout."""
    if not SPEC_PATH.exists():
        return None
    return Spec(yaml.safe_load(SPEC_PATH.read_text()))


def load_spec() -> Spec:
    """The parsed Swagger file; skips the calling test, saying why, when it is absent."""
    spec = read_spec()
    if spec is None:
        pytest.skip(f"conformance needs the Swagger file at {SPEC_PATH}, which is not there")
    return spec


class ConformanceNotChecked(UserWarning):
    """An integration test ran without the Swagger file beside the checkout."""


def assert_conforms(log: list[dict[str, Any]]) -> None:
    """Every request of an emulator log conforms to the Swagger file.

    Without the file, the calling integration test goes on (its behaviour is still checked) and
    a warning in the test summary says that conformance was not.
    """
    spec = read_spec()
    if spec is None:
        warnings.warn(f"requests not checked for conformance: no Swagger file at {SPEC_PATH}",
                      ConformanceNotChecked, stacklevel=2)
        return
    assert spec.check_emulator_log(log) == []
