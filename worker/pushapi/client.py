"""A client for every operation of Coveo's Push API, retrying what may succeed later.

One `PushApiClient` per process: it holds a pooled `requests.Session`. Every method raises a
subclass of `PushApiError` (see `errors.py`) and never puts the API key into one, except what
a hook given to `before_each_request` raises, which stops the call as it is.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.util import SKIP_HEADER

from worker import redaction
from worker.pushapi import documents
from worker.pushapi.errors import (
    ConnectError,
    ContainerExpiredError,
    InvalidInputError,
    PushApiError,
    TimeoutError,
)
from worker.pushapi.responses import error_from_response
from worker.pushapi.retry import RetryHook, call_with_retries
from worker.version import USER_AGENT

log = logging.getLogger(__name__)

POOL_CONNECTIONS = 10
"""Hosts whose connections the session keeps (the Push API and the storage host)."""
POOL_MAXSIZE = 20
"""Connections kept per host."""
ORDERING_ID_SKEW_MS = 60_000
"""How far ahead of this clock an `orderingId` may be before we refuse to send it: a future
`orderingId` blocks the source until that time and the only cure is recreating the source."""
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
UPLOAD_DROPPED_HEADERS = {"User-Agent": SKIP_HEADER, "Accept-Encoding": SKIP_HEADER, "Accept": None}
"""Session defaults kept off the upload, which carries only the container's `requiredHeaders`."""

TCP_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", None)
"""Linux's socket option: how long sent bytes may go unacknowledged before the kernel gives the connection up
(elsewhere None: the bound on a fenced request is then its connect timeout only)."""

RequestHook = Callable[[str], None]
"""Called with an operation's name before each request of it is sent; what it raises stops the call."""
AnsweredHook = Callable[[str, "int | None", "PushApiError | None"], None]
"""Called after each request with its operation, the answer's status (None when no answer came)
and, without an answer, the error it failed with."""


class FencedAdapter(HTTPAdapter):
    """Connections on which the kernel gives up sent bytes left unacknowledged for `unacknowledged_seconds`
    (TCP_USER_TIMEOUT) and resets the connection, instead of retransmitting them until the peer answers."""

    def __init__(self, unacknowledged_seconds: float, **kwargs: Any) -> None:
        """unacknowledged_seconds: how long; kwargs: HTTPAdapter's."""
        self._socket_options = list(HTTPConnection.default_socket_options)
        if TCP_USER_TIMEOUT is not None:
            milliseconds = max(1, int(unacknowledged_seconds * 1000))
            self._socket_options.append((socket.IPPROTO_TCP, TCP_USER_TIMEOUT, milliseconds))
        super().__init__(**kwargs)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, socket_options=self._socket_options, **pool_kwargs)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        # Through a proxy too: the connection to the proxy carries the request, and must die the same way.
        return super().proxy_manager_for(proxy, socket_options=self._socket_options, **proxy_kwargs)


