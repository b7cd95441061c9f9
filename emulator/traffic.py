"""The base of the middlewares that act on Push API and upload traffic, never on the admin API."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

from emulator.paths import is_admin

if TYPE_CHECKING:
    from emulator.state import Emulator


class TrafficMiddleware:
    """Passes the admin API and non-HTTP scopes through; `handle` sees the rest."""

    def __init__(self, app: ASGIApp, current: Callable[[], Emulator]) -> None:
        """`current`: returns the emulator generation in force (reset replaces it)."""
        self.app = app
        self.current = current

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_admin(scope["path"]):
            await self.app(scope, receive, send)
        else:
            await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Process one Push API or upload request."""
        raise NotImplementedError
