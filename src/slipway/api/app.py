"""The ASGI app factory: control API, inference routes, health, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from fastapi import Depends, FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp

from slipway import __version__
from slipway.access.authz import Permission
from slipway.api.auth import require
from slipway.api.errors import install_error_handlers
from slipway.api.middleware import RequestContext
from slipway.api.routes import (
    PROTECTED,
    access,
    approvals,
    artifacts,
    audit,
    endpoints,
    governance,
    health,
    models,
    monitoring,
    policies,
    predict,
    predictions,
    quarantine,
    retention,
    rollout,
    v2,
    versions,
)
from slipway.audit.checkpoints import Checkpointer
from slipway.runtime import Runtime
from slipway.settings import Settings

log = logging.getLogger("slipway.server")


async def _every(seconds: float, job: Callable[[], object], what: str) -> None:
    """Run ``job`` on a thread every ``seconds``; log failures and keep going.

    The same failure repeating (a store that is down, a tampered audit chain) is logged
    once a minute, not every round."""
    last_error, last_logged = "", 0.0
    while True:
        await asyncio.sleep(seconds)
        try:
            await run_in_threadpool(job)
            last_error = ""
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            now = asyncio.get_running_loop().time()
            if error != last_error or now - last_logged >= 60:
                log.exception("%s failed; will retry", what)
                last_error, last_logged = error, now


def _housekeeping(rt: Runtime) -> list[asyncio.Task[None]]:
    checkpointer = Checkpointer(
        rt.engine,
        rt.settings.resolved_audit_dir,
        every_events=rt.settings.audit_checkpoint_events,
        every_s=rt.settings.audit_checkpoint_s,
    )
    jobs: list[tuple[float, Callable[[], object], str]] = [
        # Follow deployments made by other workers (and restarts).
        (rt.settings.sync_interval_s, rt.endpoints.sync, "endpoint sync"),
        (1.0, checkpointer.maybe_write, "audit checkpoint"),
        (10.0, rt.tokens.flush_last_used, "token last-used flush"),
        (rt.settings.monitor_flush_s, lambda: rt.windows.flush(rt.engine), "window flush"),
        (600.0, rt.window_store.rollup, "window rollup"),
        (2.0, rt.alerts.deliver_due, "alert delivery"),
    ]
    if rt.settings.monitor_interval_s > 0:
        jobs.append((rt.settings.monitor_interval_s, rt.check_monitors, "monitor evaluation"))
    if rt.settings.rollout_interval_s > 0:
        jobs.append((rt.settings.rollout_interval_s, rt.check_rollouts, "rollout controller"))
    if rt.settings.retention_interval_s > 0:
        jobs.append((rt.settings.retention_interval_s, rt.retention.purge, "retention purge"))
    return [asyncio.create_task(_every(s, job, what)) for s, job, what in jobs]


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
        tasks = _housekeeping(rt)
        try:
            yield
        finally:
            rt.draining = True
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await rt.writer.stop()
            # The store may be why we stop: what cannot be written is logged, and the
            # rest must still close.
            try:
                await run_in_threadpool(rt.tokens.flush_last_used)
            except Exception:
                log.exception("could not write the tokens' last use")
            try:
                await run_in_threadpool(rt.windows.flush, rt.engine, everything=True)
            except Exception:
                log.exception("could not write the last monitoring windows")
            rt.close()

    app = FastAPI(
        title="slipway",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    for module in (
        health,
        models,
        artifacts,
        versions,
        endpoints,
        predictions,
        predict,
        v2,
        access,
        audit,
        quarantine,
        monitoring,
        rollout,
        policies,
        retention,
        approvals,
        governance,
    ):
        app.include_router(module.router)

    @app.get(
        "/metrics",
        tags=["health"],
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
            **PROTECTED,
        },
    )
    async def metrics(_: object = Depends(require(Permission.METRICS_READ))) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(RequestContext, max_body_bytes=config.max_request_mb * 1024 * 1024)
    return app


def serving_app(settings: Settings, runtime: Runtime | None = None) -> ASGIApp:
    """What the server runs: the FastAPI app behind the inference fast path."""
    from slipway.api.fastpath import InferenceFastPath

    app = create_app(settings, runtime=runtime)
    return InferenceFastPath(app, max_body_bytes=settings.max_request_mb * 1024 * 1024)


def worker_app() -> ASGIApp:
    """The app of one worker process under ``slipway server --workers N``."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # workers x native threads must not exceed the cores
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return serving_app(settings)
