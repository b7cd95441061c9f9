"""A security identity provider's identities, with the orderingId rule: older changes are ignored."""

from __future__ import annotations

from dataclasses import dataclass, field

from emulator.identity_body import INVALID_IDENTITY, IdentityUpdate

# A permission's identityType (item model) against an identity's type (identity model).
_TYPE_OF_PERMISSION = {"User": "USER", "Group": "GROUP", "VirtualGroup": "VIRTUAL_GROUP"}


@dataclass(slots=True)
class Identity:
    """One identity as the provider knows it."""

    name: str
    type: str
    ordering_id: int
    """orderingId of the last operation that touched it."""
    additional_info: dict[str, object] = field(default_factory=dict)
    members: list[dict[str, object]] = field(default_factory=list)
    mappings: list[dict[str, object]] = field(default_factory=list)
    well_knowns: list[dict[str, object]] = field(default_factory=list)
    disabled: bool = False

    def to_json(self) -> dict[str, object]:
        """The identity as the admin API shows it."""
        return {
            "name": self.name,
            "type": self.type,
            "additionalInfo": self.additional_info,
            "members": self.members,
            "mappings": self.mappings,
            "wellKnowns": self.well_knowns,
            "orderingId": self.ordering_id,
            "disabled": self.disabled,
        }


class Provider:
    """A security identity provider; a strict one makes items naming unknown identities fail."""

    def __init__(self, provider_id: str, strict: bool) -> None:
        self.id = provider_id
        self.strict = strict
        """Whether the pipeline rejects items whose permissions name identities it lacks."""
        self.identities: dict[tuple[str, str], Identity] = {}
        self.rejections: list[dict[str, object]] = []

    def apply(self, update: IdentityUpdate, ordering_id: int) -> bool:
        """Apply one change unless a newer operation touched that identity; True when applied."""
        name, kind = str(update.identity["name"]), str(update.identity["type"])
        identity = self.identities.get((name, kind))
        if identity is not None and ordering_id < identity.ordering_id:
            return False
        if identity is None:
            identity = self.identities[(name, kind)] = Identity(name, kind, ordering_id)
        identity.ordering_id = ordering_id
        identity.disabled = update.kind == "disable"
        if update.kind != "disable":
            identity.additional_info = dict(update.identity["additionalInfo"])  # type: ignore[call-overload]
            identity.well_knowns = update.well_knowns or []
        if update.members is not None:
            identity.members = update.members
        if update.mappings is not None:
            identity.mappings = update.mappings
        return True

    def disable_older_than(self, ordering_id: int) -> int:
        """Disable every identity last touched before `ordering_id`; how many were disabled."""
        count = 0
        for identity in self.identities.values():
            if identity.ordering_id < ordering_id and not identity.disabled:
                identity.disabled = True
                count += 1
        return count

    def knows(self, name: str, permission_type: str) -> bool:
        """Whether an enabled identity answers a permission's identity and identityType."""
        wanted = _TYPE_OF_PERMISSION.get(permission_type)
        if wanted is not None:
            identity = self.identities.get((name, wanted))
            return identity is not None and not identity.disabled
        return any(i.name == name and not i.disabled for i in self.identities.values())  # "Unknown": any type

    def reject(self, now: float, update: IdentityUpdate, ordering_id: int) -> None:
        """Log an entry the pipeline refused, as the organization's logs would show it."""
        self.rejections.append({
            "time": now,
            "identity": update.identity,
            "orderingId": ordering_id,
            "reason": INVALID_IDENTITY,
            "message": update.rejection,
        })
