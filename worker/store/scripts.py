"""Loading the Lua scripts that sit beside the modules that run them."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import redis
from redis.commands.core import Script


@cache
def _source(path: Path) -> str:
    return path.read_text()


def script(client: redis.Redis, path: Path, *preludes: Path) -> Script:
    """The script at `path` (a .lua file beside the module that runs it) after its `preludes`
    (shared .lua functions), registered on `client`; it runs by EVALSHA."""
    return client.register_script("\n".join(_source(part) for part in (*preludes, path)))
