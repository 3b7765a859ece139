"""The ML Test Score (Breck et al., "The ML Test Score: A Rubric for ML Production
Readiness and Technical Debt Reduction", IEEE Big Data 2017).

28 tests in four sections of seven. Each test scores 1 when slipway's own records prove
it is done automatically, 0.5 when a person attested it (with a link to the evidence),
else 0. A section's score is the sum of its tests; the final score is the *minimum* of
the four sections (a system is as ready as its weakest area), read against the paper's
interpretation bands (:data:`BANDS`).

What is scored (the model *as served*) and the automatic rules that read slipway's
records are in :mod:`slipway.governance.testscore_evidence`; every other test is
attestable only. Here: the rubric, the pure scoring (:func:`tally`), attestations, and
:class:`TestScoreService` tying them together.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, update

from slipway.audit import Actor, append
from slipway.errors import Conflict, NotFound, ValidationFailed
from slipway.governance.approvals import ApprovalService
from slipway.governance.evaluations import EvaluationService
from slipway.governance.policy_spec import PolicySpec
from slipway.governance.statements import statement
from slipway.governance.testscore_evidence import Evidence, Serving, automatic
from slipway.ids import new_id, utcnow
from slipway.monitoring.monitors import MonitorService
from slipway.registry.models import ModelService
from slipway.registry.versions import Version, VersionService
from slipway.serving.endpoints import Endpoint, EndpointService
from slipway.store.engine import transaction
from slipway.store.tables import attestations, feedback, policies, rollouts, versions

SECTIONS = ("data", "model", "infra", "monitor")
TITLES: dict[str, str] = {
    "data-1": "Feature expectations are captured in a schema",
    "data-2": "All features are beneficial",
    "data-3": "No feature's cost is too much",
    "data-4": "Features adhere to meta-level requirements",
    "data-5": "The data pipeline has appropriate privacy controls",
    "data-6": "New features can be added quickly",
    "data-7": "All input feature code is tested",
    "model-1": "Model specs are reviewed and submitted",
    "model-2": "Offline and online metrics correlate",
    "model-3": "All hyperparameters have been tuned",
    "model-4": "The impact of model staleness is known",
    "model-5": "A simpler model is not better",
    "model-6": "Model quality is sufficient on important data slices",
    "model-7": "The model is tested for considerations of inclusion",
    "infra-1": "Training is reproducible",
    "infra-2": "Model specs are unit tested",
    "infra-3": "The ML pipeline is integration tested",
    "infra-4": "Model quality is validated before serving",
    "infra-5": "The model is debuggable",
    "infra-6": "Models are canaried before serving",
    "infra-7": "Serving models can be rolled back",
    "monitor-1": "Dependency changes result in notification",
    "monitor-2": "Data invariants hold for inputs",
    "monitor-3": "Training and serving are not skewed",
    "monitor-4": "Models are not too stale",
    "monitor-5": "Models are numerically stable",
    "monitor-6": "Computing performance has not regressed",
    "monitor-7": "Prediction quality has not regressed",
}
TEST_IDS = tuple(TITLES)
AUTOMATED, ATTESTED = 1.0, 0.5
# The paper's interpretation of the final score: (upper bound, range, meaning); the
# first band whose bound the score does not exceed applies.
BANDS: tuple[tuple[float, str, str], ...] = (
    (0.0, "0", "More of a research project than a productionized system."),
    (
        1.0,
        "(0, 1]",
        "Not totally untested, but it is worth considering the possibility of serious "
        "holes in reliability.",
    ),
    (
        2.0,
        "(1, 2]",
        "There's been first pass at basic productionization, but additional investment "
        "may be needed.",
    ),
    (
        3.0,
        "(2, 3]",
        "Reasonably tested, but it's possible that more of those tests and procedures "
        "may be automated.",
    ),
    (
        5.0,
        "(3, 5]",
        "Strong levels of automated testing and monitoring, appropriate for "
        "mission-critical systems.",
    ),
    (float("inf"), "> 5", "Exceptional levels of automated testing and monitoring."),
)
MAX_URL = 2048
_URL = re.compile(r"^https?://[^\s/]+\S*$")


# -- the pure part: points to sections, final score and band ------------------------------


@dataclass(frozen=True)
class Outcome:
    """One test's outcome: ``how`` is automated, attested or none."""

    id: str
    points: float
    how: str
    evidence: str = ""
    evidence_url: str | None = None
    attested_by: str | None = None

    @property
    def title(self) -> str:
        return TITLES[self.id]

    @property
    def section(self) -> str:
        return self.id.split("-", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "points": self.points,
            "how": self.how,
            "evidence": self.evidence,
            "evidence_url": self.evidence_url,
            "attested_by": self.attested_by,
        }


