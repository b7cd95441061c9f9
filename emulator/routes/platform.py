"""The two Platform API reads a connector's configuration check makes: a source, a provider.

Coveo creates sources and security identity providers with its Platform API, not the Push API;
`pushsync check` reads them there to tell a missing one from a key that may not look. The
emulator answers with the fields a check relies on (the real models carry many more), to the
same Bearer key as its Push API, and counts these calls against no Push API allowance.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator.jsonresponse import SafeJSONResponse
from emulator.paths import PLATFORM_ORGANIZATION_PREFIX
from emulator.routes.calls import authenticated, current

PUSH_SOURCE_TYPE = "PUSH"
PROVIDER_TYPE = "EXPANDED"
"""What a provider created for a Push source is, in the Platform API's words."""


async def get_source(request: Request) -> Response:
    """200 with the source's id, type and visibility; 404 when the organization has no such source."""
    organization = authenticated(request, current(request))
    source = organization.source(request.path_params["sourceId"])
    return SafeJSONResponse({
        "id": source.id,
        "name": source.id,
        "sourceType": PUSH_SOURCE_TYPE,
        "pushEnabled": True,
        "sourceVisibility": "SECURED" if source.security_providers else "SHARED",
    })


async def get_provider(request: Request) -> Response:
    """200 with the provider's id, type and the sources that name it; 404 when there is none."""
    organization = authenticated(request, current(request))
    provider = organization.provider(request.path_params["providerId"])
    sources = [source.id for source in organization.sources.values() if provider.id in source.security_providers]
    return SafeJSONResponse({
        "id": provider.id,
        "name": provider.id,
        "type": PROVIDER_TYPE,
        "referencedBy": [{"id": source_id, "type": "SOURCE"} for source_id in sources],
    })


ROUTES = [
    Route(PLATFORM_ORGANIZATION_PREFIX + "/sources/{sourceId}", get_source, methods=["GET"]),
    Route(PLATFORM_ORGANIZATION_PREFIX + "/securityproviders/{providerId}", get_provider, methods=["GET"]),
]
