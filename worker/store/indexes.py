"""Reading a sharded index whole (`keys.DEADLINES`, `keys.CLAIMED`, `keys.BURSTS`), for the overviews.

The sweep never reads an index whole: it takes what is due by score (see `worker.windows.flush`).
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

from worker.store import keys

UNSHARDED = {keys.DEADLINES: keys.UNSHARDED_DEADLINES, keys.CLAIMED: keys.UNSHARDED_CLAIMED,
             keys.BURSTS: keys.UNSHARDED_BURSTS}
"""What a version before the sharding wrote for each index, until the sweep moved it into the shards."""


def members(client: redis.Redis, shards: Iterable[str]) -> set[bytes]:
    """Every member of the index made of `shards` (one of `keys.DEADLINES`, `keys.CLAIMED`, `keys.BURSTS`),
    the unsharded key's included, in one round trip per node."""
    shards = tuple(shards)
    pipe = client.pipeline(transaction=False)
    for shard in shards:
        pipe.zrange(shard, 0, -1)
    unsharded = UNSHARDED[shards]
    if unsharded == keys.UNSHARDED_BURSTS:
        pipe.smembers(unsharded)
    else:
        pipe.zrange(unsharded, 0, -1)
    return {member for found in pipe.execute() for member in found}


def count(client: redis.Redis, shards: Iterable[str]) -> int:
    """How many members the index made of `shards` holds (see `members`)."""
    return len(members(client, shards))
