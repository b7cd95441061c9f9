"""The Push API's published limits, as the emulator enforces them.

Kept apart from `worker.settings` on purpose: the emulator checks the client against the
contract, so its limits must not move when the client's own constants do. Sizes are in MiB,
as Coveo's own clients count them.
"""

MIB = 1024 * 1024

REQUEST_BODY_LIMIT_BYTES = 6 * MIB
"""Largest single item, identity or alias request body."""
INLINE_CONTENT_LIMIT_BYTES = 5 * MIB
"""Largest `data` or `compressedBinaryData` value inside an item."""
CONTAINER_LIMIT_BYTES = 256 * MIB
"""Largest upload one file container accepts."""
CONTAINER_LIFETIME_SECONDS = 60 * 60
"""A file container expires this long after it was created."""
MAX_PERMISSIONS_PER_ITEM = 5_000
"""An item naming more identities than this is rejected by the indexing pipeline."""
DEFAULT_QUEUE_DELAY_MINUTES = 15
"""How long `olderthan` waits before it runs when the call gives no `queueDelay`."""
