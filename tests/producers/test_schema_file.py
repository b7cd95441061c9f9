"""producers/events/event.schema.json agrees with the models: it is generated from them, and both judge samples alike."""

from __future__ import annotations

import json
from typing import Any

import pytest

jsonschema = pytest.importorskip("jsonschema")

from producers.errors import InvalidEventError  # noqa: E402
from producers.events import SCHEMA_FILE, json_schema, parse_event  # noqa: E402
from tests.producers.conftest import item_delete, item_upsert  # noqa: E402

IDENTITY = {"schemaVersion": 1, "eventId": "e-1", "provider": "provider-a", "version": 3,
            "occurredAt": "2026-11-22T10:00:00Z", "identity": {"name": "staff", "type": "group"}}

VALID = [
    item_upsert(1),
    item_upsert(2, item={"binaryData": "PHA+aGk8L3A+", "compressionType": "UNCOMPRESSED", "parentId": "file://share/p",
                         "permissions": [{"name": "l", "permissionSets": [{"allowAnonymous": True}]}]}),
    item_delete(3, deleteChildren=True),
    {**IDENTITY, "kind": "identity.upsert", "members": [{"name": "ann", "type": "User", "additionalInfo": {"a": "b"}}]},
    {**IDENTITY, "kind": "identity.alias", "mappings": [{"name": "ann@example.com", "type": "USER", "provider": "email"}]},
    {**IDENTITY, "kind": "identity.disable"},
]

INVALID = [
    item_upsert(1, kind="item.rename"),
    {key: value for key, value in item_upsert(1).items() if key != "version"},
    item_upsert(1, version="17"),
    item_upsert(1, version=True),
    item_upsert(1, version=-1),
    item_upsert(1, documentId="doc-1"),
    item_upsert(1, schemaVersion=2),
    item_upsert(1, colour="red"),
    item_upsert(1, item={"metadata": {"Data": "x"}}),
    item_upsert(1, item={"metadata": {"geo": {"lat": 1}}}),
    item_upsert(1, item={"data": "a", "binaryData": "YQ==", "compressionType": "ZLIB"}),
    item_upsert(1, item={"binaryData": "YQ=="}),
    item_upsert(1, item={"fileExtension": "html"}),
    item_upsert(1, item={"permissions": []}),
    {**IDENTITY, "kind": "identity.upsert", "identity": {"name": "x", "type": "ROBOT"}},
    {**IDENTITY, "kind": "identity.alias", "mappings": []},
]


def test_the_committed_schema_is_the_one_generated_from_the_models() -> None:
    committed = json.loads(SCHEMA_FILE.read_text())
    assert committed == json_schema(), "regenerate it: python -m producers.schema"


def test_the_schema_is_itself_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(json_schema())


@pytest.mark.parametrize("event", VALID, ids=lambda event: event["kind"])
def test_valid_samples_pass_both(event: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(json_schema()).validate(event)
    parse_event(event)


@pytest.mark.parametrize("event", INVALID)
def test_invalid_samples_fail_both(event: dict[str, Any]) -> None:
    assert list(jsonschema.Draft202012Validator(json_schema()).iter_errors(event))
    with pytest.raises(InvalidEventError):
        parse_event(event)
