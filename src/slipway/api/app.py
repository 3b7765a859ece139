"""The ASGI app factory: control API, inference routes, health, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from slipway import __version__
from slipway.access.authz import Permission
from slipway.api.auth import require
from slipway.api.errors import install_error_handlers
from slipway.api.middleware import RequestContext
from slipway.api.routes import (
    artifacts,
    endpoints,
    health,
    models,
    predict,
    predictions,
    v2,
    versions,
)
from slipway.runtime import Runtime
from slipway.settings import Settings

log = logging.getLogger("slipway.server")


async def _sync_forever(runtime: Runtime) -> None:
    """Follow deployments made by other workers (and retry broken loads on redeploy)."""
    while True:
        await asyncio.sleep(runtime.settings.sync_interval_s)
        try:
            await run_in_threadpool(runtime.endpoints.sync)
        except Exception:
            log.exception("endpoint sync failed; will retry")


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    config = settings or (runtime.settings if runtime else Settings())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if runtime is not None:
            rt = runtime
        else:
            rt = await run_in_threadpool(Runtime.from_settings, config)
        app.state.runtime = rt
        await rt.writer.start()
        await run_in_threadpool(rt.endpoints.sync)
        syncer = asyncio.create_task(_sync_forever(rt))
        try:
            yield
        finally:
            rt.draining = True
            syncer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await syncer
            await rt.writer.stop()
            rt.close()

    app = FastAPI(
        title="slipway",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    for module in (health, models, artifacts, versions, endpoints, predictions, predict, v2):
        app.include_router(module.router)

    @app.get("/metrics", tags=["health"])
    async def metrics(_: object = Depends(require(Permission.METRICS_READ))) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(RequestContext, max_body_bytes=config.max_request_mb * 1024 * 1024)
    return app
