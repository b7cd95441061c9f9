"""The administration and inspection API under /_emulator/: JSON in and out, no key needed.

It does what the Platform API and the organization's logs do for the real service (create
sources and providers, show items, activities and rejections), plus what only a stand-in can:
reset, limits, fault rules, the request log, the clock, and waiting until everything accepted
was applied. docs/emulator.md describes every route.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator.bodies import parse_json, read_limited
from emulator.errors import EmulatorError
from emulator.identities import Provider
from emulator.index import Source
from emulator.jsonresponse import SafeJSONResponse
from emulator.limits import MIB
from emulator.paths import ADMIN_PREFIX
from emulator.routes.calls import current
from emulator.state import Emulator, Organization

ADMIN_BODY_LIMIT_BYTES = 1 * MIB
"""Largest admin request body: a few settings, a rule or a list of ids. Past it, 413 (the same
answer as an oversized Push API body), and a body declared longer is not read at all."""
DEFAULT_WAIT_SECONDS = 30.0
"""How long `wait=1` and /idle wait for pending operations by default."""
ORGANIZATION = ADMIN_PREFIX + "/organizations/{organizationId}"
SOURCE = ORGANIZATION + "/sources/{sourceId}"
PROVIDER = ORGANIZATION + "/providers/{providerId}"


def _bad(message: str) -> EmulatorError:
    return EmulatorError(400, "INVALID_REQUEST", message)


async def _json_body(request: Request) -> dict[str, object]:
    raw = await read_limited(request, ADMIN_BODY_LIMIT_BYTES)
    body = parse_json(raw) if raw.strip() else {}
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object")
    return body


def _flag(body: dict[str, object], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise _bad(f"{name} must be a boolean")
    return value


def _number_param(request: Request, name: str, default: float) -> float:
    value = request.query_params.get(name)
    try:
        return default if value is None else float(value)
    except ValueError:
        raise _bad(f"{name} must be a number") from None


async def _settled(request: Request) -> Emulator:
    """The emulator, once pending operations are applied when the query says `wait=1`."""
    emulator = current(request)
    if request.query_params.get("wait") in ("1", "true"):
        await emulator.scheduler.wait_idle(_number_param(request, "timeout", DEFAULT_WAIT_SECONDS))
    return emulator


def _organization(emulator: Emulator, request: Request) -> Organization:
    return emulator.organization(request.path_params["organizationId"])


async def _source(request: Request) -> Source:
    return _organization(await _settled(request), request).source(request.path_params["sourceId"])


async def _provider(request: Request) -> Provider:
    return _organization(await _settled(request), request).provider(request.path_params["providerId"])


async def health(request: Request) -> Response:
    """GET /_emulator/health: 200 once the emulator serves."""
    return SafeJSONResponse({"status": "ok", "organization": current(request).config.organization})


async def reset(request: Request) -> Response:
    """POST /_emulator/reset: back to the start-up state (index, containers, logs, faults, clock, limits)."""
    await request.app.state.holder.reset()
    return SafeJSONResponse({"reset": True})


async def get_config(request: Request) -> Response:
    """GET /_emulator/config: the limits in force."""
    return SafeJSONResponse(current(request).limits.to_json())


async def put_config(request: Request) -> Response:
    """PUT /_emulator/config: change some limits (JSON names as GET shows them)."""
    emulator = current(request)
    emulator.limits = emulator.limits.updated(await _json_body(request))
    return SafeJSONResponse(emulator.limits.to_json())


async def put_organization(request: Request) -> Response:
    """PUT /_emulator/organizations/{org}: create it; `{"paused": true}` pauses it."""
    paused = _flag(await _json_body(request), "paused")
    organization = current(request).add_organization(request.path_params["organizationId"])
    organization.paused = paused
    return SafeJSONResponse({"organizationId": organization.id, "paused": organization.paused})


async def put_source(request: Request) -> Response:
    """PUT .../sources/{sourceId}: create a Push source, optionally `{"securityProviders": [id, ...]}`."""
    body = await _json_body(request)
    providers = body.get("securityProviders", [])
    if not isinstance(providers, list) or not all(isinstance(p, str) for p in providers):
        raise _bad("securityProviders must be an array of provider ids")
    organization = current(request).add_organization(request.path_params["organizationId"])
    source_id = request.path_params["sourceId"]
    source = organization.sources.get(source_id)
    if source is None:
        source = organization.sources[source_id] = Source(source_id, tuple(providers))
    source.security_providers = tuple(providers)
    return SafeJSONResponse({"sourceId": source.id, "securityProviders": list(source.security_providers)})


async def put_provider(request: Request) -> Response:
    """PUT .../providers/{providerId}: create a provider; `{"strict": true}` rejects unknown identities."""
    strict = _flag(await _json_body(request), "strict")
    organization = current(request).add_organization(request.path_params["organizationId"])
    provider_id = request.path_params["providerId"]
    provider = organization.providers.setdefault(provider_id, Provider(provider_id, strict))
    provider.strict = strict
    return SafeJSONResponse({"providerId": provider.id, "strict": provider.strict})


async def items(request: Request) -> Response:
    """GET .../sources/{sourceId}/items[?documentId=][&wait=1]: indexed items, by documentId."""
    source = await _source(request)
    wanted = request.query_params.get("documentId")
    if wanted is None:
        chosen = sorted(source.items.values(), key=lambda item: item.document_id)
    else:
        chosen = [source.items[wanted]] if wanted in source.items else []
    listed = [item.to_json() for item in chosen]
    return SafeJSONResponse({"count": len(source.items), "items": listed})


async def item_content(request: Request) -> Response:
    """GET .../sources/{sourceId}/items/content?documentId=: one item's decoded content, raw."""
    source = await _source(request)
    item = source.items.get(request.query_params.get("documentId", ""))
    if item is None:
        raise EmulatorError(404, "ITEM_NOT_FOUND", "no such item in the source")
    return Response(item.content.read(), media_type="application/octet-stream")


