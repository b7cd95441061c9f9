"""Where an emulator started without options listens, and the organization and key it takes.

A leaf that the worker imports too: its out-of-the-box settings (`worker.settings`) point here, so
an unconfigured worker talks to an unconfigured emulator. The emulator itself imports nothing of
the worker, as it stands in for the service whatever the client does.
"""

from emulator.paths import PLATFORM_PREFIX, PUSH_PREFIX

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8089
DEFAULT_ORGANIZATION = "pushsync-local"
DEFAULT_API_KEY = "local-emulator-key"
DEFAULT_PUSH_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}{PUSH_PREFIX}"
"""The Push API of an emulator started without options."""
DEFAULT_PLATFORM_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}{PLATFORM_PREFIX}"
"""The Platform API (its reads of sources and providers) of an emulator started without options."""
