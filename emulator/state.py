"""The emulator's state: organizations with their sources and providers, and one generation of
everything else (containers, clock, faults, request log, quotas, pending operations).

`POST /_emulator/reset` swaps in a fresh generation; a request already running keeps the one it
started with, so nothing it does can leak into the new one.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TypeVar

from emulator.clock import Clock
from emulator.config import EmulatorConfig, Limits
from emulator.containers import ContainerStore
from emulator.errors import EmulatorError
from emulator.faults import FaultStore
from emulator.identities import Provider
from emulator.index import Source
from emulator.quotas import DailyQuotas
from emulator.requestlog import RequestLog
from emulator.scheduler import Scheduler

DOCUMENT_LIMIT_EXCEEDED = "DOCUMENT_LIMIT_EXCEEDED"
T = TypeVar("T")


def _found(found_in: dict[str, T], key: str, error_code: str, message: str) -> T:
    """`found_in[key]`, or a 404 with `error_code` and `message`.

    The service's 404 error codes are UNCONFIRMED: these names are the emulator's own, and clients
    must act on the status alone."""
    try:
        return found_in[key]
    except KeyError:
        raise EmulatorError(404, error_code, message) from None


class Organization:
    """A Coveo organization: its Push sources and security identity providers."""

    def __init__(self, organization_id: str) -> None:
        self.id = organization_id
        self.paused = False
        """A paused organization answers every Push API call 400 ORGANIZATION_IS_PAUSED."""
        self.sources: dict[str, Source] = {}
        self.providers: dict[str, Provider] = {}

    def source(self, source_id: str) -> Source:
        """The source, or a 404."""
        return _found(self.sources, source_id, "SOURCE_NOT_FOUND", f"no source {source_id!r} in organization {self.id!r}")

    def provider(self, provider_id: str) -> Provider:
        """The security identity provider, or a 404."""
        message = f"no provider {provider_id!r} in organization {self.id!r}"
        return _found(self.providers, provider_id, "PROVIDER_NOT_FOUND", message)

    def item_count(self) -> int:
        """Items indexed in all its sources: what the item allowance counts."""
        return sum(len(source.items) for source in self.sources.values())

    def check_item_allowance(self, allowance: int | None) -> None:
        """A 412 DOCUMENT_LIMIT_EXCEEDED once the organization holds `allowance` items."""
        if allowance is not None and self.item_count() >= allowance:
            raise EmulatorError(412, DOCUMENT_LIMIT_EXCEEDED, f"the organization holds its {allowance} allowed items")


class Emulator:
    """One generation of the emulator's state."""

    def __init__(self, config: EmulatorConfig, directory: Path) -> None:
        """`directory`: this generation's own folder for blobs and spilled content."""
        self.config = config
        self.limits: Limits = config.limits
        self.directory = directory
        self.content_directory = directory / "content"
        self.clock = Clock()
        self.containers = ContainerStore(directory / "containers", self.clock)
        self.scheduler = Scheduler(self.clock, lambda: self.limits.apply_delay)
        self.faults = FaultStore()
        self.requests = RequestLog(config.api_key)
        self.quotas = DailyQuotas(self.clock)
        self.organizations: dict[str, Organization] = {}
        organization = self.add_organization(config.organization)
        for source_id in config.sources:
            organization.sources[source_id] = Source(source_id)
        for provider_id in config.providers:
            organization.providers[provider_id] = Provider(provider_id, strict=False)
        for provider_id in config.strict_providers:
            organization.providers[provider_id] = Provider(provider_id, strict=True)

    def organization(self, organization_id: str) -> Organization:
        """The organization, or a 404."""
        message = f"no organization {organization_id!r}"
        return _found(self.organizations, organization_id, "ORGANIZATION_NOT_FOUND", message)

    def add_organization(self, organization_id: str) -> Organization:
        """The organization, created if it did not exist (admin API)."""
        return self.organizations.setdefault(organization_id, Organization(organization_id))

    def advance_clock(self, seconds: float) -> None:
        """Move the clock forward and let operations that became due run."""
        self.clock.advance(seconds)
        self.scheduler.wake()

    def start(self) -> None:
        """Start applying accepted operations."""
        self.scheduler.start()

    async def close(self) -> None:
        """Stop, and delete this generation's files."""
        await self.scheduler.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class EmulatorHolder:
    """The generation in force; what routes and middleware look the state up in."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self._generation = 0
        self._current: Emulator | None = None

    @property
    def current(self) -> Emulator:
        """The generation in force."""
        assert self._current is not None, "the emulator is not started"
        return self._current

    def start(self) -> None:
        """Create and start the first generation."""
        self._current = self._new()

    async def reset(self) -> None:
        """Replace the generation with a fresh one, as at start-up."""
        old, self._current = self._current, self._new()
        if old is not None:
            await old.close()

    async def close(self) -> None:
        """Stop the generation in force and delete its files."""
        if self._current is not None:
            await self._current.close()

    def _new(self) -> Emulator:
        self._generation += 1
        emulator = Emulator(self.config, self.config.data_dir / f"generation-{self._generation}")
        emulator.start()
        return emulator
