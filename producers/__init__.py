"""pushsync producers: what upstream systems use to hand their changes to pushsync.

The publishing library (`Publisher`), the change-event schema (`producers.events`), the broker
topology (`producers.broker`), the `pushsync publish` NDJSON command and the `pushsync webhook`
receiver with its CMS adapters (`producers.webhook`).
"""

from producers.clock import PROCESS_CLOCK, VersionClock
from producers.errors import ConfigError, InvalidEventError, ProducerError, PublishError
from producers.events import Event, InvalidEvent, decode_event, decode_message, parse_event
from producers.publisher import Publisher, RetryPolicy

__all__ = [
    "PROCESS_CLOCK",
    "ConfigError",
    "Event",
    "InvalidEvent",
    "InvalidEventError",
    "ProducerError",
    "PublishError",
    "Publisher",
    "RetryPolicy",
    "VersionClock",
    "decode_event",
    "decode_message",
    "parse_event",
]
