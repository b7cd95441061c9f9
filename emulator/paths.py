"""The URL spaces the emulator serves, kept apart so that no Push API path can start like another."""

PUSH_PREFIX = "/push/v1"
"""The Push API, as in https://api.cloud.coveo.com/push/v1."""
ORGANIZATION_PREFIX = PUSH_PREFIX + "/organizations/{organizationId}"
PLATFORM_PREFIX = "/rest"
"""The Platform API's reads of sources and providers, as in https://platform.cloud.coveo.com/rest."""
PLATFORM_ORGANIZATION_PREFIX = PLATFORM_PREFIX + "/organizations/{organizationId}"
ADMIN_PREFIX = "/_emulator"
"""Administration and inspection; not part of the service, never faulted or logged."""


def is_admin(path: str) -> bool:
    """Whether `path` belongs to the admin API."""
    return path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")
