"""Rollouts: a staged move of an endpoint to a new version that decides by itself.

States: ``pending`` (canary loaded at weight 0) → ``running`` step k (canary at
``steps[k]`` percent) → ``promoted`` | ``rolled_back`` | ``aborted``; ``paused`` holds
the current weight until resumed. The rollout row is the controller's whole state, so a
restarted server resumes where it was, and every worker may run :meth:`tick`: each
decision is a conditional update on the row's ``revision``, so exactly one wins.

At each tick a running rollout is analyzed (analysis.py) over its current step:

- any failed critical check rolls back at once — canary weight 0, an alert to the owner
  (monitoring's channels) and an audit event with the evidence, in one transaction;
- after ``step_duration_s``, all checks passing moves to the next step, or promotes
  the canary to primary after the last one;
- checks still short of data after ``inconclusive_wait`` more step durations pause the
  rollout for a person to look.

Starting and promoting (by hand or by the controller) first pass the endpoint's gates
(governance policies, ``EndpointService.gates``): a blocked start or promote by hand
raises ``PolicyBlocked`` and changes nothing; a blocked automatic promote pauses the
rollout with the failed checks as its decision.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select

from slipway.audit import Actor, append
from slipway.errors import Conflict, NotFound, PolicyBlocked, ValidationFailed
from slipway.ids import new_id, utcnow
from slipway.monitoring.alerts import AlertService
from slipway.monitoring.evaluation import Evaluation
from slipway.monitoring.feedback import FeedbackService
from slipway.monitoring.windows import WindowRecorder, WindowStore
from slipway.registry.versions import Version
from slipway.rollout.analysis import Analysis, Arm, analyze
from slipway.rollout.plans import (
    ACTIVE_STATES,
    PlanService,
    active_rollout,
    check_routing,
    check_weight,
    refuse_under_rollout,
)
from slipway.rollout.templates import AnalysisTemplate, TemplateService
from slipway.serving.endpoints import EndpointService
from slipway.store.engine import transaction
from slipway.store.tables import rollouts

CONTROLLER = Actor("rollout-controller")
STATES = ("pending", "running", "paused", "promoted", "rolled_back", "aborted")
DEFAULT_STEPS = (5.0, 25.0, 50.0, 100.0)
MAX_STEPS = 20
MAX_STEP_DURATION_S = 7 * 86400
# Labels read per arm and analysis; enough for accuracy to two decimals.
MAX_LABELS = 10_000


@dataclass(frozen=True)
class Rollout:
    id: str
    endpoint: str
    model: str
    from_version_id: str
    to_version_id: str
    from_version: int
    to_version: int
    steps: list[float]
    step_duration_s: float
    step: int
    state: str
    routing: str
    template: str
    analysis: dict[str, Any]
    last_analysis: dict[str, Any] | None
    reason: str
    decision: str | None
    revision: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    step_started_at: datetime
    finished_at: datetime | None

    @property
    def weight(self) -> float:
        """The canary's share now: 0 before the first step and once finished (the
        promoted canary is the primary)."""
        if self.state not in ("running", "paused") or self.step < 0:
            return 0.0
        return float(self.steps[self.step])

    @property
    def thresholds(self) -> AnalysisTemplate:
        return AnalysisTemplate.from_dict(self.template, self.analysis)

    def to_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id,
            "endpoint": self.endpoint,
            "model": self.model,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "steps": self.steps,
            "step": self.step,
            "weight": self.weight,
            "step_duration_s": self.step_duration_s,
            "state": self.state,
            "routing": self.routing,
            "template": self.template,
            "analysis": self.analysis,
            "last_analysis": self.last_analysis,
            "reason": self.reason,
            "decision": self.decision,
            "created_by": self.created_by,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "step_started_at": iso(self.step_started_at),
            "finished_at": iso(self.finished_at),
        }


def _rollout(row: Any) -> Rollout:
    return Rollout(**row._asdict())


def check_steps(steps: Sequence[Any]) -> list[float]:
    if not isinstance(steps, Sequence) or isinstance(steps, str) or not steps:
        raise ValidationFailed.field("steps", "must be a non-empty list of percentages")
    if len(steps) > MAX_STEPS:
        raise ValidationFailed.field("steps", f"at most {MAX_STEPS} steps")
    out: list[float] = []
    for i, step in enumerate(steps):
        weight = check_weight(step, f"steps[{i}]")
        if weight <= 0:
            raise ValidationFailed.field(f"steps[{i}]", "must be more than 0")
        if out and weight <= out[-1]:
            raise ValidationFailed.field(f"steps[{i}]", "steps must increase")
        out.append(weight)
    return out


def _bucket_floor(at: datetime, seconds: int = 60) -> datetime:
    """Windows are stored per minute and read whole: a step's window starts at the
    minute its step started in."""
    return datetime.fromtimestamp(at.timestamp() // seconds * seconds, UTC)


class RolloutService:
    def __init__(
        self,
        engine: Engine,
        endpoint_service: EndpointService,
        plans: PlanService,
        templates: TemplateService,
        window_store: WindowStore,
        windows: WindowRecorder,
        feedback: FeedbackService,
        alerts: AlertService,
        *,
        interval_s: float = 2.0,
    ) -> None:
        self.engine = engine
        # A running rollout not looked at for this long had no controller (every server
        # was down): that time does not count against its step.
        self.away_s = max(3 * interval_s, 5.0)
        self.endpoints = endpoint_service
        self.versions = endpoint_service.versions
        self.plans = plans
        self.templates = templates
        self.window_store = window_store
        self.windows = windows
        self.feedback = feedback
        self.alerts = alerts

    # --- reading ----------------------------------------------------------------------

    def get(self, rollout_id: str) -> Rollout:
        with self.engine.connect() as conn:
            row = conn.execute(select(rollouts).where(rollouts.c.id == rollout_id)).first()
        if row is None:
            raise NotFound(f"rollout {rollout_id!r} not found")
        return _rollout(row)

    def active(self, endpoint: str) -> Rollout | None:
        with self.engine.connect() as conn:
            row = active_rollout(conn, endpoint)
        return _rollout(row) if row is not None else None

    def latest(self, endpoint: str) -> Rollout:
        found = self.list(endpoint, limit=1)
        if not found:
            self.endpoints.get(endpoint)  # NotFound for an unknown endpoint
            raise NotFound(f"endpoint {endpoint!r} has had no rollout")
        return found[0]

    def list(
        self, endpoint: str | None = None, state: str | None = None, limit: int = 100
    ) -> builtins.list[Rollout]:
        if state is not None and state not in STATES:
            raise ValidationFailed.field("state", f"must be one of {', '.join(STATES)}")
        query = select(rollouts).order_by(rollouts.c.created_at.desc()).limit(limit)
        if endpoint is not None:
            query = query.where(rollouts.c.endpoint == endpoint)
        if state is not None:
            query = query.where(rollouts.c.state == state)
        with self.engine.connect() as conn:
            return [_rollout(r) for r in conn.execute(query)]

    # --- starting ---------------------------------------------------------------------

    def start(
        self,
        endpoint: str,
        *,
        version: int,
        actor: Actor,
        steps: Sequence[float] = DEFAULT_STEPS,
        step_duration_s: float = 300.0,
        template: str = "default",
        thresholds: Mapping[str, Any] | None = None,
        routing: str = "random",
        allow_breaking: bool = False,
        reason: str = "",
    ) -> Rollout:
        """Start moving ``endpoint`` to ``version`` of its model: the canary is loaded
        and installed at weight 0 (pending); the controller's next tick opens step 1."""
        weights = check_steps(steps)
        if (
            isinstance(step_duration_s, bool)
            or not isinstance(step_duration_s, int | float)
            or not math.isfinite(step_duration_s)
            or not 0 < step_duration_s <= MAX_STEP_DURATION_S
        ):
            raise ValidationFailed.field(
                "step_duration_s", f"must be a number of seconds in (0, {MAX_STEP_DURATION_S}]"
            )
        check_routing(routing)
        try:
            base = self.templates.get(template)
        except NotFound:
            raise ValidationFailed.field("template", f"no analysis template {template!r}") from None
        resolved = base.with_overrides(thresholds)
        current = self.endpoints.get(endpoint)
        if current.stopped:
            raise Conflict(f"endpoint {endpoint!r} is stopped; resume it first")
        if current.canary_version is not None:
            raise Conflict(
                f"endpoint {endpoint!r} has a canary set by hand (version "
                f"{current.canary_version} at {current.canary_weight:g}%); clear it first"
            )
        if version in current.shadow_versions:
            raise ValidationFailed.field(
                "version", f"version {version} is a shadow of {endpoint!r}; remove it first"
            )
        try:
            target = self.versions.get(current.model, version)
        except NotFound:
            raise ValidationFailed.field(
                "version", f"model {current.model!r} has no version {version}"
            ) from None
        if target.status != "ready":
            raise Conflict(f"version {version} of {current.model!r} is {target.status}, not ready")
        if target.id == current.version_id:
            raise Conflict(f"version {version} is already the primary of {endpoint!r}")
        gated = self.endpoints.check_gates(
            "rollout_start", endpoint, target, current.version_id, actor
        )
        changes = self.endpoints.breaking_changes(
            current.version_id, target, allow_breaking, reason
        )
        self.endpoints.pool.load(endpoint, target, 0, current.contract_mode)
        now = utcnow()
        rollout_id = new_id()
        row = {
            "id": rollout_id,
            "endpoint": endpoint,
            "model": current.model,
            "from_version_id": current.version_id,
            "to_version_id": target.id,
            "from_version": current.version,
            "to_version": target.number,
            "steps": weights,
            "step_duration_s": float(step_duration_s),
            "step": -1,
            "state": "pending",
            "routing": routing,
            "template": resolved.name,
            "analysis": resolved.to_dict(),
            "last_analysis": None,
            "reason": reason,
            "decision": None,
            "revision": 1,
            "created_by": actor.name,
            "created_at": now,
            "updated_at": now,
            "step_started_at": now,
            "finished_at": None,
        }
        with transaction(self.engine) as conn:
            running = active_rollout(conn, endpoint)
            if running is not None:
                raise Conflict(
                    f"endpoint {endpoint!r} already has rollout {running.id} ({running.state})"
                )
            conn.execute(rollouts.insert().values(**row))
            self.plans.write(
                conn,
                endpoint,
                {"canary_version_id": target.id, "canary_weight": 0.0, "routing": routing},
                actor=actor,
                action="rollout.start",
                reason=reason,
                details={
                    "rollout": rollout_id,
                    "to_version": target.number,
                    "steps": weights,
                    "step_duration_s": float(step_duration_s),
                    "template": resolved.to_dict(),
                    **({"breaking_changes": changes} if changes else {}),
                    **gated,
                },
            )
        self.endpoints.sync(endpoint)
        return self.get(rollout_id)

    # --- by hand ----------------------------------------------------------------------

    def pause(self, endpoint: str, *, actor: Actor, reason: str = "") -> Rollout:
        return self._by_hand(endpoint, "pause", ("pending", "running"), actor, reason)

    def resume(self, endpoint: str, *, actor: Actor, reason: str = "") -> Rollout:
        return self._by_hand(endpoint, "resume", ("paused",), actor, reason)

    def promote(self, endpoint: str, *, actor: Actor, reason: str = "") -> Rollout:
        return self._by_hand(endpoint, "promote", ACTIVE_STATES, actor, reason)

    def abort(self, endpoint: str, *, actor: Actor, reason: str = "") -> Rollout:
        return self._by_hand(endpoint, "abort", ACTIVE_STATES, actor, reason)

    def _by_hand(
        self, endpoint: str, action: str, allowed: tuple[str, ...], actor: Actor, reason: str
    ) -> Rollout:
        # The controller may decide between our read and our write: then read again.
        for _ in range(3):
            current = self.active(endpoint)
            if current is None:
                self.endpoints.get(endpoint)
                raise Conflict(f"endpoint {endpoint!r} has no rollout under way")
            if current.state not in allowed:
                raise Conflict(f"rollout {current.id} is {current.state}; cannot {action} it")
            # Blocked by a gate (policy, on promote or on a resume that gives the canary
            # more callers): raised to the caller, the rollout unchanged.
            decided = self._decide(current, action, actor, reason or f"{action} by hand")
            if decided is not None:
                return decided
        raise Conflict(f"rollout of {endpoint!r} kept changing; try again")

    # --- the controller ---------------------------------------------------------------

    def endpoints_under_rollout(self) -> set[str]:
        with self.engine.connect() as conn:
            query = select(rollouts.c.endpoint).where(rollouts.c.state.in_(ACTIVE_STATES))
            return set(conn.execute(query).scalars())

    def tick(self, now: datetime | None = None) -> builtins.list[dict[str, Any]]:
        """Advance every pending or running rollout once; returns the decisions made."""
        decisions: builtins.list[dict[str, Any]] = []
        with self.engine.connect() as conn:
            query = select(rollouts).where(rollouts.c.state.in_(("pending", "running")))
            under_way = [_rollout(r) for r in conn.execute(query)]
        if not under_way:
            return decisions
        stopped = {e.name for e in self.endpoints.list() if e.stopped}
        for rollout in under_way:
            if rollout.endpoint in stopped:
                continue  # nobody reaches the canary: nothing to judge until resumed
            decided = self._advance(rollout, now or utcnow())
            if decided is not None:
                decisions.append(
                    {
                        "rollout": decided.id,
                        "endpoint": decided.endpoint,
                        "state": decided.state,
                        "step": decided.step,
                        "decision": decided.decision,
                    }
                )
        return decisions

    def analysis(self, endpoint: str, now: datetime | None = None) -> dict[str, Any]:
        """The live analysis of the endpoint's active (else latest) rollout's step."""
        rollout = self.active(endpoint) or self.latest(endpoint)
        now = now or utcnow()
        start, end = self._window(rollout, now)
        result = self._analyze(rollout, now)
        return {
            "rollout": rollout.id,
            "state": rollout.state,
            "step": rollout.step,
            "weight": rollout.weight,
            "window_start": start.isoformat(),
            "window_end": end.isoformat(),
            **result.to_dict(),
        }

    def _advance(self, rollout: Rollout, now: datetime) -> Rollout | None:
        """One controller decision on ``rollout`` (None: nothing to do, or another worker
        decided first). A gate refusing a step or the promotion pauses it."""
        try:
            return self._judge(rollout, now)
        except PolicyBlocked as blocked:
            return self._blocked(rollout, blocked, now)

    def _judge(self, rollout: Rollout, now: datetime) -> Rollout | None:
        if rollout.state == "pending":
            return self._decide(rollout, "step", CONTROLLER, "first step", step=0, now=now)
        away = (now - rollout.updated_at).total_seconds()
        if away > self.away_s:
            self._resume_clock(rollout, timedelta(seconds=away), now)
            return None
        result = self._analyze(rollout, now)
        evidence = result.to_dict()
        if result.verdict == "fail":
            failed = "; ".join(c.reason for c in result.failed())
            return self._decide(
                rollout, "rollback", CONTROLLER, f"canary failed: {failed}", evidence, now=now
            )
        elapsed = (now - rollout.step_started_at).total_seconds()
        if elapsed >= rollout.step_duration_s and result.verdict == "pass":
            if rollout.step + 1 < len(rollout.steps):
                why = f"step {rollout.step + 1} passed every check"
                return self._decide(
                    rollout, "step", CONTROLLER, why, evidence, step=rollout.step + 1, now=now
                )
            why = f"all {len(rollout.steps)} steps passed every check"
            return self._decide(rollout, "promote", CONTROLLER, why, evidence, now=now)
        wait = rollout.step_duration_s * (1 + rollout.thresholds.inconclusive_wait)
        if elapsed >= wait and result.verdict == "inconclusive":
            short = "; ".join(c.reason for c in result.inconclusive())
            why = f"not enough data after {elapsed:.0f}s: {short}"
            return self._decide(rollout, "pause", CONTROLLER, why, evidence, now=now)
        self._note(rollout, evidence, now)
        return None

    def _gate(
        self, rollout: Rollout, action: str, step: int | None, actor: Actor
    ) -> dict[str, Any] | None:
        """Ask the endpoint's gates (policies) about a decision that gives the canary
        more callers — every step up passes them again, since an approval may have gone
        stale since the start: as a promotion once it takes every caller (or becomes the
        primary), else as the rollout's start. Raises PolicyBlocked; None: not gated."""
        if action == "promote":
            gate = "promote"
        elif action in ("step", "resume"):
            index = step if action == "step" and step is not None else rollout.step
            weight = rollout.steps[max(index, 0)]
            if weight >= 100:
                gate = "promote"
            elif weight > rollout.weight:
                gate = "rollout_start"
            else:
                return None
        else:
            return None
        target = self.versions.get_by_id(rollout.to_version_id)
        return self.endpoints.check_gates(
            gate, rollout.endpoint, target, rollout.from_version_id, actor
        )

    def _blocked(self, rollout: Rollout, blocked: PolicyBlocked, now: datetime) -> Rollout | None:
        """A gate refused the next step or the promotion: what it needs a person must
        supply (an approval, a fresh evaluation), so pause — and if the canary already
        takes every caller, step back to the last step below 100 %, so a version the
        policies refuse does not go on serving everyone."""
        listed = "; ".join(f"{d['field']}: {d['reason']}" for d in blocked.details)
        why = f"blocked by policy: {listed or blocked.message}"[:2000]
        back = None
        if rollout.weight >= 100:
            back = max((i for i, w in enumerate(rollout.steps) if w < 100), default=-1)
        return self._decide(rollout, "pause", CONTROLLER, why, step=back, now=now)

    def _window(self, rollout: Rollout, now: datetime) -> tuple[datetime, datetime]:
        return _bucket_floor(rollout.step_started_at), now + timedelta(minutes=1)

    def _analyze(self, rollout: Rollout, now: datetime) -> Analysis:
        start, end = self._window(rollout, now)
        canary = self._arm(rollout.endpoint, rollout.to_version, start, end)
        primary = self._arm(rollout.endpoint, rollout.from_version, start, end)
        template = rollout.thresholds
        enough = max((s.min_samples for s in template.checks.values() if s.enabled), default=0)
        if primary.window.requests < enough:
            # At 100% the primary serves nobody (a few requests routed before the step
            # began may fall in its first minute): compare with what it served during
            # the rollout's earlier steps instead, enough for every check.
            primary = self._arm(
                rollout.endpoint, rollout.from_version, _bucket_floor(rollout.created_at), end
            )
        target = self.versions.get_by_id(rollout.to_version_id)
        return analyze(template, canary, primary, classifier=_is_classifier(target))

    def _arm(self, endpoint: str, version: int, start: datetime, end: datetime) -> Arm:
        return Arm(
            version,
            self.window_store.read(endpoint, start, end, version=version),
            self.feedback.labeled(endpoint, start, end, version=version, limit=MAX_LABELS),
        )

    def _note(self, rollout: Rollout, evidence: dict[str, Any], now: datetime) -> None:
        """Keep the latest analysis on the row (no decision, no revision change); its
        ``updated_at`` says a controller is looking."""
        with transaction(self.engine) as conn:
            conn.execute(
                rollouts.update()
                .where(rollouts.c.id == rollout.id, rollouts.c.revision == rollout.revision)
                .values(last_analysis=evidence, updated_at=now)
            )

    def _resume_clock(self, rollout: Rollout, away: timedelta, now: datetime) -> None:
        """Move the step's start later by the time no controller ran (a restart), so the
        step is not judged short of data for traffic that could not arrive."""
        with transaction(self.engine) as conn:
            conn.execute(
                rollouts.update()
                .where(rollouts.c.id == rollout.id, rollouts.c.revision == rollout.revision)
                .values(step_started_at=rollout.step_started_at + away, updated_at=now)
            )

    def _decide(
        self,
        rollout: Rollout,
        action: str,
        actor: Actor,
        why: str,
        evidence: dict[str, Any] | None = None,
        *,
        step: int | None = None,
        now: datetime | None = None,
    ) -> Rollout | None:
        """Apply one decision: the rollout row (if its revision is unchanged), the
        endpoint's plan, the audit event (with what the gates recorded) and, for an
        automatic rollback, the alert — all in one transaction. Returns None when
        another worker decided first. A decision giving the canary more callers first
        passes the gates (PolicyBlocked)."""
        gated = self._gate(rollout, action, step, actor)
        now = now or utcnow()
        values: dict[str, Any] = {"decision": why, "updated_at": now}
        plan: dict[str, Any] | None = None
        if action == "step":
            assert step is not None
            values.update(state="running", step=step, step_started_at=now)
            plan = {"canary_weight": rollout.steps[step]}
        elif action == "pause":
            values.update(state="paused")
            if step is not None:  # paused a step back: the canary's share lowered
                values.update(step=step)
                plan = {"canary_weight": rollout.steps[step] if step >= 0 else 0.0}
        elif action == "resume":
            values.update(state="running", step=max(rollout.step, 0), step_started_at=now)
            plan = {"canary_weight": rollout.steps[max(rollout.step, 0)]}
        elif action in ("rollback", "abort"):
            values.update(
                state="rolled_back" if action == "rollback" else "aborted", finished_at=now
            )
            plan = {"canary_version_id": None, "canary_weight": 0.0}
        elif action == "promote":
            values.update(state="promoted", finished_at=now)
            plan = {
                "version_id": rollout.to_version_id,
                "previous_version_id": rollout.from_version_id,
                "canary_version_id": None,
                "canary_weight": 0.0,
            }
        if evidence is not None:
            values["last_analysis"] = evidence
        details = {
            "rollout": rollout.id,
            "from_version": rollout.from_version,
            "to_version": rollout.to_version,
            "state": values.get("state", rollout.state),
            "step": values.get("step", rollout.step),
            "decision": why,
            **({"analysis": evidence} if evidence is not None else {}),
            **(gated or {}),
        }
        with transaction(self.engine) as conn:
            changed = conn.execute(
                rollouts.update()
                .where(rollouts.c.id == rollout.id, rollouts.c.revision == rollout.revision)
                .values(**values, revision=rollout.revision + 1)
            ).rowcount
            if not changed:
                return None
            if plan is not None:
                self.plans.write(
                    conn,
                    rollout.endpoint,
                    plan,
                    actor=actor,
                    action=f"rollout.{action}",
                    reason=why,
                    details=details,
                )
            else:
                append(
                    conn,
                    actor,
                    f"rollout.{action}",
                    target_kind="endpoint",
                    target=rollout.endpoint,
                    after=details,
                    reason=why,
                )
            if action == "promote":
                self._promoted(conn, rollout)
            if action == "rollback" and actor is CONTROLLER:
                self._alert(conn, rollout, why, evidence or {}, now)
        self.endpoints.sync(rollout.endpoint)
        return self.get(rollout.id)

    def _promoted(self, conn: Connection, rollout: Rollout) -> None:
        """What a deploy sets up for a new primary (default monitors), in the same
        transaction."""
        target = self.versions.get_by_id(rollout.to_version_id)
        slo = self.endpoints.get(rollout.endpoint).latency_slo_ms
        for hook in self.endpoints.deploy_hooks:
            hook(conn, rollout.endpoint, target, slo)

    def _alert(
        self, conn: Connection, rollout: Rollout, why: str, evidence: dict[str, Any], now: datetime
    ) -> None:
        failed = [c for c in evidence.get("checks", []) if c["status"] == "fail" and c["critical"]]
        first = failed[0] if failed else {}
        start, _ = self._window(rollout, now)
        self.alerts.raise_in(
            conn,
            Evaluation(
                monitor_id=rollout.id,
                monitor="rollout",
                endpoint=rollout.endpoint,
                model=rollout.model,
                version=rollout.to_version,
                metric="canary_analysis",
                subject=",".join(c["name"] for c in failed)[:128],
                severity="critical",
                status="breach",
                value=first.get("value"),
                op="<" if first.get("name") == "agreement" else ">",
                threshold=float(first.get("threshold") or 0.0),
                samples=int(first.get("samples") or 0),
                min_samples=int(first.get("min_samples") or 0),
                window_start=start,
                window_end=now,
                evidence={"rollout": rollout.id, "decision": f"rolled back: {why}", **evidence},
            ),
            now,
        )

    def refuse_deploy(
        self, conn: Connection, name: str, target: Version, slo: float | None
    ) -> None:
        """A deploy hook: while a rollout runs, the rollout owns the endpoint."""
        refuse_under_rollout(conn, name, "before deploying")


def _is_classifier(version: Version) -> bool:
    return version.signature.get("classes") is not None
