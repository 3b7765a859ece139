"""The services of one slipway process, wired from settings.

The HTTP app holds one :class:`Runtime`; ``slipway init`` uses one to migrate the store
and create the first admin token. Nothing here knows about HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from slipway.access.principals import PrincipalService
from slipway.access.ratelimit import RateLimiter
from slipway.access.tokens import TokenService
from slipway.artifacts.store import ArtifactStore
from slipway.contracts.quarantine import QuarantineService, Sealer, load_key
from slipway.governance.approvals import ApprovalService
from slipway.governance.card import CardService
from slipway.governance.evaluations import EvaluationService
from slipway.governance.inventory import InventoryService
from slipway.governance.policies import PolicyService
from slipway.governance.retention import RetentionService
from slipway.governance.testscore import TestScoreService
from slipway.ids import utcnow
from slipway.monitoring.alerts import AlertService
from slipway.monitoring.channels import ChannelService
from slipway.monitoring.feedback import FeedbackService
from slipway.monitoring.monitors import MonitorService
from slipway.monitoring.summary import Summarizer
from slipway.monitoring.windows import WindowRecorder, WindowStore
from slipway.registry.models import ModelService
from slipway.registry.versions import VersionService
from slipway.rollout.plans import PlanService
from slipway.rollout.service import RolloutService
from slipway.rollout.templates import TemplateService
from slipway.serving.admission import Admission
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
    windows: WindowRecorder
    window_store: WindowStore
    feedback: FeedbackService
    monitors: MonitorService
    channels: ChannelService
    alerts: AlertService
    summaries: Summarizer
    plans: PlanService
    templates: TemplateService
    rollouts: RolloutService
    evaluations: EvaluationService
    approvals: ApprovalService
    test_scores: TestScoreService
    cards: CardService
    inventory: InventoryService
    policies: PolicyService
    retention: RetentionService
    draining: bool = field(default=False)

    @classmethod
    def from_settings(cls, settings: Settings, *, migrate: bool = True) -> Runtime:
        engine = open_engine(
            settings.resolved_database_url, busy_timeout_s=settings.store_busy_timeout_s
        )
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
        admission = Admission(settings.max_inflight, settings.max_queue)
        writer = RecordWriter(
            engine,
            batch_max=settings.record_batch_max,
            flush_ms=settings.record_flush_ms,
            alone=admission.alone,
        )
        windows = WindowRecorder()
        window_store = WindowStore(engine)
        feedback = FeedbackService(engine)
        monitors = MonitorService(engine, window_store, feedback)
        endpoint_service = EndpointService(engine, version_service, pool)
        endpoint_service.deploy_hooks.append(monitors.ensure_defaults)
        channels = ChannelService(engine)
        alerts = AlertService(engine, channels)
        plans = PlanService(engine, endpoint_service)
        templates = TemplateService(engine)
        rollouts = RolloutService(
            engine,
            endpoint_service,
            plans,
            templates,
            window_store,
            windows,
            feedback,
            alerts,
            interval_s=settings.rollout_interval_s,
        )
        # While a rollout runs it owns the endpoint: a deploy is refused before any work.
        endpoint_service.deploy_hooks.insert(0, rollouts.refuse_deploy)
        evaluations = EvaluationService(engine, version_service)
        approvals = ApprovalService(engine, version_service, evaluations)
        policies = PolicyService(engine, version_service, evaluations, approvals)
        # Deploy, rollout start and promote are checked against the policies first.
        endpoint_service.gates.append(policies.gate)
        retention = RetentionService(engine, settings)
        summaries = Summarizer(
            endpoint_service, version_service, window_store, feedback, monitors, alerts
        )
        test_scores = TestScoreService(
            engine,
            model_service,
            version_service,
            endpoint_service,
            monitors,
            evaluations,
            approvals,
        )
        cards = CardService(
            model_service,
            version_service,
            endpoint_service,
            evaluations,
            approvals,
            summaries,
            test_scores,
        )
        return cls(
            settings=settings,
            engine=engine,
            artifacts=artifacts,
            models=model_service,
            versions=version_service,
            pool=pool,
            endpoints=endpoint_service,
            writer=writer,
            inference=InferenceService(
                pool,
                writer,
                sealer,
                threads=settings.predict_threads,
                inline_call_ms=settings.inline_call_ms,
                windows=windows,
                admission=admission,
                batch_max_rows=settings.batch_max_rows,
                batch_wait_ms=settings.batch_wait_ms,
                request_timeout_s=settings.request_timeout_s,
            ),
            tokens=tokens,
            principals=PrincipalService(engine, tokens),
            rate_limiter=RateLimiter(settings.rate_limit_rps, settings.max_concurrent),
            quarantine=QuarantineService(engine, sealer),
            windows=windows,
            window_store=window_store,
            feedback=feedback,
            monitors=monitors,
            channels=channels,
            alerts=alerts,
            summaries=summaries,
            plans=plans,
            templates=templates,
            rollouts=rollouts,
            evaluations=evaluations,
            approvals=approvals,
            test_scores=test_scores,
            cards=cards,
            inventory=InventoryService(engine, model_service, endpoint_service, test_scores),
            policies=policies,
            retention=retention,
        )

    def check_monitors(self, endpoint: str | None = None) -> dict[str, Any]:
        """Write this worker's open windows, judge every monitor (of one ``endpoint``),
        raise or resolve alerts and send what is due. The monitor controller runs this
        every ``monitor_interval_s``; the API can force it for one endpoint."""
        self.windows.flush(self.engine, everything=True)
        evaluations = self.monitors.evaluate(endpoint=endpoint)
        changes = self.alerts.apply(evaluations, utcnow())
        delivered = self.alerts.deliver_due()
        return {"evaluations": evaluations, "changes": changes, "delivered": delivered}

    def check_rollouts(self) -> list[dict[str, Any]]:
        """Write this worker's open windows of endpoints under rollout (the analysis
        judges them within seconds), then advance every rollout once. The rollout
        controller runs this every ``rollout_interval_s``."""
        self.flush_rollout_windows()
        return self.rollouts.tick()

    def flush_rollout_windows(self) -> int:
        """Write this worker's open windows of endpoints under rollout. Workers that do
        not run the controller still do this every ``rollout_interval_s``: the leader's
        analysis must see every worker's traffic within seconds."""
        under = self.rollouts.endpoints_under_rollout()
        return self.windows.flush(self.engine, endpoints=under) if under else 0

    def close(self) -> None:
        self.inference.shutdown()
        self.engine.dispose()
