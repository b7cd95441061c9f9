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


class ScriptPipeline:
    """A pipeline (no transaction) of script calls and plain commands, also on a Redis Cluster.

    Each script call is an EVALSHA routed by its keys, so a Cluster pipeline sends it to the node
    of their one slot (redis-py's Pipeline.scripts, which loads scripts up front, has no Cluster
    counterpart). A node that lacks a script (restarted, flushed, a replica just promoted) answers
    NOSCRIPT: the script is then loaded on every primary and just those calls are sent again.
    """

    def __init__(self, client: redis.Redis) -> None:
        """client: the store's client (one server or a Cluster)."""
        self.client = client
        self.plain = client.pipeline(transaction=False)
        """The pipeline itself, for plain commands."""
        self._calls: dict[int, tuple[Script, Sequence[Any]]] = {}

    def __len__(self) -> int:
        return len(self.plain)

    def run(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> None:
        """Queue one call of `script` on `keys` (all of one hash slot) with `args`."""
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        self._calls[len(self.plain)] = (script, command)
        self.plain.execute_command(*command)

    def execute(self) -> list[Any]:
        """Every reply, in order; the first error raised as a pipeline would, once NOSCRIPT calls were retried."""
        replies = self.plain.execute(raise_on_error=False)
        missing = [index for index in self._calls if isinstance(replies[index], NoScriptError)]
        if missing:
            for script in {self._calls[index][0].sha: self._calls[index][0] for index in missing}.values():
                self.client.script_load(script.script)
            again = self.client.pipeline(transaction=False)
            for index in missing:
                again.execute_command(*self._calls[index][1])
            for index, reply in zip(missing, again.execute(raise_on_error=False)):
                replies[index] = reply
        self._calls = {}
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies
