"""The event models: one pydantic model per kind of event, and the `Event` union that tells them apart."""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
    TypeAdapter,
    model_validator,
)
from pydantic.alias_generators import to_camel

from producers.events.fields import (
    Base64,
    DocumentUri,
    EventId,
    FileExtension,
    IdentityType,
    Metadata,
    Name,
    OccurredAt,
    PermissionIdentityType,
    RunId,
    TargetId,
    Version,
)
from producers.events.limits import COMPRESSION_TYPES, MAX_PERMISSIONS, MAX_RUN_EVENTS


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, allow_inf_nan=False,
    )


# ---------------------------------------------------------------- items


class PermissionIdentity(_Model):
    """One identity named in a permission set."""

    identity: Name
    identity_type: PermissionIdentityType
    security_provider: Name | None = None


class PermissionSet(_Model):
    """The simple permission model: who may and may not see the item."""

    allow_anonymous: StrictBool = False
    allowed_permissions: list[PermissionIdentity] = []
    denied_permissions: list[PermissionIdentity] = []


class PermissionLevel(_Model):
    """One level of the complete permission model; a user must pass every set of every level."""

    name: StrictStr | None = None
    permission_sets: Annotated[list[PermissionSet], Field(min_length=1)]


def _permission_model(value: Any) -> str:
    first = value[0] if isinstance(value, list) and value else None
    if isinstance(first, PermissionLevel) or (isinstance(first, dict) and "permissionSets" in first):
        return "complete"
    return "simple"


Permissions = Annotated[
    Union[
        Annotated[Annotated[list[PermissionSet], Field(min_length=1)], Tag("simple")],
        Annotated[Annotated[list[PermissionLevel], Field(min_length=1)], Tag("complete")],
    ],
    Discriminator(_permission_model),
]


class Item(_Model):
    """An item as the Push API takes it, with metadata kept apart from the item's own fields."""

    model_config = ConfigDict(
        json_schema_extra={
            "not": {"required": ["data", "binaryData"]},
            "anyOf": [{"required": ["data"]}, {"required": ["binaryData"]}],
            "dependentRequired": {"binaryData": ["compressionType"], "compressionType": ["binaryData"]},
        }
    )

    metadata: Metadata = {}
    data: StrictStr | None = None
    binary_data: Base64 | None = None
    compression_type: Literal[COMPRESSION_TYPES] | None = None  # type: ignore[valid-type]
    file_extension: FileExtension | None = None
    parent_id: DocumentUri | None = None
    permissions: Permissions | None = None

    @model_validator(mode="after")
    def _content(self) -> Item:
        if self.data is not None and self.binary_data is not None:
            raise ValueError("give at most one content field: data or binaryData")
        if self.data is None and self.binary_data is None:
            raise ValueError("give the item's content as data or binaryData: the service refuses an item without content")
        if (self.binary_data is None) != (self.compression_type is None):
            raise ValueError(
                "binaryData and compressionType go together: compressionType says how the bytes are compressed "
                f"({', '.join(COMPRESSION_TYPES)})"
            )
        if self.permissions and self.permission_count > MAX_PERMISSIONS:
            raise ValueError(f"permissions name {self.permission_count} identities; the service takes at most {MAX_PERMISSIONS}")
        return self

    @property
    def permission_count(self) -> int:
        """How many identities the permissions name, allowed and denied."""
        sets: list[PermissionSet] = []
        for entry in self.permissions or []:
            sets.extend(entry.permission_sets if isinstance(entry, PermissionLevel) else [entry])
        return sum(len(s.allowed_permissions) + len(s.denied_permissions) for s in sets)


# ---------------------------------------------------------------- identities


class Identity(_Model):
    """A security identity of a provider."""

    name: Name
    type: IdentityType
    additional_info: dict[str, StrictStr] = {}


class MappedIdentity(Identity):
    """An identity of another provider that an alias points to."""

    provider: Name | None = None


# ---------------------------------------------------------------- full runs


class RunTag(_Model):
    """Marks an event as part of a full run started through the broker (see `rebuild.begin`)."""

    run: RunId
    seq: Annotated[StrictInt, Field(ge=0, lt=MAX_RUN_EVENTS)]
    """The event's number in its run, from 0: the worker counts each number once, however often it arrives."""


# ---------------------------------------------------------------- events