async def activities(request: Request) -> Response:
    """GET .../sources/{sourceId}/activities: status, activities and every transition."""
    return SafeJSONResponse((await _source(request)).activity.to_json())


async def source_rejections(request: Request) -> Response:
    """GET .../sources/{sourceId}/rejections[?wait=1]: items refused after their 202."""
    return SafeJSONResponse({"rejections": (await _source(request)).rejections})


async def identities(request: Request) -> Response:
    """GET .../providers/{providerId}/identities[?wait=1]: the provider's identities."""
    provider = await _provider(request)
    listed = sorted(provider.identities.values(), key=lambda identity: (identity.name, identity.type))
    return SafeJSONResponse({"identities": [identity.to_json() for identity in listed]})


async def provider_rejections(request: Request) -> Response:
    """GET .../providers/{providerId}/rejections[?wait=1]: identity batch entries refused after their 202."""
    return SafeJSONResponse({"rejections": (await _provider(request)).rejections})


async def containers(request: Request) -> Response:
    """GET /_emulator/containers: every file container and its state."""
    return SafeJSONResponse({"containers": current(request).containers.describe()})


async def requests_log(request: Request) -> Response:
    """GET /_emulator/requests[?since=id]: the request log, oldest first."""
    since = int(_number_param(request, "since", 0))
    return SafeJSONResponse({"requests": current(request).requests.since(since)})


async def get_faults(request: Request) -> Response:
    """GET /_emulator/faults: the rules in force."""
    return SafeJSONResponse({"faults": current(request).faults.describe()})


async def add_fault(request: Request) -> Response:
    """POST /_emulator/faults: add a rule; 201 with the rule and its id."""
    rule = current(request).faults.add(await _json_body(request))
    return SafeJSONResponse(rule.to_json(), status_code=201)


async def clear_faults(request: Request) -> Response:
    """DELETE /_emulator/faults: remove every rule."""
    current(request).faults.clear()
    return SafeJSONResponse({"faults": []})


async def remove_fault(request: Request) -> Response:
    """DELETE /_emulator/faults/{id}: remove one rule."""
    if not current(request).faults.remove(request.path_params["faultId"]):
        raise EmulatorError(404, "FAULT_NOT_FOUND", "no such fault rule")
    return SafeJSONResponse({"removed": request.path_params["faultId"]})


async def get_clock(request: Request) -> Response:
    """GET /_emulator/clock: the emulator's time and its offset from the wall clock."""
    clock = current(request).clock
    return SafeJSONResponse({"now": clock.now(), "nowMs": clock.now_ms(), "offset": clock.offset})


async def advance_clock(request: Request) -> Response:
    """POST /_emulator/clock {"advance": seconds}: move the clock forward."""
    seconds = (await _json_body(request)).get("advance")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise _bad('the body must be {"advance": <non-negative seconds>}')
    current(request).advance_clock(seconds)
    return await get_clock(request)


async def idle(request: Request) -> Response:
    """GET /_emulator/idle[?timeout=s]: wait until every accepted operation that is due was applied."""
    scheduler = current(request).scheduler
    settled = await scheduler.wait_idle(_number_param(request, "timeout", DEFAULT_WAIT_SECONDS))
    return SafeJSONResponse({"idle": settled, "pending": scheduler.pending()})


ROUTES = [
    Route(ADMIN_PREFIX + "/health", health, methods=["GET"]),
    Route(ADMIN_PREFIX + "/reset", reset, methods=["POST"]),
    Route(ADMIN_PREFIX + "/config", get_config, methods=["GET"]),
    Route(ADMIN_PREFIX + "/config", put_config, methods=["PUT"]),
    Route(ORGANIZATION, put_organization, methods=["PUT"]),
    Route(SOURCE, put_source, methods=["PUT"]),
    Route(SOURCE + "/items", items, methods=["GET"]),
    Route(SOURCE + "/items/content", item_content, methods=["GET"]),
    Route(SOURCE + "/activities", activities, methods=["GET"]),
    Route(SOURCE + "/rejections", source_rejections, methods=["GET"]),
    Route(PROVIDER, put_provider, methods=["PUT"]),
    Route(PROVIDER + "/identities", identities, methods=["GET"]),
    Route(PROVIDER + "/rejections", provider_rejections, methods=["GET"]),
    Route(ADMIN_PREFIX + "/containers", containers, methods=["GET"]),
    Route(ADMIN_PREFIX + "/requests", requests_log, methods=["GET"]),
    Route(ADMIN_PREFIX + "/faults", get_faults, methods=["GET"]),
    Route(ADMIN_PREFIX + "/faults", add_fault, methods=["POST"]),
    Route(ADMIN_PREFIX + "/faults", clear_faults, methods=["DELETE"]),
    Route(ADMIN_PREFIX + "/faults/{faultId:int}", remove_fault, methods=["DELETE"]),
    Route(ADMIN_PREFIX + "/clock", get_clock, methods=["GET"]),
    Route(ADMIN_PREFIX + "/clock", advance_clock, methods=["POST"]),
    Route(ADMIN_PREFIX + "/idle", idle, methods=["GET"]),
]
