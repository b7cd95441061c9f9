"""The emulator's ASGI application: routes, the two middlewares, and one error handler per kind."""

from __future__ import annotations

import gc
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
from emulator.routes import admin, documents, files, identities, platform, status
from emulator.state import EmulatorHolder

GC_THRESHOLDS = (50_000, 50, 100)
"""The cyclic collector's thresholds. The index is a large heap of small acyclic objects: with
Python's defaults (700, 10, 10) a 100,000-item batch spends a third of its time rescanning it."""


def create_app(config: EmulatorConfig) -> Starlette:
    """An emulator serving `config`; its state lives from start-up to shutdown (the lifespan)."""
    holder = EmulatorHolder(config)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gc.set_threshold(*GC_THRESHOLDS)
        holder.start()
        yield
        await holder.close()

    app = Starlette(
        routes=[*documents.ROUTES, *identities.ROUTES, *files.ROUTES, *status.ROUTES, *platform.ROUTES, *admin.ROUTES],
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
