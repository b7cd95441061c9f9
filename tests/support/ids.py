"""Generated ids for the property tests: arbitrary text, text rich in the characters that could
split a ref or a key, and the text the event schema accepts for each kind of id.

`PUSHSYNC_LONG_PROPERTIES=1` multiplies every test's examples by `LONG_FACTOR` (a run by hand).
"""

from __future__ import annotations

import os
import re

from hypothesis import strategies as st

from producers.events import ID_REGEX, MAX_ID_LENGTH, NAME_REGEX, RUN_ID_REGEX, URI_REGEX

LONG_FACTOR = 40
"""How many times more examples a long run tries."""
LONG = os.environ.get("PUSHSYNC_LONG_PROPERTIES") == "1"

TRICKY = "|:%{}/?#@=,;\\\"' \t\n\x00\x07\x1b\x1f\x7f\x85\x9f\xa0\u2028\u3000é漢😀"
"""Separators of refs, keys, URLs, JSON and settings; whitespace; control characters; non-ASCII."""
SCHEMES = ("https", "http", "file", "x-custom+v1.2")
MAX_URI_CHARS = 2000
MAX_NAME_CHARS = 200


def examples(short: int) -> int:
    """`short` examples in the default run; `LONG_FACTOR` times as many in a long one."""
    return short * LONG_FACTOR if LONG else short


def tricky_text(min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[str]:
    """Text mostly made of `TRICKY` characters, with any other character mixed in."""
    alphabet = st.one_of(st.sampled_from(TRICKY), st.characters(codec="utf-8"))
    return st.text(alphabet, min_size=min_size, max_size=max_size)


def candidates(max_size: int = 300) -> st.SearchStrategy[str]:
    """Anything a producer might send as an id or a name."""
    return st.one_of(st.text(max_size=max_size), tricky_text())


def uri_candidates() -> st.SearchStrategy[str]:
    """Anything a producer might send as a URI: often `scheme://` and tricky text."""
    return st.one_of(candidates(), st.builds(lambda scheme, rest: f"{scheme}://{rest}",
                                             st.sampled_from(SCHEMES), tricky_text()))


def _accepted(pattern: str, head: str, max_size: int) -> st.SearchStrategy[str]:
    """Text matching `pattern`: any, or a valid start followed by the tricky characters it allows
    (`head`: a valid start, to probe which characters may follow)."""
    allowed = [c for c in TRICKY if re.fullmatch(pattern, head + c)]
    start = st.from_regex(pattern, fullmatch=True)
    tricky = st.builds(str.__add__, start, st.text(st.sampled_from(allowed), max_size=30))
    return st.one_of(start, tricky).filter(lambda text: len(text) <= max_size)


def accepted_ids() -> st.SearchStrategy[str]:
    """Source and provider ids the schema accepts, `|`, `:` and `%` among them."""
    return _accepted(ID_REGEX, "a", MAX_ID_LENGTH)


def accepted_uris() -> st.SearchStrategy[str]:
    """documentIds the schema accepts."""
    return _accepted(URI_REGEX, "x://a", MAX_URI_CHARS)


def accepted_names() -> st.SearchStrategy[str]:
    """Identity names the schema accepts."""
    return _accepted(NAME_REGEX, "a", MAX_NAME_CHARS)


def run_ids() -> st.SearchStrategy[str]:
    """Run ids the schema accepts."""
    return st.from_regex(RUN_ID_REGEX, fullmatch=True).filter(lambda text: len(text) <= 64)
