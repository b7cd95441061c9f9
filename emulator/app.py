"""The emulator's ASGI application: routes, the two middlewares, and one error handler per kind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect

from emulator.config import EmulatorConfig
from emulator.errors import (
    EmulatorError,
    handle_client_disconnect,
    handle_emulator_error,
    handle_routing_error,
    handle_unexpected,
)
from emulator.faults import FaultMiddleware
from emulator.requestlog import RequestLogMiddleware
from emulator.routes import admin, documents, files, identities, status
from emulator.state import EmulatorHolder


def create_app(config: EmulatorConfig) -> Starlette:
    """An emulator serving `config`; its state lives from start-up to shutdown (the lifespan)."""
    holder = EmulatorHolder(config)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        holder.start()
        yield
        await holder.close()

    app = Starlette(
        routes=[*documents.ROUTES, *identities.ROUTES, *files.ROUTES, *status.ROUTES, *admin.ROUTES],
        # The request log wraps fault injection, so that faulted requests are logged too.
        middleware=[
            Middleware(RequestLogMiddleware, current=lambda: holder.current),
            Middleware(FaultMiddleware, current=lambda: holder.current),
        ],
        exception_handlers={
            EmulatorError: handle_emulator_error,
            HTTPException: handle_routing_error,
            ClientDisconnect: handle_client_disconnect,
            Exception: handle_unexpected,
        },
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # the service answers a trailing slash 404, not a redirect
    app.state.holder = holder
    return app
