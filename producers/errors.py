"""Exceptions of the producers, shaped so that callers can act on the class alone.

    ProducerError
    ├── InvalidEventError        the event breaks the schema: fix it, retrying will not help
    ├── PublishError             the broker did not take the events: retry later (`events` kept)
    └── ConfigError              a webhook configuration file pushsync cannot use

No exception carries a secret: broker URLs are shown with their password masked and webhook
secrets never reach a message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from producers.events.models import Event


class ProducerError(Exception):
    """Base of every error the producers raise."""


class InvalidEventError(ProducerError, ValueError):
    """An event the worker would quarantine; `problems` lists each one as `field.path: what was expected`."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        self.reason = "; ".join(self.problems)
        super().__init__(self.reason)


class PublishError(ProducerError):
    """Events that were not handed over to the broker; `events` holds them, in order, for a retry."""

    def __init__(self, reason: str, events: Sequence[Event] = ()) -> None:
        self.reason = reason
        self.events = list(events)
        super().__init__(f"{self.not_published} event(s) not handed over to the broker: {reason}")

    @property
    def not_published(self) -> int:
        """How many events the broker did not confirm."""
        return len(self.events)


class ConfigError(ProducerError, ValueError):
    """A configuration file is missing or wrong; the message names the file and the setting."""
