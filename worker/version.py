"""The installed version of pushsync, read once from the package metadata."""

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("pushsync")
except PackageNotFoundError:  # running from a source tree that was never installed
    VERSION = "0+unknown"

USER_AGENT = f"pushsync/{VERSION}"
