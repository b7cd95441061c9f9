"""File containers: a presigned-looking upload URL each, one upload, 60 minutes of life, one use.

The upload route stands in for S3, so its refusals are S3's: 403 for an expired, unknown,
already uploaded or consumed container (JSON bodies here, where S3 would send XML).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import time
import uuid
from collections import deque
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlencode

from emulator.clock import Clock
from emulator.errors import EmulatorError
from emulator.limits import CONTAINER_LIFETIME_SECONDS
from producers.private_files import private_directory, replacing

UPLOAD_ROUTE_PREFIX = "/_blob"
"""Where uploads go: neither under the Push API's /push/ nor the admin API's /_emulator/."""
REQUIRED_HEADERS = {"x-amz-server-side-encryption": "AES256", "Content-Type": "application/octet-stream"}
"""The headers POST /files tells the client to send with its upload, and that the upload checks."""
SIGNED_HEADERS = "content-type;host;x-amz-server-side-encryption"
FILE_NOT_FOUND = "FILE_NOT_FOUND"


class ContainerState(str, enum.Enum):
    """Where a container is in its one-way life."""

    EMPTY = "EMPTY"
    UPLOADING = "UPLOADING"
    UPLOADED = "UPLOADED"
    CONSUMED = "CONSUMED"


@dataclass(slots=True)
class Container:
    """One file container and the blob uploaded into it."""

    file_id: str
    created_at: float
    """Epoch seconds on the emulator's clock."""
    path: Path
    """Where the uploaded bytes are (or will be) on disk."""
    state: ContainerState = ContainerState.EMPTY
    size: int = 0

    def open_blob(self) -> ContextManager[IO[bytes]]:
        """A new private file (0600) that becomes the blob once written whole (see producers.private_files)."""
        return replacing(self.path)

    @property
    def expires_at(self) -> float:
        """Epoch seconds after which the container can be neither uploaded to nor used."""
        return self.created_at + CONTAINER_LIFETIME_SECONDS

    def to_json(self) -> dict[str, object]:
        """The container as the admin API shows it."""
        return {
            "fileId": self.file_id,
            "state": self.state.value,
            "size": self.size,
            "createdAt": self.created_at,
            "expiresAt": self.expires_at,
        }


class ContainerStore:
    """Every container of one emulator generation; blobs live under `directory`."""

    def __init__(self, directory: Path, clock: Clock) -> None:
        self._directory = directory
        self._clock = clock
        self._secret = secrets.token_bytes(32)
        self._containers: dict[str, Container] = {}
        self._unswept: deque[Container] = deque()
        """Containers whose blob may still be on disk, oldest first: they expire in about that order, so a
        sweep stops at the first that has not."""
        self._lapsed: list[Container] = []
        """Expired containers whose blob is still on disk: those still being uploaded to when a sweep took them."""

    def create(self) -> Container:
        """A new, empty container (and the blobs of expired ones are removed)."""
        self._sweep()
        if not self._containers:
            private_directory(self._directory)
        file_id = str(uuid.uuid4())
        container = Container(file_id, self._clock.now(), self._directory / f"{file_id}.blob")
        self._containers[file_id] = container
        self._unswept.append(container)
        return container

    def upload_query(self, container: Container) -> str:
        """The presigned-looking query string of the container's uploadUri."""
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(container.created_at))
        expires = str(CONTAINER_LIFETIME_SECONDS)
        return urlencode({
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Date": amz_date,
            "X-Amz-Expires": expires,
            "X-Amz-SignedHeaders": SIGNED_HEADERS,
            "X-Amz-Signature": self._sign(container.file_id, amz_date, expires),
        })

    def for_upload(self, file_id: str, query: dict[str, str]) -> Container:
        """The container an upload may fill, marked UPLOADING; a 403 when it may not."""
        signature = query.get("X-Amz-Signature", "")
        expected = self._sign(file_id, query.get("X-Amz-Date", ""), query.get("X-Amz-Expires", ""))
        if not hmac.compare_digest(signature, expected):
            raise EmulatorError(403, "SIGNATURE_DOES_NOT_MATCH", "the upload URL's signature does not match")
        container = self._containers.get(file_id)
        if container is None or self._expired(container):
            raise EmulatorError(403, "REQUEST_EXPIRED", "the upload URL expired or names no container")
        if container.state is not ContainerState.EMPTY:
            state = container.state.value.lower()
            raise EmulatorError(403, "CONTAINER_CONSUMED", f"the container is {state}: it takes one upload")
        container.state = ContainerState.UPLOADING
        return container

    def upload_finished(self, container: Container, size: int) -> None:
        """The upload's bytes are all on disk."""
        container.state = ContainerState.UPLOADED
        container.size = size

    def upload_failed(self, container: Container) -> None:
        """The upload broke off: the container is empty again."""
        container.path.unlink(missing_ok=True)
        container.state = ContainerState.EMPTY

    def check_uploaded(self, file_id: str) -> Container:
        """The container, when it holds an upload that a batch or an item may still use; else a 404.

        The real status for an unknown, expired or consumed fileId is UNCONFIRMED; 404 with
        FILE_NOT_FOUND is the project's convention, and a permanent error either way."""
        container = self._containers.get(file_id)
        if container is None or self._expired(container) or container.state is not ContainerState.UPLOADED:
            state = "unknown" if container is None else "expired" if self._expired(container) else container.state.value
            raise EmulatorError(404, FILE_NOT_FOUND, f"file container {file_id!r} is {state.lower()}: it cannot be used")
        return container

    def take_all(self, file_ids: list[str]) -> dict[str, Path]:
        """Consume every named container, or none of them (404 naming the first unusable one);
        their blobs by fileId. A container named twice is consumed by its first use."""
        seen: set[str] = set()
        for file_id in file_ids:
            if file_id in seen:
                raise EmulatorError(404, FILE_NOT_FOUND, f"file container {file_id!r} is used twice: it takes one use")
            seen.add(file_id)
            self.check_uploaded(file_id)
        for file_id in file_ids:
            self._containers[file_id].state = ContainerState.CONSUMED
        return {file_id: self._containers[file_id].path for file_id in file_ids}

    def describe(self) -> list[dict[str, object]]:
        """Every container, for the admin API."""
        return [container.to_json() for container in self._containers.values()]

    def _sign(self, file_id: str, amz_date: str, expires: str) -> str:
        message = f"{file_id}\n{amz_date}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def _expired(self, container: Container) -> bool:
        return self._clock.now() >= container.expires_at

    def _sweep(self) -> None:
        while self._unswept and self._expired(self._unswept[0]):
            self._lapsed.append(self._unswept.popleft())
        # One still being uploaded to keeps its blob until a sweep after its upload ends.
        uploading = [container for container in self._lapsed if container.state is ContainerState.UPLOADING]
        for container in self._lapsed:
            if container.state is not ContainerState.UPLOADING:
                container.path.unlink(missing_ok=True)
        self._lapsed = uploading