def band(final: float) -> tuple[str, str]:
    """The paper's band for a final score: ``(range, interpretation)``.

    >>> band(1.5)[0]
    '(1, 2]'
    """
    for upper, label, meaning in BANDS:
        if final <= upper:
            return label, meaning
    raise AssertionError("unreachable: the last band is unbounded")


def tally(results: Iterable[Outcome]) -> dict[str, Any]:
    """Section sums, the final score (their minimum) and its band, from test results.

    Pure: what the score *means* is decided here, what the records *prove* elsewhere.
    Tests not given count 0; every section appears even when empty.
    """
    by_section: dict[str, list[Outcome]] = {s: [] for s in SECTIONS}
    for result in results:
        by_section[result.section].append(result)
    sums = {name: float(sum(r.points for r in found)) for name, found in by_section.items()}
    sections = {
        name: {
            "score": sums[name],
            "tests": [r.to_dict() for r in sorted(found, key=lambda r: _order(r.id))],
        }
        for name, found in by_section.items()
    }
    final = min(sums.values())
    label, meaning = band(final)
    return {"final": final, "band": label, "interpretation": meaning, "sections": sections}


def _order(test_id: str) -> tuple[int, int]:
    section, number = test_id.split("-", 1)
    return SECTIONS.index(section), int(number)


def check_test(test: Any) -> str:
    if test not in TITLES:
        raise ValidationFailed.field("test", f"must be one of {', '.join(TEST_IDS)}")
    return str(test)


# -- attestations ------------------------------------------------------------------------


@dataclass(frozen=True)
class Attestation:
    id: str
    model: str
    test: str
    evidence_url: str
    note: str
    attested_by: str
    created_at: datetime
    withdrawn_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "test": self.test,
            "title": TITLES.get(self.test, ""),
            "evidence_url": self.evidence_url,
            "note": self.note,
            "attested_by": self.attested_by,
            "created_at": self.created_at.isoformat(),
            "withdrawn_at": self.withdrawn_at.isoformat() if self.withdrawn_at else None,
        }


def results_of(automated: Mapping[str, str], attested: Mapping[str, Attestation]) -> list[Outcome]:
    """Every test's result: automated beats attested beats nothing."""
    out = []
    for test in TEST_IDS:
        if test in automated:
            out.append(Outcome(test, AUTOMATED, "automated", automated[test]))
        elif test in attested:
            a = attested[test]
            out.append(
                Outcome(
                    test,
                    ATTESTED,
                    "attested",
                    f"attested by {a.attested_by} on {a.created_at.date().isoformat()}: {a.note}",
                    evidence_url=a.evidence_url,
                    attested_by=a.attested_by,
                )
            )
        else:
            out.append(Outcome(test, 0.0, "none"))
    return out


def _url(value: Any) -> str:
    if not isinstance(value, str) or not _URL.match(value.strip()):
        raise ValidationFailed.field("evidence_url", "must be an http(s) URL to the evidence")
    url = value.strip()
    if len(url) > MAX_URL:
        raise ValidationFailed.field("evidence_url", f"at most {MAX_URL} characters")
    return url


