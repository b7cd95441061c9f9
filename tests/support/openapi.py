"""Checks HTTP requests against the service's own Swagger description.

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
    responses: tuple[str, ...] = ()


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
                operation.responses = tuple(spec.get("responses", {}))
                for parameter in spec.get("parameters", []):
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
        schema = self._schema(operation.body_schema)
        validator = jsonschema.Draft4Validator(schema)
        return [f"{where}: body {error.json_path}: {error.message}" for error in validator.iter_errors(document)]

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
def _read() -> Spec | None:
    if not SPEC_PATH.exists():
        return None
    return Spec(yaml.safe_load(SPEC_PATH.read_text()))


def load_spec() -> Spec:
    """The parsed Swagger file; skips the calling test, saying why, when it is absent."""
    spec = _read()
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
    spec = _read()
    if spec is None:
        warnings.warn(f"requests not checked for conformance: no Swagger file at {SPEC_PATH}",
                      ConformanceNotChecked, stacklevel=2)
        return
    assert spec.check_emulator_log(log) == []
