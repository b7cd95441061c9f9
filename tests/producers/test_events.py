"""The change-event schema: what it accepts, and the reason it gives for what it refuses."""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

import pytest

from producers.errors import InvalidEventError
from producers.events import (
    MAX_PERMISSIONS,
    IdentityAlias,
    IdentityDisable,
    IdentityUpsert,
    InvalidEvent,
    ItemDelete,
    ItemUpsert,
    complete_event,
    decode_event,
    decode_message,
    encode_message,
    parse_event,
)
from tests.producers.conftest import item_delete, item_upsert

IDENTITY_BASE = {"schemaVersion": 1, "eventId": "e-1", "provider": "provider-a", "version": 3,
                 "occurredAt": "2026-11-22T10:00:00+01:00"}


def reason_of(obj: Any) -> str:
    with pytest.raises(InvalidEventError) as caught:
        parse_event(obj)
    return caught.value.reason


def with_item(**item: Any) -> dict[str, Any]:
    """An item upsert with these item fields, and text content unless they give content."""
    content = {} if {"data", "binaryData"} & item.keys() else {"data": "text"}
    return item_upsert(1, item={**content, **item})


def test_every_kind_parses_and_round_trips_through_its_encoding() -> None:
    samples = [
        item_upsert(1),
        item_delete(2, deleteChildren=True),
        {**IDENTITY_BASE, "kind": "identity.upsert", "identity": {"name": "staff", "type": "group"},
         "members": [{"name": "ann@example.com", "type": "User"}], "wellKnowns": [{"name": "all", "type": "GROUP"}]},
        {**IDENTITY_BASE, "kind": "identity.alias", "identity": {"name": "ann", "type": "USER"},
         "mappings": [{"name": "ann@example.com", "type": "USER", "provider": "email"}]},
        {**IDENTITY_BASE, "kind": "identity.disable", "identity": {"name": "staff", "type": "VIRTUAL_GROUP"}},
    ]
    kinds = [ItemUpsert, ItemDelete, IdentityUpsert, IdentityAlias, IdentityDisable]
    for sample, kind in zip(samples, kinds):
        event = parse_event(sample)
        assert isinstance(event, kind)
        assert parse_event(json.loads(event.encoded)) == event
        assert event.encoded_size == len(event.encoded)


def test_wire_form_is_camel_case_utc_and_normalizes_identity_types() -> None:
    event = parse_event({**IDENTITY_BASE, "kind": "identity.upsert", "identity": {"name": "g", "type": "virtualgroup"}})
    wire = json.loads(event.encoded)
    assert wire["occurredAt"] == "2026-11-22T09:00:00Z"
    assert wire["identity"] == {"name": "g", "type": "VIRTUAL_GROUP", "additionalInfo": {}}
    assert wire["wellKnowns"] == [] and wire["members"] == []
    upsert = parse_event(with_item(permissions=[
        {"allowAnonymous": False, "allowedPermissions": [{"identity": "g", "identityType": "VIRTUAL_GROUP"}]},
    ]))
    assert json.loads(upsert.encoded)["item"]["permissions"][0]["allowedPermissions"][0]["identityType"] == "VirtualGroup"


