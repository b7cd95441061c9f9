"""The Push API emulator as a real HTTP server for the tests: one subprocess for the session.

Fixtures (names and shapes are stable: other tests build on them)

`emulator` (session scope) starts `python -m emulator` on a free port with its own data
directory, waits until it answers, and yields an `EmulatorServer`:

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

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from worker.children import Child
from worker.children import emulator as emulator_child
from worker.store.embedded import free_port

STARTUP_SECONDS = 20.0
"""How long a server may take to answer after its process started."""
STOP_SECONDS = 10.0
"""How long the emulator may take to stop politely before it is killed."""
ADMIN = "/_emulator"


def _segment(target_id: str) -> str:
    """`target_id` as one path segment: ids may hold `%`, `|`, spaces and other non-URL characters."""
    return quote(target_id, safe="")


class EmulatorServer:
    """A running emulator and small helpers for its admin API (see the module docstring)."""

    def __init__(self, url: str, organization: str, api_key: str, child: Child) -> None:
        self.url = url
        self.push_url = url + "/push/v1"
        self.organization = organization
        self.api_key = api_key
        self.child = child
        self.process = child.popen
        self.log_path = child.log_path
        self._session = requests.Session()

    def headers(self) -> dict[str, str]:
        """Headers of a Push API call with the emulator's key."""
        return {"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json", "Accept": "application/json"}

    def reset(self) -> None:
        self._call("POST", "/reset")

    def configure(self, **limits: object) -> dict:
        return self._call("PUT", "/config", json=limits)

    def create_source(self, source_id: str, security_providers: tuple[str, ...] = (), organization: str | None = None) -> dict:
        body = {"securityProviders": list(security_providers)}
        return self._call("PUT", f"{self._org(organization)}/sources/{_segment(source_id)}", json=body)

    def create_provider(self, provider_id: str, strict: bool = False, organization: str | None = None) -> dict:
        return self._call("PUT", f"{self._org(organization)}/providers/{_segment(provider_id)}", json={"strict": strict})

    def pause_organization(self, paused: bool = True, organization: str | None = None) -> dict:
        return self._call("PUT", self._org(organization), json={"paused": paused})

    def items(self, source_id: str, organization: str | None = None) -> list[dict]:
        return self._call("GET", f"{self._org(organization)}/sources/{_segment(source_id)}/items?wait=1")["items"]

    def item(self, source_id: str, document_id: str, organization: str | None = None) -> dict | None:
        path = f"{self._org(organization)}/sources/{_segment(source_id)}/items"
        found = self._call("GET", path, params={"documentId": document_id, "wait": "1"})["items"]
        return found[0] if found else None

    def item_content(self, source_id: str, document_id: str, organization: str | None = None) -> bytes:
        path = f"{self._org(organization)}/sources/{_segment(source_id)}/items/content"
        self.wait_idle()
        response = self._session.get(self.url + ADMIN + path, params={"documentId": document_id})
        response.raise_for_status()
        return response.content

    def activities(self, source_id: str, organization: str | None = None) -> dict:
        return self._call("GET", f"{self._org(organization)}/sources/{_segment(source_id)}/activities?wait=1")

    def rejections(self, source_id: str, organization: str | None = None) -> list[dict]:
        return self._call("GET", f"{self._org(organization)}/sources/{_segment(source_id)}/rejections?wait=1")["rejections"]

    def identities(self, provider_id: str, organization: str | None = None) -> list[dict]:
        return self._call("GET", f"{self._org(organization)}/providers/{_segment(provider_id)}/identities?wait=1")["identities"]

    def provider_rejections(self, provider_id: str, organization: str | None = None) -> list[dict]:
        return self._call("GET", f"{self._org(organization)}/providers/{_segment(provider_id)}/rejections?wait=1")["rejections"]

    def containers(self) -> list[dict]:
        return self._call("GET", "/containers")["containers"]

    def requests(self, since: int = 0) -> list[dict]:
        return self._call("GET", "/requests", params={"since": since})["requests"]

    def add_fault(self, **rule: object) -> dict:
        return self._call("POST", "/faults", json=rule)

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def advance_clock(self, seconds: float) -> dict:
        return self._call("POST", "/clock", json={"advance": seconds})

    def wait_idle(self, timeout: float = 30.0) -> None:
        state = self._call("GET", "/idle", params={"timeout": timeout})
        assert state["idle"], f"the emulator still has {state['pending']} operations to apply after {timeout}s"

    def close(self) -> None:
        self._session.close()

    def _org(self, organization: str | None) -> str:
        return f"/organizations/{organization or self.organization}"

    def _call(self, method: str, path: str, **kwargs: object) -> dict:
        response = self._session.request(method, self.url + ADMIN + path, **kwargs)  # type: ignore[arg-type]
        assert response.ok, f"{method} {ADMIN}{path}: {response.status_code} {response.text}"
        return response.json()


def start_emulator(data_dir: Path, *options: str) -> EmulatorServer:
    """Start `python -m emulator` on a free port and wait until it answers; its output goes to
    data_dir/emulator.log. `options`: more command-line options."""
    from emulator.config import DEFAULT_API_KEY, DEFAULT_ORGANIZATION

    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    child = emulator_child(port, api_key=DEFAULT_API_KEY, log_path=data_dir / "emulator.log",
                           args=["--data-dir", str(data_dir / "data"), *options])
    return EmulatorServer(f"http://127.0.0.1:{port}", DEFAULT_ORGANIZATION, DEFAULT_API_KEY, child)


def wait_until_serving(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    """Poll `url` until it answers 2xx; a RuntimeError with the log when `process` dies or is too slow."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {STARTUP_SECONDS}s:\n{log_path.read_text()}")


def stop_emulator(server: EmulatorServer) -> None:
    """Stop the emulator's process (politely first)."""
    server.close()
    server.child.stop(timeout=STOP_SECONDS)


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
