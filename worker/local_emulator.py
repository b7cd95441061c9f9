"""The emulator as a child process, with a client for its admin API: what the tests' `emulator`
fixture (tests/plugins/emulator.py, which documents the client) and bench/bench_emulator.py start."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from emulator.paths import ADMIN_PREFIX, PLATFORM_PREFIX, PUSH_PREFIX
from worker.children import Child
from worker.children import emulator as emulator_child
from worker.store.embedded import LOOPBACK, free_port

STOP_SECONDS = 10.0
"""How long the emulator may take to stop politely before it is killed."""


def _segment(target_id: str) -> str:
    """`target_id` as one path segment: ids may hold `%`, `|`, spaces and other non-URL characters."""
    return quote(target_id, safe="")


class EmulatorServer:
    """A running emulator and small helpers for its admin API (tests/plugins/emulator.py lists them)."""

    def __init__(self, url: str, organization: str, api_key: str, child: Child) -> None:
        self.url = url
        self.push_url = url + PUSH_PREFIX
        self.platform_url = url + PLATFORM_PREFIX
        self.organization = organization
        self.api_key = api_key
        self.child = child
        self.process = child.popen
        self.log_path = child.log_path
        self._session = requests.Session()
        # The emulator closes a connection idle for its keep-alive; a call sent on it at that instant
        # is reset before the emulator read it, so sending it once more is safe.
        self._session.mount(url, HTTPAdapter(max_retries=Retry(total=1, allowed_methods=None, status=0,
                                                                 raise_on_status=False)))

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
        response = self._session.get(self.url + ADMIN_PREFIX + path, params={"documentId": document_id})
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

    def faults(self) -> list[dict]:
        """The rules in force: a rule with `times` is gone once it fired that often."""
        return self._call("GET", "/faults")["faults"]

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
        response = self._session.request(method, self.url + ADMIN_PREFIX + path, **kwargs)  # type: ignore[arg-type]
        assert response.ok, f"{method} {ADMIN_PREFIX}{path}: {response.status_code} {response.text}"
        return response.json()


def start_emulator(data_dir: Path, *options: str, host: str = LOOPBACK) -> EmulatorServer:
    """Start `python -m emulator` on a free port of `host` (default: loopback) and wait until it answers;
    its output goes to data_dir/emulator.log. `options`: more command-line options."""
    from emulator.config import DEFAULT_API_KEY, DEFAULT_ORGANIZATION

    port = free_port(host)
    data_dir.mkdir(parents=True, exist_ok=True)
    child = emulator_child(port, api_key=DEFAULT_API_KEY, log_path=data_dir / "emulator.log", host=host,
                           args=["--data-dir", str(data_dir / "data"), *options])
    return EmulatorServer(f"http://{host}:{port}", DEFAULT_ORGANIZATION, DEFAULT_API_KEY, child)


def stop_emulator(server: EmulatorServer) -> None:
    """Stop the emulator's process (politely first)."""
    server.close()
    server.child.stop(timeout=STOP_SECONDS)
