"""Property: whatever JSON a client sends to a route that reads one, nested however deep, the
emulator answers with strict JSON and a JSON content type, never a 5xx; past the nesting limit
it is a 400 INVALID_JSON like any bad body; a success carries `{}`.

PUSHSYNC_EMULATOR_FUZZ_EXAMPLES sets the number of examples (a few dozen by default, for CI;
500 or more by hand), and a run with it set draws new examples instead of the fixed ones.
"""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.bodies import MAX_NESTING_DEPTH
from tests.emulator.conftest import PROVIDER, SOURCE, PushApi
from tests.support.openapi import strict_json

EXAMPLES = int(os.environ.get("PUSHSYNC_EMULATOR_FUZZ_EXAMPLES", "30"))
DEEPEST_WRAP = 3_000
"""Most levels of arrays or objects wrapped around a drawn value: past Python's recursion limit."""
ROUTES = [
    ("PUT", f"/sources/{SOURCE}/documents?documentId=https%3A%2F%2Fe.com%2Ffuzz"),
    ("PUT", f"/providers/{PROVIDER}/permissions"),
    ("DELETE", f"/providers/{PROVIDER}/permissions"),
    ("PUT", f"/providers/{PROVIDER}/mappings"),
    ("PUT", "/_emulator/config"),
    ("PUT", f"/_emulator/organizations/fuzz/sources/{SOURCE}"),
]
WRAPPERS = {"array": ("[", "]"), "object": ('{"k":', "}"), "item": ('{"data": "x", "title":', "}")}

scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                      max_leaves=16)


def depth(value: object) -> int:
    """Levels of arrays and objects in `value` (0 for a scalar); drawn values are shallow."""
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("PUSHSYNC_EMULATOR_FUZZ_EXAMPLES"),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(route=st.sampled_from(ROUTES), value=values, wrapper=st.sampled_from(sorted(WRAPPERS)),
       levels=st.integers(0, 5) | st.integers(MAX_NESTING_DEPTH - 3, MAX_NESTING_DEPTH + 3) | st.integers(0, DEEPEST_WRAP))
def test_any_json_body_gets_a_json_answer_and_never_a_5xx(
    api: PushApi, route: tuple[str, str], value: object, wrapper: str, levels: int
) -> None:
    method, path = route
    opening, closing = WRAPPERS[wrapper]
    body = opening * levels + json.dumps(value) + closing * levels
    url = api.server.url + path if path.startswith("/_emulator") else api.base + path
    response = api.session.request(method, url, data=body.encode())

    assert response.status_code < 500, f"{method} {path}: {response.status_code} {response.text[:200]}"
    assert response.headers.get("content-type", "").split(";")[0] == "application/json", response.headers
    answer = strict_json(response.content)
    if response.status_code >= 400:
        assert isinstance(answer, dict) and set(answer) == {"errorCode", "message"}, answer
    elif not path.startswith("/_emulator"):
        assert answer == {}
    if levels + depth(value) > MAX_NESTING_DEPTH:
        assert response.status_code == 400 and "deeper than" in answer["message"], answer