class EnvironmentOnce(requests.Session):
    """A session that reads the environment's proxies (HTTPS_PROXY, NO_PROXY, ...) and CA bundle
    (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE) once per origin, and never a netrc file.

    requests reads the whole environment at every request, which cost a small push more CPU than
    its own work; and its netrc lookup replaces the Authorization header with the netrc login of the
    host, so a ~/.netrc entry for the Push API's host would send that login instead of the key."""

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False
        self._origins: dict[tuple[str, str], tuple[dict[str, str], str | None]] = {}

    def merge_environment_settings(self, url: str | bytes | None, proxies: Any, stream: Any, verify: Any,
                                   cert: Any) -> dict[str, Any]:
        environment_proxies, bundle = self._environment(url)
        if verify is True or verify is None:
            verify = bundle or verify
        return super().merge_environment_settings(url, {**environment_proxies, **(proxies or {})}, stream, verify,
                                                  cert)

    def rebuild_proxies(self, prepared_request: Any, proxies: Any) -> dict[str, str]:
        # A redirect (an upload's storage host may answer 307) takes the proxy of the host it leads to.
        merged = dict(proxies or {})
        for scheme, proxy in self._environment(prepared_request.url)[0].items():
            merged.setdefault(scheme, proxy)
        return super().rebuild_proxies(prepared_request, merged)

    def _environment(self, url: str | bytes | None) -> tuple[dict[str, str], str | None]:
        """The proxies the environment gives `url`'s origin, and its CA bundle, read at the origin's first request."""
        text = url.decode() if isinstance(url, bytes) else url or ""
        origin = urlsplit(text)[:2]
        found = self._origins.get(origin)
        if found is None:
            found = self._origins[origin] = (requests.utils.get_environ_proxies(text),
                                             os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE"))
        return found


@dataclass
class EventHooks:
    """What the client tells a caller of its traffic, as httpx's event hooks do: each list is
    called in order, in the thread that sent the request; what a hook raises reaches the caller."""

    request: list[AnsweredHook] = field(default_factory=list)
    """After every request attempt, answered or not."""
    retry: list[RetryHook] = field(default_factory=list)
    """Before the wait that precedes a retry."""


@dataclass(frozen=True)
class FileContainer:
    """A file container the service created: upload once to `upload_uri`, then use `file_id`."""

    file_id: str
    upload_uri: str
    required_headers: Mapping[str, str]


class PushApiClient:
    """Every Push API operation for one organization, with retries within a time budget."""

    def __init__(
        self,
        *,
        base_url: str,
        organization_id: str,
        platform_url: str | None = None,
        api_key: str,
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
        retry_budget_seconds: float = 600.0,
        sleep: Callable[[float], None] = time.sleep,
        event_hooks: EventHooks | None = None,
        fence_seconds: float | None = None,
    ) -> None:
        """
        base_url: the Push API root ending in /push/v1 (a region's host, the emulator, a proxy).
        organization_id: the Coveo organization every call addresses.
        platform_url: the Platform API root ending in /rest, for reading sources and providers; None: unknown.
        api_key: the key sent as a Bearer token to the Push API, never to the storage host.
        connect_timeout: seconds to open a connection.
        read_timeout: seconds to wait for an answer.
        retry_budget_seconds: the span retries of one call may take, waits included.
        sleep: how to wait between attempts (tests may record the waits).
        event_hooks: who hears of each request and retry (metrics attach here).
        fence_seconds: the longest a Push API request may take to connect, and then to have what it sent
            acknowledged, before it is given up; None: no bound beyond `connect_timeout`. A lease vouches
            for a request only that long after its check (worker/push/lease.py): a request sent into a
            network partition must die, not reach the service once the partition heals, after the batch's
            successor (TCP would retransmit it for minutes, and the service stamps a batch call's orderingId
            when it receives it, so the late call would win over newer items).
        """
        organization_path = f"/organizations/{quote(organization_id, safe='')}"
        self.organization_url = base_url.rstrip("/") + organization_path
        self.platform_organization_url = None if platform_url is None else platform_url.rstrip("/") + organization_path
        self._auth = {"Authorization": f"Bearer {api_key}"}
        redaction.register(api_key)
        self.timeout = (connect_timeout, read_timeout)
        self.retry_budget_seconds = retry_budget_seconds
        self._sleep = sleep
        self.event_hooks = event_hooks or EventHooks()
        self._local = threading.local()
        self.session = EnvironmentOnce()
        self.session.headers["User-Agent"] = USER_AGENT
        adapter = HTTPAdapter(pool_connections=POOL_CONNECTIONS, pool_maxsize=POOL_MAXSIZE, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self._push_timeout = self.timeout
        if fence_seconds is not None:
            # Uploads go to the storage host through the default adapter: a late one only fills its container.
            self.session.mount(self.organization_url + "/", FencedAdapter(
                fence_seconds, pool_connections=POOL_CONNECTIONS, pool_maxsize=POOL_MAXSIZE, max_retries=0))
            self._push_timeout = (min(connect_timeout, fence_seconds), read_timeout)

    def close(self) -> None:
        self.session.close()

    @contextmanager
    def before_each_request(self, hook: RequestHook) -> Iterator[None]:
        """Run `hook(operation)` before every request this thread sends through this client while the
        block runs, each retry attempt included; what the hook raises stops the call before it is sent.

        Scoped to a thread and a block, not set on the client, because one client serves every task
        of a process (a push fences its calls with its lease; a status task has no lease).
        """
        hooks = self._hooks()
        hooks.append(hook)
        try:
            yield
        finally:
            hooks.remove(hook)

    @contextmanager
    def on_each_retry(self, hook: RetryHook) -> Iterator[None]:
        """Tell `hook` of every retry of a call this thread makes through this client while the
        block runs (after the client's own `event_hooks.retry`); scoped as `before_each_request` is."""
        hooks = self._scoped("retry_hooks")
        hooks.append(hook)
        try:
            yield
        finally:
            hooks.remove(hook)

    def _hooks(self) -> list[RequestHook]:
        return self._scoped("hooks")

    def _retry_hooks(self) -> list[RetryHook]:
        return [*self.event_hooks.retry, *self._scoped("retry_hooks")]

    def _scoped(self, name: str) -> list[Any]:
        hooks = getattr(self._local, name, None)
        if hooks is None:
            hooks = []
            setattr(self._local, name, hooks)
        return hooks

    # -- file containers -------------------------------------------------------------------

    def create_file_container(self, *, use_virtual_hosted_style_url: bool = False) -> FileContainer:
        """Create a file container (one upload, expires after 60 minutes)."""
        params = {"useVirtualHostedStyleUrl": "true"} if use_virtual_hosted_style_url else None
        body = self._call("POST", "/files", operation="create_file_container", params=params, expect_json=True)
        return FileContainer(file_id=body["fileId"], upload_uri=body["uploadUri"], required_headers=body["requiredHeaders"])

    def upload(self, container: FileContainer, path: str | os.PathLike[str]) -> None:
        """Upload the file at `path` to `container`, streamed, with only its `requiredHeaders`."""

        def attempt() -> None:
            with open(path, "rb") as body:
                response = self._send(
                    "PUT",
                    container.upload_uri,
                    operation="upload",
                    target=container.file_id,
                    data=body,
                    headers={**UPLOAD_DROPPED_HEADERS, **container.required_headers},
                )
            # Storage answers 403/404 once a presigned URL expired or its container was consumed.
            if response.status_code in (403, 404):
                raise ContainerExpiredError(
                    f"file container {container.file_id} can no longer be uploaded to",
                    status=response.status_code,
                    operation="upload",
                    target=container.file_id,
                )
            self._raise_for_status(response, operation="upload", target=container.file_id)

        call_with_retries(attempt, budget_seconds=self.retry_budget_seconds, sleep=self._sleep,
                          on_retry=self._retry_hooks())

    # -- items -----------------------------------------------------------------------------

    def add_document(
        self, source_id: str, document: Mapping[str, Any], *, ordering_id: int | None = None
    ) -> None:
        """Add or update one item (`document` holds `documentId`, content, metadata)."""
        documents.check_document(document)
        body = {key: value for key, value in document.items() if key != "documentId"}
        params = {"documentId": document["documentId"], **self._ordering(ordering_id)}
        if "compressionType" in document:
            params["compressionType"] = document["compressionType"]
        self._call(
            "PUT", f"/sources/{quote(source_id, safe='')}/documents", operation="add_document",
            target=source_id, params=params, json_body=body,
        )

    def delete_document(
        self, source_id: str, document_id: str, *, delete_children: bool = False, ordering_id: int | None = None
    ) -> None:
        """Delete one item, and its children when `delete_children` is true."""
        documents.check_document_id(document_id)
        params = {"documentId": document_id, "deleteChildren": _bool(delete_children), **self._ordering(ordering_id)}
        self._call(
            "DELETE", f"/sources/{quote(source_id, safe='')}/documents", operation="delete_document",
            target=source_id, params=params,
        )

    def push_documents_batch(self, source_id: str, file_id: str, *, ordering_id: int | None = None) -> None:
        """Apply the batch file (`addOrUpdate` / `delete`) uploaded to container `file_id`."""
        self._call(
            "PUT", f"/sources/{quote(source_id, safe='')}/documents/batch", operation="push_documents_batch",
            target=source_id, params={"fileId": file_id, **self._ordering(ordering_id)}, file_id=file_id,
        )

    def delete_documents_older_than(self, source_id: str, ordering_id: int, *, queue_delay: int | None = None) -> None:
        """Delete every item last touched by an operation with an `orderingId` below `ordering_id`.

        queue_delay: minutes the service waits before deleting (its default is 15).
        """
        self._call(
            "DELETE", f"/sources/{quote(source_id, safe='')}/documents/olderthan",
            operation="delete_documents_older_than", target=source_id,
            params=self._older_than(ordering_id, queue_delay),
        )

    def set_source_status(self, source_id: str, status_type: str) -> None:
        """Open (REBUILD, REFRESH, INCREMENTAL) or close (IDLE) an activity on the source."""
        documents.check_status_type(status_type)
        self._call(
            "POST", f"/sources/{quote(source_id, safe='')}/status", operation="set_source_status",
            target=source_id, params={"statusType": status_type},
        )

    # -- security identities ---------------------------------------------------------------

    def add_identity(self, provider_id: str, body: Mapping[str, Any], *, ordering_id: int | None = None) -> None:
        """Add or update one identity (`{"identity", "members", "wellKnowns"}`)."""
        documents.check_identity(body.get("identity", {}))
        self._call(
            "PUT", f"/providers/{quote(provider_id, safe='')}/permissions", operation="add_identity",
            target=provider_id, params=self._ordering(ordering_id), json_body=body,
        )

    def disable_identity(
        self, provider_id: str, identity: Mapping[str, Any], *, ordering_id: int | None = None
    ) -> None:
        """Disable one identity."""
        documents.check_identity(identity)
        self._call(
            "DELETE", f"/providers/{quote(provider_id, safe='')}/permissions", operation="disable_identity",
            target=provider_id, params=self._ordering(ordering_id), json_body={"identity": identity},
        )

    def add_alias(self, provider_id: str, body: Mapping[str, Any], *, ordering_id: int | None = None) -> None:
        """Add or update one alias (`{"identity", "mappings", "wellKnowns"}`)."""
        documents.check_identity(body.get("identity", {}))
        self._call(
            "PUT", f"/providers/{quote(provider_id, safe='')}/mappings", operation="add_alias",
            target=provider_id, params=self._ordering(ordering_id), json_body=body,
        )

    def push_identities_batch(self, provider_id: str, file_id: str, *, ordering_id: int | None = None) -> None:
        """Apply the identity batch file (`members` / `mappings` / `deleted`) in container `file_id`."""
        self._call(
            "PUT", f"/providers/{quote(provider_id, safe='')}/permissions/batch", operation="push_identities_batch",
            target=provider_id, params={"fileId": file_id, **self._ordering(ordering_id)}, file_id=file_id,
        )

    def disable_identities_older_than(
        self, provider_id: str, ordering_id: int, *, queue_delay: int | None = None
    ) -> None:
        """Disable every identity last touched before `ordering_id` (after `queue_delay` minutes)."""
        self._call(
            "DELETE", f"/providers/{quote(provider_id, safe='')}/permissions/olderthan",
            operation="disable_identities_older_than", target=provider_id,
            params=self._older_than(ordering_id, queue_delay),
        )

    # -- Platform API reads -----------------------------------------------------------------

    def get_source(self, source_id: str) -> dict[str, Any]:
        """The Platform API's description of a source (needs View on Sources); NotFoundError when none."""
        return self._platform_read(f"/sources/{quote(source_id, safe='')}", operation="get_source", target=source_id)

    def get_security_provider(self, provider_id: str) -> dict[str, Any]:
        """The Platform API's description of a security identity provider (needs View on them)."""
        path = f"/securityproviders/{quote(provider_id, safe='')}"
        return self._platform_read(path, operation="get_security_provider", target=provider_id)

    def _platform_read(self, path: str, *, operation: str, target: str) -> dict[str, Any]:
        if self.platform_organization_url is None:
            raise InvalidInputError("no Platform API URL is configured", operation=operation, target=target)
        body = self._call("GET", path, operation=operation, target=target, expect_json=True,
                          base_url=self.platform_organization_url)
        if not isinstance(body, dict):
            raise InvalidInputError("the Platform API answered with JSON that is not an object",
                                    operation=operation, target=target)
        return body

    # -- plumbing --------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        target: str = "",
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        file_id: str | None = None,
        expect_json: bool = False,
        base_url: str | None = None,
    ) -> Any:
        """One call with retries; returns the decoded JSON answer when `expect_json`.
        base_url: the organization's URL the path follows; None: the Push API's."""
        # UTF-8 as it is, as the batch files are (`batchfile.encode`): \u-escaped, text of non-ASCII characters
        # would be up to twice the size a single-item call was measured at against the service's request limit.
        data = None if json_body is None else json.dumps(json_body, separators=(",", ":"), ensure_ascii=False).encode()

        def attempt() -> Any:
            response = self._send(
                method, (base_url or self.organization_url) + path, operation=operation, target=target,
                params=params, data=data, headers={**JSON_HEADERS, **self._auth},
            )
            self._raise_for_status(response, operation=operation, target=target, file_id=file_id)
            if not expect_json:
                return None
            try:
                return response.json()
            except ValueError:
                raise InvalidInputError(
                    f"the service answered {response.status_code} with a body that is not JSON",
                    operation=operation, target=target,
                ) from None

        return call_with_retries(attempt, budget_seconds=self.retry_budget_seconds, sleep=self._sleep,
                                 on_retry=self._retry_hooks())

    def _send(self, method: str, url: str, *, operation: str, target: str, **kwargs: Any) -> requests.Response:
        for hook in self._hooks():
            hook(operation)
        try:
            timeout = self._push_timeout if url.startswith(self.organization_url + "/") else self.timeout
            response = self.session.request(method, url, timeout=timeout, **kwargs)
        except requests.Timeout as exc:
            error = TimeoutError(redaction.redact(f"no answer in time: {exc}"), operation=operation, target=target)
        except requests.ConnectionError as exc:
            error = ConnectError(redaction.redact(f"connection failed: {exc}"), operation=operation, target=target)
        except requests.RequestException as exc:
            error = PushApiError(redaction.redact(f"request failed: {exc}"), operation=operation, target=target)
        else:
            for answered in self.event_hooks.request:
                answered(operation, response.status_code, None)
            return response
        for answered in self.event_hooks.request:
            answered(operation, None, error)
        raise error

    def _raise_for_status(
        self, response: requests.Response, *, operation: str, target: str, file_id: str | None = None
    ) -> None:
        if response.status_code < 400:
            return
        error = error_from_response(response, operation=operation, target=target, file_id=file_id)
        error.message = redaction.redact(error.message)
        raise error

    @staticmethod
    def _ordering(ordering_id: int | None) -> dict[str, int]:
        if ordering_id is None:
            return {}
        if not isinstance(ordering_id, int) or isinstance(ordering_id, bool) or ordering_id < 0:
            raise InvalidInputError(f"orderingId {ordering_id!r} must be a non-negative integer (epoch milliseconds)")
        if ordering_id > time.time() * 1000 + ORDERING_ID_SKEW_MS:
            raise InvalidInputError(
                f"orderingId {ordering_id} is in the future: the service would refuse new items until then"
            )
        return {"orderingId": ordering_id}

    def _older_than(self, ordering_id: int, queue_delay: int | None) -> dict[str, int]:
        params = self._ordering(ordering_id)
        if queue_delay is not None:
            if not isinstance(queue_delay, int) or queue_delay < 0:
                raise InvalidInputError(f"queueDelay {queue_delay!r} must be a non-negative number of minutes")
            params["queueDelay"] = queue_delay
        return params


def _bool(value: bool) -> str:
    return "true" if value else "false"
