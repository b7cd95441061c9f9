"""Which errors say the store or the broker cannot be used now, rather than that what was sent is bad.

An outage is waited out (invariant 9), never counted against a message or a batch. A Redis Cluster
failing over is one: slots uncovered or moving, the cluster down or unreachable for a while.
"""

from __future__ import annotations

import redis
from kombu.exceptions import OperationalError
from redis.exceptions import RedisClusterException

OUTAGE_ERRORS = (
    redis.ConnectionError, redis.TimeoutError, redis.exceptions.OutOfMemoryError, redis.exceptions.ReadOnlyError,
    redis.exceptions.MasterDownError, redis.exceptions.ClusterError, redis.exceptions.TryAgainError,
    redis.exceptions.AskError, redis.exceptions.SlotNotCoveredError,
    redis.exceptions.AuthenticationError, redis.exceptions.NoPermissionError, OperationalError, OSError,
)
"""Errors that say the store or broker cannot take anything now (down, loading, full, failing over, a
Cluster's slot moving or uncovered, refusing the credentials), whatever is written. ClusterError covers
ClusterDownError and redis-py giving up on a Cluster that keeps redirecting it; AskError covers MOVED."""
OUTAGE_ANSWERS = ("OOM command not allowed", "READONLY", "LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN",
                  "NOREPLICAS", "BUSY ", "MISCONF")
"""Redis error answers of the same meaning, as they also come wrapped in a script's or a pipeline's error."""
CLUSTER_UNREACHABLE = ("Redis Cluster cannot be connected", "All slots are not covered")
"""How redis-py's RedisClusterException says that no node of the Cluster answers or that slots lack a primary
(its other uses are mistakes of the caller, such as keys of several slots in one call)."""
STORE_ERRORS = (redis.RedisError, RedisClusterException)
"""Everything a store client raises for the store's sake (RedisClusterException is no RedisError)."""


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` says the store or the broker cannot be used now, rather than that a message is bad."""
    if isinstance(exc, OUTAGE_ERRORS):
        return True
    if isinstance(exc, RedisClusterException):
        return any(answer in str(exc) for answer in CLUSTER_UNREACHABLE)
    return isinstance(exc, redis.ResponseError) and any(answer in str(exc) for answer in OUTAGE_ANSWERS)
