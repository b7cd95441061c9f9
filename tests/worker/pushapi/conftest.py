from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.scripted_server import ScriptedServer
from worker.pushapi.client import PushApiClient

ORGANIZATION = "org-test"
API_KEY = "xx-secret-api-key-0123456789"


class SleepRecorder(list):
    """Records the waits the retry policy asks for instead of spending them."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture()
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    yield scripted
    scripted.close()


@pytest.fixture()
def waits() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture()
def client(server: ScriptedServer, waits: SleepRecorder) -> Iterator[PushApiClient]:
    api = PushApiClient(
        base_url=server.push_url, organization_id=ORGANIZATION, api_key=API_KEY,
        connect_timeout=2, read_timeout=2, retry_budget_seconds=30, sleep=waits,
    )
    yield api
    api.close()
