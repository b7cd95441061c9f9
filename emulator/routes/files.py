"""File containers: POST .../files creates one; PUT /_blob/{fileId} is its S3-like upload URL.

The upload streams the body to disk (a 256 MB upload never sits in memory) and answers as S3
would: 200 with an ETag; 403 when the signature, the container or the required headers are
wrong; 411 without a Content-Length (S3 refuses chunked uploads to a presigned URL); 413 past
the container limit. A request that also carries an Authorization header is refused with 400:
the API key must never travel to storage.
"""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator.bodies import after_draining, declared_length
from emulator.containers import REQUIRED_HEADERS, UPLOAD_ROUTE_PREFIX, Container
from emulator.errors import EmulatorError
from emulator.jsonresponse import SafeJSONResponse
from emulator.paths import ORGANIZATION_PREFIX
from emulator.routes.calls import boolean, current, push_call


async def create_container(request: Request) -> Response:
    """201 {uploadUri, fileId, requiredHeaders}; the uploadUri points at this emulator."""
    call = await push_call(request, consumes_json=False)
    boolean(request, "useVirtualHostedStyleUrl", False)  # checked; the emulator has one URL style
    container = call.emulator.containers.create()
    base = str(request.base_url).rstrip("/")
    upload_uri = f"{base}{UPLOAD_ROUTE_PREFIX}/{container.file_id}?{call.emulator.containers.upload_query(container)}"
    body = {"uploadUri": upload_uri, "fileId": container.file_id, "requiredHeaders": REQUIRED_HEADERS}
    return SafeJSONResponse(body, status_code=201)


async def upload(request: Request) -> Response:
    """PUT {uploadUri}: fill the container with the request body."""
    emulator = current(request)
    if "authorization" in request.headers:
        message = "the upload carries an Authorization header: presigned URLs take no other credentials"
        raise await after_draining(request, EmulatorError(400, "INVALID_ARGUMENT", message))
    container = emulator.containers.for_upload(request.path_params["fileId"], dict(request.query_params))
    try:
        size, digest = await _receive(request, container, emulator.limits.container_limit_bytes)
    except BaseException:
        emulator.containers.upload_failed(container)
        raise
    emulator.containers.upload_finished(container, size)
    return Response(status_code=200, headers={"ETag": f'"{digest}"'})


async def _receive(request: Request, container: Container, limit: int) -> tuple[int, str]:
    """Check the headers, then stream the body to the container's file; (size, MD5 hex)."""
    for name, value in REQUIRED_HEADERS.items():
        if request.headers.get(name) != value:
            # Both headers are signed into the URL: S3 answers a missing or different one this way.
            message = f"the upload must send the header {name}: {value}, as requiredHeaders says"
            raise await after_draining(request, EmulatorError(403, "SIGNATURE_DOES_NOT_MATCH", message))
    declared = declared_length(request.headers)
    if declared is None:
        message = "the upload needs a Content-Length header: chunked uploads are refused"
        raise await after_draining(request, EmulatorError(411, "MISSING_CONTENT_LENGTH", message))
    if declared > limit:
        error = EmulatorError(413, "ENTITY_TOO_LARGE", f"a container holds at most {limit} bytes")
        raise await after_draining(request, error)
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    with container.open_blob() as blob:
        async for chunk in request.stream():
            blob.write(chunk)
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


ROUTES = [
    Route(ORGANIZATION_PREFIX + "/files", create_container, methods=["POST"]),
    Route(UPLOAD_ROUTE_PREFIX + "/{fileId}", upload, methods=["PUT"]),
]