def test_targets_and_coalescing_keys() -> None:
    upsert, delete = parse_event(item_upsert(7)), parse_event(item_delete(7))
    assert (upsert.target, upsert.coalescing_key) == ("source-a", "https://example.com/doc/7")
    assert delete.coalescing_key == upsert.coalescing_key
    identity = {"name": "staff", "type": "GROUP"}
    upserted = parse_event({**IDENTITY_BASE, "kind": "identity.upsert", "identity": identity})
    disabled = parse_event({**IDENTITY_BASE, "kind": "identity.disable", "identity": identity})
    aliased = parse_event({**IDENTITY_BASE, "kind": "identity.alias", "identity": identity,
                           "mappings": [{"name": "s", "type": "GROUP"}]})
    assert upserted.target == "provider-a"
    assert upserted.coalescing_key == disabled.coalescing_key != aliased.coalescing_key


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ([1, 2], "expected a JSON object (one event), got an array"),
        (item_upsert(1, item={"metadata": {"title": "t"}}), "item: give the item's content as data or binaryData"),
        ({**item_upsert(1), "kind": "item.rename"}, "kind: unknown event kind 'item.rename'"),
        ({key: value for key, value in item_upsert(1).items() if key != "kind"}, "kind: required field is missing"),
        ({key: value for key, value in item_upsert(1).items() if key != "version"}, "version: required field is missing"),
        (item_upsert(1, version=1.5), "version: expected an integer, got 1.5"),
        (item_upsert(1, version="17"), "version: expected an integer, got '17'"),
        (item_upsert(1, version=True), "version: expected an integer, got true"),
        (item_upsert(1, version=-1), "version: expected an integer from 0 to"),
        (item_upsert(1, documentId="doc-1"), "documentId: expected a URI with a scheme"),
        (item_upsert(1, occurredAt="2026-11-22T10:00:00"), "occurredAt: expected a date-time with a time zone"),
        (item_upsert(1, occurredAt=1_700_000_000), "occurredAt: expected an ISO 8601 date-time"),
        (item_upsert(1, schemaVersion=2), "schemaVersion: expected 1, got 2"),
        (item_upsert(1, source="a{b}"), "source: expected an id without"),
        (item_upsert(1, colour="red"), "colour: unknown field"),
        (with_item(metadata={"DATA": "x"}), "item.metadata: 'DATA' is reserved"),
        (with_item(metadata={"orderingid": 1}), "item.metadata: 'orderingid' is reserved"),
        (with_item(metadata={"Author": "a", "author": "b"}), "'Author' and 'author' are the same key"),
        (with_item(metadata={"geo": {"lat": 1}}), "item.metadata: 'geo': expected a string, number, boolean, null or an array of those, got an object"),
        (with_item(metadata={"m": [[1]]}), "got an array inside an array"),
        (with_item(data="a", binaryData="YQ==", compressionType="UNCOMPRESSED"), "item: give at most one content field"),
        (with_item(binaryData="YQ=="), "item: binaryData and compressionType go together"),
        (with_item(binaryData="not base64!", compressionType="ZLIB"), "item.binaryData: expected the content bytes in base64"),
        (with_item(binaryData="YQ==", compressionType="zip"), "item.compressionType: expected 'UNCOMPRESSED'"),
        (with_item(fileExtension="html"), "item.fileExtension: expected a file extension starting with a dot"),
        (with_item(parentId="parent"), "item.parentId: expected a URI"),
        (with_item(permissions=[]), "item.permissions: expected at least 1 element(s)"),
        (with_item(permissions=[{"allowedPermissions": [{"identity": "a", "identityType": "Robot"}]}]),
         "item.permissions[0].allowedPermissions[0].identityType: expected one of User, Group, VirtualGroup, Unknown"),
        (with_item(permissions=[{"allowedPermissions": [{"identity": f"u{n}", "identityType": "User"}
                                                        for n in range(MAX_PERMISSIONS + 1)]}]),
         f"item: permissions name {MAX_PERMISSIONS + 1} identities; the service takes at most {MAX_PERMISSIONS}"),
        ({**IDENTITY_BASE, "kind": "identity.upsert", "identity": {"name": "x", "type": "ROBOT"}},
         "identity.type: expected one of USER, GROUP, VIRTUAL_GROUP, UNKNOWN"),
        ({**IDENTITY_BASE, "kind": "identity.alias", "identity": {"name": "x", "type": "USER"}, "mappings": []},
         "mappings: expected at least 1 element(s)"),
    ],
)
def test_refusals_name_the_field_and_what_was_expected(obj: Any, expected: str) -> None:
    assert expected in reason_of(obj)


def test_every_problem_of_an_event_is_reported() -> None:
    reason = reason_of(item_upsert(1, version="x", documentId="nope"))
    assert "version:" in reason and "documentId:" in reason


def test_a_10_mb_event_is_refused_with_its_size_and_the_limit() -> None:
    reason = reason_of(with_item(data="x" * (10 * 1024 * 1024)))
    assert "bytes encoded, over the 6,291,456-byte limit" in reason


