"""Loading the Lua scripts that sit beside the modules that run them."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError


@cache
def _source(path: Path) -> str:
    return path.read_text()


def script(client: redis.Redis, path: Path, *preludes: Path) -> Script:
    """The script at `path` (a .lua file beside the module that runs it) after its `preludes`
    (shared .lua functions), registered on `client`; it runs by EVALSHA."""
    return client.register_script("\n".join(_source(part) for part in (*preludes, path)))


def run_many(client: redis.Redis, lua: Script, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]) -> list[Any]:
    """Run `lua` once per call (keys, args) in one pipelined round trip per node; the replies in order.

    Each call keeps to its own keys' slot, so this works on a Redis Cluster too (its pipeline splits
    by node). A server that lost the script gets it again and runs the calls that it refused."""
    replies = _evalsha_all(client, lua, calls)
    missing = [n for n, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        client.script_load(lua.script)
        for n, reply in zip(missing, _evalsha_all(client, lua, [calls[n] for n in missing])):
            replies[n] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def _evalsha_all(client: redis.Redis, lua: Script, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for call_keys, args in calls:
        pipe.execute_command("EVALSHA", lua.sha, len(call_keys), *call_keys, *args)
    return pipe.execute(raise_on_error=False)
