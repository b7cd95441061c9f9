"""Helpers shared by the emulator's tests: a Push API client with the key, and a ready source."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from tests.plugins.emulator import EmulatorServer

SOURCE = "source-a"
PROVIDER = "provider-a"


class PushApi:
    """Push API calls against the emulator, relative to the organization, with its key."""

    def __init__(self, server: EmulatorServer) -> None:
        self.server = server
        self.base = f"{server.push_url}/organizations/{server.organization}"
        self.session = requests.Session()
        self.session.headers.update(server.headers())

    def call(self, method: str, path: str, **kwargs: object) -> requests.Response:
        """One call; `path` is relative to /push/v1/organizations/{org}."""
        return self.session.request(method, self.base + path, **kwargs)  # type: ignore[arg-type]

    def put_item(self, document_id: str, body: dict, **params: object) -> requests.Response:
        """PUT one item into SOURCE."""
        return self.call("PUT", f"/sources/{SOURCE}/documents", params={"documentId": document_id, **params}, json=body)

    def upload(self, payload: bytes) -> str:
        """Create a container, upload `payload` with exactly its requiredHeaders; its fileId."""
        created = self.call("POST", "/files")
        assert created.status_code == 201, created.text
        container = created.json()
        uploaded = requests.put(container["uploadUri"], data=payload, headers=container["requiredHeaders"])
        assert uploaded.status_code == 200, uploaded.text
        return container["fileId"]

    def push_batch(self, batch: dict, **params: object) -> requests.Response:
        """Upload `batch` as a file and apply it to SOURCE."""
        file_id = self.upload(json.dumps(batch).encode())
        return self.call("PUT", f"/sources/{SOURCE}/documents/batch", params={"fileId": file_id, **params})


@pytest.fixture(autouse=True)
def no_emulator_errors(emulator: EmulatorServer) -> Iterator[None]:
    """Fail a test after which the emulator logged an error: bad input must never crash a route."""
    logged_before = emulator.log_path.read_text()
    yield
    logged = emulator.log_path.read_text()[len(logged_before):]
    assert "Traceback" not in logged and "ERROR" not in logged, logged


@pytest.fixture()
def api(clean_emulator: EmulatorServer) -> PushApi:
    """A reset emulator with SOURCE and PROVIDER created, and a client for its Push API."""
    clean_emulator.create_source(SOURCE, security_providers=(PROVIDER,))
    clean_emulator.create_provider(PROVIDER)
    return PushApi(clean_emulator)


def assert_error(response: requests.Response, status: int, error_code: str | None = None) -> dict:
    """The response is an error with `status` and the service's JSON error body; that body."""
    assert response.status_code == status, f"{response.status_code} {response.text}"
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"errorCode", "message"}, body
    assert isinstance(body["errorCode"], str) and isinstance(body["message"], str)
    if error_code is not None:
        assert body["errorCode"] == error_code, body
    return body
