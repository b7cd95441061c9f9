"""The security identity model: identity, alias and disable bodies, checked as the service does.

An invalid body is a 400 INVALID_JSON on a single call; in a batch file it rejects that one
entry, after the 202, into the provider's rejections.
"""

from __future__ import annotations

from dataclasses import dataclass

from emulator.errors import EmulatorError, invalid

IDENTITY_TYPES = ("USER", "GROUP", "VIRTUAL_GROUP", "UNKNOWN")
INVALID_IDENTITY = "INVALID_IDENTITY"
"""Rejection reason of an invalid entry in an identity batch file."""

_IDENTITY_KEYS = frozenset({"name", "type", "additionalInfo"})
_MAPPING_KEYS = _IDENTITY_KEYS | {"provider"}
# "Result" belongs to the Swagger's body schemas (an update result); the service ignores it.
_IDENTITY_BODY_KEYS = frozenset({"identity", "members", "wellKnowns", "Result"})
_ALIAS_BODY_KEYS = frozenset({"identity", "mappings", "wellKnowns", "Result"})
_DISABLE_BODY_KEYS = frozenset({"identity"})


@dataclass(slots=True)
class IdentityUpdate:
    """One accepted change to a provider: push an identity, map an alias, or disable."""

    kind: str
    """"identity", "alias" or "disable"."""
    identity: dict[str, object]
    """The identity changed: name, type, additionalInfo."""
    members: list[dict[str, object]] | None = None
    """An identity push's members (they replace the old ones)."""
    mappings: list[dict[str, object]] | None = None
    """An alias push's mappings (they replace the old ones)."""
    well_knowns: list[dict[str, object]] | None = None
    rejection: str | None = None
    """Why the pipeline must reject this entry of a batch file, if it must."""


def parse_identity_body(body: object) -> IdentityUpdate:
    """`{"identity": I, "members": [I], "wellKnowns": [I]}` (PUT .../permissions)."""
    fields = _body(body, _IDENTITY_BODY_KEYS, "an identity body")
    return IdentityUpdate(
        "identity",
        _identity(fields.get("identity"), "identity"),
        members=_identities(fields.get("members"), "members"),
        well_knowns=_identities(fields.get("wellKnowns"), "wellKnowns"),
    )


def parse_alias_body(body: object) -> IdentityUpdate:
    """`{"identity": I, "mappings": [M], "wellKnowns": [I]}` (PUT .../mappings)."""
    fields = _body(body, _ALIAS_BODY_KEYS, "an alias body")
    mappings = fields.get("mappings")
    if not isinstance(mappings, list) or not mappings:
        raise invalid("an alias needs a non-empty mappings array")
    return IdentityUpdate(
        "alias",
        _identity(fields.get("identity"), "identity"),
        mappings=[_identity(mapping, "a mapping", _MAPPING_KEYS) for mapping in mappings],
        well_knowns=_identities(fields.get("wellKnowns"), "wellKnowns"),
    )


def parse_disable_body(body: object) -> IdentityUpdate:
    """`{"identity": I}` (DELETE .../permissions)."""
    fields = _body(body, _DISABLE_BODY_KEYS, "a disable body")
    return IdentityUpdate("disable", _identity(fields.get("identity"), "identity"))


_BATCH_PARSERS = {"members": parse_identity_body, "mappings": parse_alias_body, "deleted": parse_disable_body}
BATCH_SECTIONS = frozenset(_BATCH_PARSERS)
"""The arrays of an identity batch file."""


def parse_batch_entry(section: str, entry: object) -> IdentityUpdate:
    """One entry of an identity batch file; an invalid one becomes an update to reject."""
    try:
        if getattr(entry, "duplicate_keys", ()):
            raise invalid(f"the key {entry.duplicate_keys[0]!r} is given twice")  # type: ignore[attr-defined]
        return _BATCH_PARSERS[section](entry)
    except EmulatorError as error:
        identity = entry.get("identity") if isinstance(entry, dict) else None
        return IdentityUpdate("invalid", identity if isinstance(identity, dict) else {}, rejection=error.message)


def _body(body: object, allowed: frozenset[str], what: str) -> dict[str, object]:
    if not isinstance(body, dict):
        raise invalid(f"{what} must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise invalid(f"{what} has unknown keys {unknown}; allowed: {sorted(allowed)}")
    return body


def _identities(value: object, what: str) -> list[dict[str, object]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(f"{what} must be an array of identities")
    return [_identity(element, f"an entry of {what}") for element in value]


def _identity(value: object, what: str, allowed: frozenset[str] = _IDENTITY_KEYS) -> dict[str, object]:
    fields = _body(value, allowed, what)
    name = fields.get("name")
    if not isinstance(name, str) or not name:
        raise invalid(f"{what} needs a name")
    if fields.get("type") not in IDENTITY_TYPES:
        raise invalid(f"{what}'s type must be one of {', '.join(IDENTITY_TYPES)}")
    info = fields.get("additionalInfo", {})
    if not isinstance(info, dict) or not all(isinstance(item, str) for item in info.values()):
        raise invalid(f"{what}'s additionalInfo must be an object of strings")
    provider = fields.get("provider")
    if provider is not None and not isinstance(provider, str):
        raise invalid(f"{what}'s provider must be a string")
    return {**fields, "additionalInfo": info}