class _Message(_Model):
    """What every event has, whatever its kind."""

    schema_version: Literal[1]
    event_id: EventId
    kind: str
    occurred_at: OccurredAt

    @cached_property
    def encoded(self) -> bytes:
        """The event as compact UTF-8 JSON, as it travels on the broker."""
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()

    @property
    def encoded_size(self) -> int:
        """Bytes of `encoded`; the limit on events applies to this."""
        return len(self.encoded)


class _Event(_Message):
    version: Version
    """The item's or identity's version in the source system: higher is newer."""

    @property
    def target(self) -> str:
        """The Push source id (item events) or security provider id (identity events)."""
        raise NotImplementedError

    @property
    def coalescing_key(self) -> str:
        """Events of one target with the same key replace each other: the newest version wins."""
        raise NotImplementedError


class _ItemEvent(_Event):
    source: TargetId
    document_id: DocumentUri

    @property
    def target(self) -> str:
        return self.source

    @property
    def coalescing_key(self) -> str:
        return self.document_id


class ItemUpsert(_ItemEvent):
    """Add or replace one item."""

    kind: Literal["item.upsert"]
    item: Item
    rebuild: RunTag | None = None


class ItemDelete(_ItemEvent):
    """Delete one item, and its children when `delete_children` is set."""

    kind: Literal["item.delete"]
    delete_children: StrictBool = False


class _IdentityEvent(_Event):
    provider: TargetId
    identity: Identity

    @property
    def target(self) -> str:
        return self.provider

    @property
    def coalescing_key(self) -> str:
        # Upsert and disable of one identity replace each other; an alias is a separate resource.
        return f"identity:{self.identity.type}:{self.identity.name}"


class IdentityUpsert(_IdentityEvent):
    """Add or replace one identity with its members and granted identities."""

    kind: Literal["identity.upsert"]
    members: list[Identity] = []
    well_knowns: list[Identity] = []
    rebuild: RunTag | None = None


class IdentityAlias(_IdentityEvent):
    """Map one identity to identities of other providers."""

    kind: Literal["identity.alias"]
    mappings: Annotated[list[MappedIdentity], Field(min_length=1)]
    well_knowns: list[Identity] = []
    rebuild: RunTag | None = None

    @property
    def coalescing_key(self) -> str:
        return f"alias:{self.identity.type}:{self.identity.name}"


class IdentityDisable(_IdentityEvent):
    """Disable one identity."""

    kind: Literal["identity.disable"]


class _RunEvent(_Message):
    """Begins or ends a full run of one Push source (items) or security provider (identities)."""

    run: RunId
    source: TargetId | None = None
    provider: TargetId | None = None

    @model_validator(mode="after")
    def _one_target(self) -> _RunEvent:
        if (self.source is None) == (self.provider is None):
            raise ValueError("give exactly one of source (a rebuild of items) or provider (a sync of identities)")
        return self

    @property
    def target(self) -> str:
        return self.source or self.provider or ""


class RebuildBegin(_RunEvent):
    """Start a full run: its `occurredAt` (never later than the worker's clock) is the delete's cut-off."""

    kind: Literal["rebuild.begin"]
    queue_delay: Annotated[StrictInt, Field(ge=0)] = 15
    """Minutes the service waits before removing what the run did not push."""
    max_delete_share: Annotated[float, Field(ge=0, le=1)] = 0.5
    """Nothing is removed if the run would remove more than this share of what the last run pushed."""
    allow_empty: StrictBool = False
    """A run of no events removes everything; refused unless this is set."""


class RebuildEnd(_RunEvent):
    """End a full run once its `events` tagged events (numbered 0 … events-1) have all arrived."""

    kind: Literal["rebuild.end"]
    events: Annotated[StrictInt, Field(ge=0, le=MAX_RUN_EVENTS)]
    """How many events the run tagged."""
    complete: StrictBool = True
    """False abandons the run: nothing is removed."""


Event = Annotated[
    Union[
        Annotated[ItemUpsert, Tag("item.upsert")],
        Annotated[ItemDelete, Tag("item.delete")],
        Annotated[IdentityUpsert, Tag("identity.upsert")],
        Annotated[IdentityAlias, Tag("identity.alias")],
        Annotated[IdentityDisable, Tag("identity.disable")],
        Annotated[RebuildBegin, Tag("rebuild.begin")],
        Annotated[RebuildEnd, Tag("rebuild.end")],
    ],
    Discriminator("kind"),
]
EVENT_TYPES = (ItemUpsert, ItemDelete, IdentityUpsert, IdentityAlias, IdentityDisable, RebuildBegin, RebuildEnd)
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
