"""The ASGI app factory: control API, inference routes, health, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import gc
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
from slipway.metrics import CONTROLLER_LEADER, CONTROLLER_RUNS
from slipway.runtime import Runtime
from slipway.serving.pool import freeze_long_lived
from slipway.settings import Settings
from slipway.store.leases import Lease, holder_id

log = logging.getLogger("slipway.server")

# The shared jobs run in the one worker holding this lease (ADR 0013). It is renewed
# every LEASE_RENEW_S and lives LEASE_TTL_S, so two missed renewals (a slow store) do
# not hand it over; a worker that dies is replaced within LEASE_TTL_S + LEASE_RENEW_S.
CONTROLLER_LEASE = "controllers"
LEASE_TTL_S = 15.0
LEASE_RENEW_S = 5.0


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


def _renew(lease: Lease) -> None:
    """Take or keep the controller lease; a store error (raised, logged by ``_every``)
    leaves this worker not leading."""
    was = lease.held
    try:
        lease.acquire_or_renew()
    finally:
        if lease.held != was:
            state = "now leads" if lease.held else "no longer leads"
            log.info("this worker (%s) %s the controllers", lease.holder, state)
        CONTROLLER_LEADER.set(1 if lease.held else 0)


def _resign(lease: Lease) -> None:
    """Free the lease on shutdown so another worker takes over at its next renewal
    rather than after LEASE_TTL_S; best effort, it expires anyway."""
    CONTROLLER_LEADER.set(0)
    try:
        lease.release()
    except Exception:
        log.exception("could not release the controller lease; it expires by itself")


def _led(
    lease: Lease,
    job: Callable[[], object],
    what: str,
    otherwise: Callable[[], object] | None = None,
) -> Callable[[], object]:
    """``job`` as a shared job: run only while this worker holds the lease (checked
    before each round); other workers skip the round, or run ``otherwise``."""
    runs = CONTROLLER_RUNS.labels(job=what.replace(" ", "_"))

    def round_() -> object:
        if lease.held:
            runs.inc()
            return job()
        return otherwise() if otherwise is not None else None

    return round_


def _housekeeping(rt: Runtime, lease: Lease) -> list[asyncio.Task[None]]:
    checkpointer = Checkpointer(
        rt.engine,
        rt.settings.resolved_audit_dir,
        every_events=rt.settings.audit_checkpoint_events,
        every_s=rt.settings.audit_checkpoint_s,
    )
    # Per worker: each acts on its own memory (loaded endpoints, token use, windows).
    jobs: list[tuple[float, Callable[[], object], str]] = [
        (LEASE_RENEW_S, lambda: _renew(lease), "controller lease renewal"),
        # Follow deployments made by other workers (and restarts).
        (rt.settings.sync_interval_s, rt.endpoints.sync, "endpoint sync"),
        (10.0, rt.tokens.flush_last_used, "token last-used flush"),
        (rt.settings.monitor_flush_s, lambda: rt.windows.flush(rt.engine), "window flush"),
    ]
    # Shared: they act on the store for every worker, so only the leader runs them.
    shared: list[tuple[float, Callable[[], object], str]] = [
        (1.0, checkpointer.maybe_write, "audit checkpoint"),
        (600.0, rt.window_store.rollup, "window rollup"),
        (2.0, rt.alerts.deliver_due, "alert delivery"),
    ]
    if rt.settings.monitor_interval_s > 0:
        shared.append((rt.settings.monitor_interval_s, rt.check_monitors, "monitor evaluation"))
    if rt.settings.retention_interval_s > 0:
        shared.append((rt.settings.retention_interval_s, rt.retention.purge, "retention purge"))
    jobs += [(s, _led(lease, job, what), what) for s, job, what in shared]
    if rt.settings.rollout_interval_s > 0:
        # The leader judges; every other worker still writes its windows of endpoints
        # under rollout at this pace, for the leader's analysis to read.
        rollouts = _led(lease, rt.check_rollouts, "rollout controller", rt.flush_rollout_windows)
        jobs.append((rt.settings.rollout_interval_s, rollouts, "rollout controller"))
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
        # Start-up's garbage goes now; the rest (app, libraries, models) is frozen.
        gc.collect()
        freeze_long_lived()
        lease = Lease(rt.engine, CONTROLLER_LEASE, holder_id(), LEASE_TTL_S)
        # Ask now, not after the first renewal interval: a lone worker leads at once.
        try:
            await run_in_threadpool(_renew, lease)
        except Exception:
            log.exception("could not take the controller lease; will retry")
        tasks = _housekeeping(rt, lease)
        try:
            yield
        finally:
            rt.draining = True
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            # A job's thread may still be finishing its round; its successor's first
            # round may overlap it, which every shared job tolerates (ADR 0013).
            await run_in_threadpool(_resign, lease)
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
    from slipway.artifacts.native_threads import one_native_thread_per_call

    one_native_thread_per_call()  # workers x native threads must not exceed the cores
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return serving_app(settings)