class TestScoreService:
    __test__ = False  # not a pytest class, whatever its name says

    def __init__(
        self,
        engine: Engine,
        models: ModelService,
        versions: VersionService,
        endpoints: EndpointService,
        monitors: MonitorService,
        evaluations: EvaluationService,
        approvals: ApprovalService,
    ) -> None:
        self.engine = engine
        self.models = models
        self.versions = versions
        self.endpoints = endpoints
        self.monitors = monitors
        self.evaluations = evaluations
        self.approvals = approvals

    # -- attestations -------------------------------------------------------------------
    def attest(
        self, model: str, test: str, *, evidence_url: str, note: str, actor: Actor
    ) -> Attestation:
        """A person vouches for ``test`` with a link to the evidence; the newest
        attestation of a test is the one that counts."""
        clean_test = check_test(test)
        url = _url(evidence_url)
        text = statement(note, "note", asks="say what the evidence shows")
        if self.models.get(model).status == "retired":
            raise Conflict(f"model {model!r} is retired")
        row: dict[str, Any] = {
            "id": new_id(),
            "model": model,
            "test": clean_test,
            "evidence_url": url,
            "note": text,
            "attested_by": actor.name,
            "created_at": utcnow(),
            "withdrawn_at": None,
        }
        attestation = Attestation(**row)
        with transaction(self.engine) as conn:
            conn.execute(attestations.insert().values(**row))
            append(
                conn,
                actor,
                "testscore.attest",
                target_kind="model",
                target=model,
                after=attestation.to_dict(),
                reason=text,
            )
        return attestation

    def withdraw(self, model: str, test: str, *, actor: Actor) -> list[Attestation]:
        """Withdraw every standing attestation of ``test``; returns them as withdrawn."""
        clean_test = check_test(test)
        self.models.get(model)
        now = utcnow()
        with transaction(self.engine) as conn:
            standing = [
                Attestation(**r._asdict())
                for r in conn.execute(
                    select(attestations).where(
                        attestations.c.model == model,
                        attestations.c.test == clean_test,
                        attestations.c.withdrawn_at.is_(None),
                    )
                )
            ]
            if not standing:
                raise NotFound(f"no standing attestation of {clean_test} for model {model!r}")
            conn.execute(
                update(attestations)
                .where(attestations.c.id.in_([a.id for a in standing]))
                .values(withdrawn_at=now)
            )
            withdrawn = [replace(a, withdrawn_at=now) for a in standing]
            append(
                conn,
                actor,
                "testscore.withdraw",
                target_kind="model",
                target=model,
                before={"attestations": [a.to_dict() for a in standing]},
                after={"test": clean_test, "withdrawn_at": now.isoformat()},
            )
        return withdrawn

    def standing(self, model: str) -> dict[str, Attestation]:
        """The attestation that counts per test: the newest not withdrawn."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(attestations)
                .where(attestations.c.model == model, attestations.c.withdrawn_at.is_(None))
                .order_by(attestations.c.created_at, attestations.c.id)
            ).all()
        return {r.test: Attestation(**r._asdict()) for r in rows}

    # -- the score ----------------------------------------------------------------------
    def score(
        self, model: str, *, all_endpoints: Sequence[Endpoint] | None = None
    ) -> dict[str, Any]:
        """The model's ML Test Score (see the module docstring for what is scored).
        ``all_endpoints``: the endpoint list when the caller already has it."""
        evidence = self.evidence(model, all_endpoints=all_endpoints)
        results = results_of(automatic(evidence), self.standing(model))
        return {
            "model": model,
            "version": evidence.version.number if evidence.version is not None else None,
            "endpoints": [s.name for s in evidence.serving],
            **tally(results),
        }

    def evidence(self, model: str, *, all_endpoints: Sequence[Endpoint] | None = None) -> Evidence:
        """Gather what the store holds about ``model`` for the automatic rules."""
        found = self.models.get(model)
        endpoint_list = all_endpoints if all_endpoints is not None else self.endpoints.list()
        mine = [ep for ep in endpoint_list if ep.model == found.name]
        policy_views = self._policies()
        with self.engine.connect() as conn:
            labeled = (
                set(
                    conn.execute(
                        select(feedback.c.endpoint)
                        .where(
                            feedback.c.model == model,
                            feedback.c.endpoint.in_([e.name for e in mine]),
                        )
                        .distinct()
                    ).scalars()
                )
                if mine
                else set()
            )
            promoted = {
                (r.endpoint, r.to_version_id)
                for r in conn.execute(
                    select(rollouts.c.endpoint, rollouts.c.to_version_id).where(
                        rollouts.c.model == model,
                        rollouts.c.state == "promoted",
                        rollouts.c.step >= 0,
                    )
                )
            }
        serving = []
        primaries: dict[str, Version] = {}
        for ep in mine:
            if ep.version_id not in primaries:
                primaries[ep.version_id] = self.versions.get_by_id(ep.version_id)
            serving.append(
                Serving(
                    endpoint=ep,
                    primary=primaries[ep.version_id],
                    monitors=tuple(m for m in self.monitors.list(ep.name) if m.enabled),
                    has_labels=ep.name in labeled,
                    policies=tuple(p for p in policy_views if _checks_serving(p, ep.name)),
                    canaried=(ep.name, ep.version_id) in promoted,
                )
            )
        version = self._scored_version(found.id, list(primaries.values()))
        evaluation = self.evaluations.current(version) if version is not None else None
        approved = (
            sorted({a.decided_by or "" for a in self.approvals.valid(version)})
            if version is not None
            else []
        )
        return Evidence(model, version, evaluation, tuple(approved), tuple(serving))

    def _scored_version(self, model_id: str, primaries: list[Version]) -> Version | None:
        if primaries:
            return max(primaries, key=lambda v: v.number)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(versions.c.id, versions.c.status)
                .where(versions.c.model_id == model_id)
                .order_by(versions.c.number.desc())
            ).all()
        if not rows:
            return None
        ready = [r for r in rows if r.status == "ready"]
        return self.versions.get_by_id((ready or rows)[0].id)

    def _policies(self) -> list[PolicySpec]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(policies.c.name, policies.c.spec)).all()
        return [PolicySpec.from_dict(r.name, r.spec) for r in rows]


def _checks_serving(policy: PolicySpec, endpoint: str) -> bool:
    """Whether ``policy`` checks what ``endpoint`` serves: it gates a deploy or a
    promotion there."""
    return policy.applies(endpoint, "deploy") or policy.applies(endpoint, "promote")
