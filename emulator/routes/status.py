"""Source status: POST .../status?statusType= opens or closes an activity."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator.activities import STATUS_TYPES
from emulator.paths import ORGANIZATION_PREFIX
from emulator.routes.calls import choice, push_call, success


async def set_status(request: Request) -> Response:
    """Record the transition at once; 201 with `{}`."""
    call = await push_call(request, consumes_json=False)
    source = call.organization.source(request.path_params["sourceId"])
    status_type = choice(request, "statusType", STATUS_TYPES, required=True)
    source.activity.set(str(status_type), call.emulator.clock.now())
    return success(201)


ROUTES = [Route(ORGANIZATION_PREFIX + "/sources/{sourceId}/status", set_status, methods=["POST"])]
