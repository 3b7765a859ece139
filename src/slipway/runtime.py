"""The services of one slipway process, wired from settings.

The HTTP app holds one :class:`Runtime`; ``slipway init`` uses one to migrate the store
and create the first admin token. Nothing here knows about HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine

from slipway.access.principals import PrincipalService
from slipway.access.ratelimit import RateLimiter
from slipway.access.tokens import TokenService
from slipway.artifacts.store import ArtifactStore
from slipway.contracts.quarantine import QuarantineService, Sealer, load_key
from slipway.registry.models import ModelService
from slipway.registry.versions import VersionService
from slipway.serving.endpoints import EndpointService
from slipway.serving.inference import InferenceService
from slipway.serving.pool import PredictorPool
from slipway.serving.records import RecordWriter
from slipway.settings import Settings
from slipway.store import open_engine, upgrade


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    artifacts: ArtifactStore
    models: ModelService
    versions: VersionService
    pool: PredictorPool
    endpoints: EndpointService
    writer: RecordWriter
    inference: InferenceService
    tokens: TokenService
    principals: PrincipalService
    rate_limiter: RateLimiter
    quarantine: QuarantineService
    draining: bool = field(default=False)

    @classmethod
    def from_settings(cls, settings: Settings, *, migrate: bool = True) -> Runtime:
        engine = open_engine(settings.resolved_database_url)
        if migrate:
            upgrade(engine)
        artifacts = ArtifactStore(
            settings.resolved_artifact_url, max_bytes=settings.max_upload_mb * 1024 * 1024
        )
        model_service = ModelService(engine)
        version_service = VersionService(engine, artifacts, model_service)
        sealer = Sealer(load_key(settings))
        tokens = TokenService(engine)
        pool = PredictorPool(artifacts, settings.trusted_pyfunc_modules)
        writer = RecordWriter(
            engine, batch_max=settings.record_batch_max, flush_ms=settings.record_flush_ms
        )
        return cls(
            settings=settings,
            engine=engine,
            artifacts=artifacts,
            models=model_service,
            versions=version_service,
            pool=pool,
            endpoints=EndpointService(engine, version_service, pool),
            writer=writer,
            inference=InferenceService(pool, writer, sealer, threads=settings.predict_threads),
            tokens=tokens,
            principals=PrincipalService(engine, tokens),
            rate_limiter=RateLimiter(settings.rate_limit_rps, settings.max_concurrent),
            quarantine=QuarantineService(engine, sealer),
        )

    def close(self) -> None:
        self.inference.shutdown()
        self.engine.dispose()
