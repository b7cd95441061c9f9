"""How two versions of one item order: the rank every window, batch and high-water mark keeps.

`rank.lua` is the same rule inside Redis; the scripts that compare ranks load it as a prelude.
"""

from __future__ import annotations

from pathlib import Path

RANK_LUA = Path(__file__).with_name("rank.lua")
"""The Lua twin of `is_newer`, loaded before the scripts that compare ranks."""
REMOVALS = frozenset({"item.delete", "identity.disable"})
"""Kinds that win a tie: a CMS may send an unpublish with the revision of the last publish."""


def rank(kind: str, version: int) -> str:
    """How an event orders against others of its key: by version, then a removal beats an upsert."""
    return f"{version}.{1 if kind in REMOVALS else 0}"


def is_newer(candidate: str, held: str) -> bool:
    """Python's twin of `newer` in rank.lua, for ranks read back from Redis."""
    return _rank_key(candidate) > _rank_key(held)


def _rank_key(value: str) -> tuple[int, int]:
    version, _, tiebreak = value.partition("@")[0].partition(".")
    return int(version), int(tiebreak) if tiebreak else -1