def test_compressed_content_and_complete_permission_model_are_accepted() -> None:
    packed = base64.b64encode(zlib.compress(b"<p>hello</p>")).decode()
    event = parse_event(with_item(binaryData=packed, compressionType="ZLIB", permissions=[
        {"name": "site", "permissionSets": [{"allowAnonymous": True}]},
        {"name": "page", "permissionSets": [{"deniedPermissions": [{"identity": "bob", "identityType": "user"}]}]},
    ]))
    assert zlib.decompress(base64.b64decode(event.item.binary_data)) == b"<p>hello</p>"
    assert event.item.permission_count == 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"\xff\xfe{}", "not UTF-8 text: byte 0 cannot be decoded"),
        (b'{"kind": ', "not JSON: Expecting value at line 1 column 10"),
        (b'"just a string"', "expected a JSON object (one event), got a string"),
        (b'{"version": NaN}', "NaN is not a JSON number"),
        (b'{"version": 1, "version": 2}', "key 'version' appears twice in one object"),
    ],
)
def test_bytes_that_are_not_an_event_are_refused_with_a_reason(raw: bytes, expected: str) -> None:
    with pytest.raises(InvalidEventError) as caught:
        decode_event(raw)
    assert expected in caught.value.reason


def test_decode_message_sorts_valid_and_invalid_events_and_never_raises() -> None:
    good = parse_event(item_upsert(1))
    body = b'{"events":[' + good.encoded + b',{"kind":"item.delete"},' + parse_event(item_upsert(2)).encoded + b"]}"
    decoded = decode_message(body)
    assert decoded[0] == good and isinstance(decoded[2], ItemUpsert)
    invalid = decoded[1]
    assert isinstance(invalid, InvalidEvent) and invalid.index == 1 and invalid.raw == {"kind": "item.delete"}
    assert "source: required field is missing" in invalid.reason


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"\x80", "not UTF-8 text"),
        (b"[]", 'expected a message of the form {"events": [event, ...]}'),
        (b'{"events": {}}', 'expected a message of the form'),
        (b'{"events": [], "extra": 1}', 'expected a message of the form'),
    ],
)
def test_an_unusable_message_is_one_invalid_entry_holding_the_bytes(body: bytes, expected: str) -> None:
    [invalid] = decode_message(body)
    assert isinstance(invalid, InvalidEvent) and invalid.index is None and invalid.raw == body
    assert expected in invalid.reason


def test_invalid_event_names_its_target_when_it_has_one() -> None:
    [invalid] = decode_message(b'{"events":[{"source":"source-a","kind":"item.upsert"}]}')
    assert isinstance(invalid, InvalidEvent) and invalid.target == "source-a"


def test_encode_message_is_the_envelope_decode_message_reads() -> None:
    events = [parse_event(item_upsert(n)) for n in range(3)]
    assert decode_message(encode_message(events)) == events
    assert json.loads(encode_message(events)) == {"events": [json.loads(event.encoded) for event in events]}


def test_complete_event_fills_ids_and_time_and_a_version_only_from_a_clock() -> None:
    bare = {"kind": "item.delete", "source": "s", "documentId": "https://e.com/1"}
    filled = complete_event(bare)
    assert filled["schemaVersion"] == 1 and filled["eventId"] and filled["occurredAt"].endswith("Z")
    assert "version" not in filled
    assert complete_event(bare, next_version=lambda: 42)["version"] == 42
    assert complete_event({**bare, "version": 7}, next_version=lambda: 42)["version"] == 7
    assert complete_event([1]) == [1]


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+23:59", "9999-12-31T23:00:00-23:00"])
def test_a_time_with_no_utc_equivalent_is_refused_not_raised(when: str) -> None:
    """Valid ISO 8601 at the ends of the range, whose UTC conversion overflows (it escaped validation)."""
    with pytest.raises(InvalidEventError, match="outside the range"):
        parse_event(item_upsert(1, occurredAt=when))
    (invalid,) = decode_message(json.dumps({"events": [item_upsert(1, occurredAt=when)]}).encode())
    assert isinstance(invalid, InvalidEvent) and "outside the range" in invalid.reason
