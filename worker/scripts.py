"""Loading the Lua scripts that sit beside the modules that run them."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import redis
from redis.commands.core import Script

HERE = Path(__file__).parent


@cache
def _source(name: str) -> str:
    return (HERE / name).read_text()


def script(client: redis.Redis, name: str, *preludes: str) -> Script:
    """The script `name` (a .lua file in worker/) after its `preludes` (shared .lua functions),
    registered on `client`; it runs by EVALSHA."""
    return client.register_script("\n".join(_source(part) for part in (*preludes, name)))
