"""The Push API emulator as a real HTTP server for the tests: one subprocess for the session.

Fixtures (names and shapes are stable: other tests build on them)

`emulator` (session scope) starts `python -m emulator` on a free port with its own data
directory, waits until it answers, and yields an `EmulatorServer` (worker/local_emulator.py):

    .url                  "http://127.0.0.1:PORT"
    .push_url             .url + "/push/v1" (what COVEO_PUSH_URL takes)
    .organization         the organization that exists from the start ("pushsync-local")
    .api_key              the one Bearer key it accepts ("local-emulator-key")
    .log_path             the emulator's own output (errors it logged would be there)
    .headers()            the Authorization, Content-Type and Accept headers of a Push API call
    .reset()              back to the start-up state: index, containers, logs, faults, clock, limits
    .configure(**limits)  change limits, e.g. configure(applyDelay=0, itemAllowance=10,
                          dailyRequestLimit=..., dailyDocumentLimit=..., containerLimitBytes=...)
    .create_source(source_id, security_providers=(), organization=None)
    .create_provider(provider_id, strict=False, organization=None)
    .pause_organization(paused=True, organization=None)
    .items(source_id) -> list[dict]           every indexed item (documentId, orderingId, metadata,
                                              permissions, parentId, fileExtension, contentSize,
                                              content or contentBase64)
    .item(source_id, document_id) -> dict | None
    .item_content(source_id, document_id) -> bytes
    .activities(source_id) -> dict            {"status", "activities", "transitions"}
    .rejections(source_id) -> list[dict]      items refused after their 202 (reason, message, ...)
    .identities(provider_id) -> list[dict]
    .provider_rejections(provider_id) -> list[dict]
    .containers() -> list[dict]               every file container and its state
    .requests(since=0) -> list[dict]          the request log (entries have an increasing "id")
    .add_fault(**rule) -> dict                e.g. add_fault(method="PUT", path="*/documents/batch",
                                              status=429, retryAfter=2, times=1); or latency=0.5
    .faults() -> list[dict]                   the rules in force (one with `times` leaves once it fired
                                              that often: when a request it holds arrived)
    .clear_faults()
    .advance_clock(seconds) -> dict
    .wait_idle(timeout=30.0)                  until every accepted operation that is due was applied

The inspection helpers (items, activities, rejections, identities) first wait until what was
accepted so far is applied, so tests never sleep. Every helper takes `organization=` where
it addresses one; the default is `.organization`.

`clean_emulator` (function scope) is the same server, reset before the test.

docs/emulator.md describes the admin API these helpers call.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from worker.local_emulator import EmulatorServer, start_emulator, stop_emulator

__all__ = ["EmulatorServer", "start_emulator", "stop_emulator"]


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    """The session's emulator (see the module docstring)."""
    server = start_emulator(tmp_path_factory.mktemp("emulator"))
    yield server
    stop_emulator(server)


@pytest.fixture()
def clean_emulator(emulator: EmulatorServer) -> EmulatorServer:
    """The session's emulator, reset to its start-up state."""
    emulator.reset()
    return emulator
