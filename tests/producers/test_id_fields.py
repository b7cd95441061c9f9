"""Every id, name and URI field: what the schema accepts is exactly what its documented rule
allows (docs/events.md, restated here as plain Python), and a refusal names the field and what
was expected, on the producer's side and in what the worker would quarantine.

Generated (hypothesis). `PUSHSYNC_LONG_PROPERTIES=1` runs many more examples (see tests/support/ids.py).
"""

from __future__ import annotations

import copy
import json
import string
import unicodedata
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given, settings

from producers.errors import InvalidEventError
from producers.events import InvalidEvent, complete_event, decode_message, parse_event
from tests.support.ids import candidates, examples, run_ids, uri_candidates

PURE_EXAMPLES = examples(300)
URL_DELIMITERS = "{}/?#"
SCHEME_CHARACTERS = string.ascii_letters + string.digits + "+.-"
RUN_ID_CHARACTERS = string.ascii_letters + string.digits + "._-"


def _control(c: str) -> bool:
    return unicodedata.category(c) == "Cc"


def id_allowed(value: str) -> bool:
    """Source and provider ids: 1 to 255 characters, no leading space, no braces, URL delimiters or controls."""
    return (0 < len(value) <= 255 and not value[0].isspace()
            and not any(c in URL_DELIMITERS or _control(c) for c in value))


def uri_allowed(value: str) -> bool:
    """documentId and parentId: `scheme://` and at least one more character, no spaces or controls."""
    scheme, separator, rest = value.partition("://")
    return (bool(separator) and scheme[:1].isascii() and scheme[:1].isalpha()
            and all(c in SCHEME_CHARACTERS for c in scheme) and bool(rest)
            and not any(c.isspace() or _control(c) for c in rest))


def name_allowed(value: str) -> bool:
    """Identity names and the providers they name: not empty, no controls."""
    return bool(value) and not any(_control(c) for c in value)


def event_id_allowed(value: str) -> bool:
    return name_allowed(value) and len(value) <= 255


def run_id_allowed(value: str) -> bool:
    return 0 < len(value) <= 64 and all(c in RUN_ID_CHARACTERS for c in value)


UPSERT = {"kind": "item.upsert", "source": "src", "documentId": "https://example.com/1", "version": 1,
          "item": {"data": "text", "parentId": "https://example.com/",
                   "permissions": [{"allowedPermissions": [
                       {"identity": "staff", "identityType": "Group", "securityProvider": "groups"}]}]}}
IDENTITY = {"kind": "identity.upsert", "provider": "groups", "version": 1,
            "identity": {"name": "staff", "type": "GROUP"}, "members": [{"name": "ann", "type": "USER"}]}
ALIAS = {"kind": "identity.alias", "provider": "groups", "version": 1, "identity": {"name": "ann", "type": "USER"},
         "mappings": [{"name": "ann@example.com", "type": "USER", "provider": "Email Security Provider"}]}
BEGIN = {"kind": "rebuild.begin", "source": "src", "run": "nightly"}

FIELDS: dict[str, tuple[dict[str, Any], tuple[str | int, ...], Callable[[str], bool]]] = {
    "source": (UPSERT, ("source",), id_allowed),
    "provider": (IDENTITY, ("provider",), id_allowed),
    "documentId": (UPSERT, ("documentId",), uri_allowed),
    "item.parentId": (UPSERT, ("item", "parentId"), uri_allowed),
    "eventId": (UPSERT, ("eventId",), event_id_allowed),
    "identity.name": (IDENTITY, ("identity", "name"), name_allowed),
    "members[0].name": (IDENTITY, ("members", 0, "name"), name_allowed),
    "mappings[0].provider": (ALIAS, ("mappings", 0, "provider"), name_allowed),
    "item.permissions[0].allowedPermissions[0].identity":
        (UPSERT, ("item", "permissions", 0, "allowedPermissions", 0, "identity"), name_allowed),
    "item.permissions[0].allowedPermissions[0].securityProvider":
        (UPSERT, ("item", "permissions", 0, "allowedPermissions", 0, "securityProvider"), name_allowed),
    "run": (BEGIN, ("run",), run_id_allowed),
}
URI_FIELDS = {"documentId", "item.parentId"}


def with_value(template: dict[str, Any], where: tuple[str | int, ...], value: str) -> dict[str, Any]:
    event = complete_event(copy.deepcopy(template))
    holder: Any = event
    for step in where[:-1]:
        holder = holder[step]
    holder[where[-1]] = value
    return event


def check(path: str, value: str) -> None:
    """The schema accepts `value` at `path` exactly when its rule allows it; a refusal says why."""
    template, where, allowed = FIELDS[path]
    event = with_value(template, where, value)
    (decoded,) = decode_message(json.dumps({"events": [event]}).encode())
    try:
        parsed = parse_event(event)
    except InvalidEventError as exc:
        assert not allowed(value), f"{path}={value!r} refused: {exc.reason}"
        assert exc.reason.startswith(f"{path}: expected"), exc.reason
        # The worker quarantines it with the same reason.
        assert isinstance(decoded, InvalidEvent) and decoded.reason == exc.reason
        return
    assert allowed(value), f"{path}={value!r} was accepted"
    assert parsed == decoded and parse_event(json.loads(parsed.encoded)) == parsed


@pytest.mark.parametrize("path", sorted(set(FIELDS) - URI_FIELDS - {"run"}))
@settings(max_examples=PURE_EXAMPLES, deadline=None)
@given(value=candidates())
@example(value="a|b:c")
@example(value="bell\x07")
@example(value="del\x7f")
@example(value="c1\x85")
@example(value="line\nbreak")
def test_ids_and_names_are_accepted_exactly_by_their_rule(path, value):
    check(path, value)


@pytest.mark.parametrize("path", sorted(URI_FIELDS))
@settings(max_examples=PURE_EXAMPLES, deadline=None)
@given(value=uri_candidates())
@example(value="https://ex.com/\x07\x00")
@example(value="https://ex.com/\x7f")
@example(value="https://ex.com/a|b:c%41")
@example(value="https://ex.com/a b")
def test_uris_are_accepted_exactly_by_their_rule(path, value):
    check(path, value)


@settings(max_examples=PURE_EXAMPLES, deadline=None)
@given(value=candidates(max_size=80) | run_ids())
def test_run_ids_are_accepted_exactly_by_their_rule(value):
    check("run", value)


def test_a_document_id_with_control_characters_is_refused_with_its_reason():
    with pytest.raises(InvalidEventError) as refused:
        parse_event(with_value(UPSERT, ("documentId",), "https://ex.com/\x07\x00"))
    assert refused.value.reason == (
        "documentId: expected a URI with a scheme and no spaces or control characters, such as "
        "https://example.com/page or file://share/doc, got 'https://ex.com/\\x07\\x00'")
