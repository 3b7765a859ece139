"""Analysis templates: which canary checks run, with what thresholds and sample floors.

A template is a complete set of checks; specs are partial and fill the rest from a base
(the built-in ``default`` unless said otherwise), so a team states only what differs::

    AnalysisTemplate.from_dict("slow-ok", {"checks": {"latency_p99": {"threshold": 2}}})
    DEFAULT.with_overrides({"checks": {"agreement": {"enabled": False}}})

``default`` is built in and read-only; other templates live in ``analysis_templates``
(the spec as ``to_dict`` writes it, minus the name). A rollout copies its resolved
template at start, so editing or deleting a template never changes a rollout under way.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from slipway.audit import Actor, append
from slipway.errors import Conflict, NotFound, ValidationFailed
from slipway.ids import utcnow
from slipway.registry.models import check_slug
from slipway.store.engine import transaction
from slipway.store.tables import analysis_templates

__all__ = [
    "CHECKS",
    "DEFAULT",
    "SHARE_CHECKS",
    "AnalysisTemplate",
    "CheckSpec",
    "TemplateService",
]

CHECKS = (
    "error_rate",
    "latency_p99",
    "contract_violation_rate",
    "output_shift",
    "agreement",
    "label_quality",
)
# Checks whose threshold is a share or a difference of shares: meaningful only in [0, 1].
SHARE_CHECKS = frozenset({"error_rate", "contract_violation_rate", "agreement", "label_quality"})
_TOP_KEYS = ("name", "description", "inconclusive_wait", "checks")
_CHECK_KEYS = ("threshold", "min_samples", "critical", "enabled", "slack")
# Far above any real sample floor; keeps a typo (1e12) from silently disabling a check.
_MAX_MIN_SAMPLES = 10**9
_MAX_DESCRIPTION = 1000


@dataclass(frozen=True)
class CheckSpec:
    threshold: float
    min_samples: int  # fewer samples on either arm: the check is inconclusive
    critical: bool = True  # a failure fails the analysis; otherwise it is a warning
    enabled: bool = True
    slack: float = 0.0  # absolute tolerance added (latency: ms)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class AnalysisTemplate:
    name: str
    checks: Mapping[str, CheckSpec]  # every name in CHECKS present
    inconclusive_wait: float = 1.0  # extra step-durations to wait for enough data
    description: str = ""

    def __post_init__(self) -> None:
        missing = [c for c in CHECKS if c not in self.checks]
        unknown = sorted(set(self.checks) - set(CHECKS))
        if missing or unknown:
            raise ValueError(f"checks must be exactly {', '.join(CHECKS)}")
        # Read-only and in CHECKS order: DEFAULT is shared by every caller.
        frozen = MappingProxyType({c: self.checks[c] for c in CHECKS})
        object.__setattr__(self, "checks", frozen)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "inconclusive_wait": self.inconclusive_wait,
            "checks": {name: spec.to_dict() for name, spec in self.checks.items()},
        }

    @classmethod
    def from_dict(
        cls, name: str, data: Mapping[str, Any], base: AnalysisTemplate | None = None
    ) -> AnalysisTemplate:
        """Validate a (partial) spec; what it leaves out comes from ``base`` (DEFAULT).

        Errors name the dotted field, e.g. ``checks.latency_p99.threshold``.
        """
        base = DEFAULT if base is None else base
        if not isinstance(data, Mapping):
            raise ValidationFailed.field("spec", "must be an object")
        _no_unknown(data, _TOP_KEYS, "", "field")
        # to_dict writes the name; reading it back must work, renaming by it must not.
        if "name" in data and data["name"] != name:
            raise ValidationFailed.field("name", f"must be {name!r} or left out")
        description = data.get("description", base.description)
        if not isinstance(description, str) or len(description) > _MAX_DESCRIPTION:
            raise ValidationFailed.field(
                "description", f"must be a string of at most {_MAX_DESCRIPTION} characters"
            )
        wait = data.get("inconclusive_wait", base.inconclusive_wait)
        if not _is_number(wait) or wait < 0:
            raise ValidationFailed.field(
                "inconclusive_wait", "must be a number of step durations, 0 or more"
            )
        raw_checks = data.get("checks", {})
        if not isinstance(raw_checks, Mapping):
            raise ValidationFailed.field("checks", "must be an object of check name -> settings")
        _no_unknown(raw_checks, CHECKS, "checks.", "check")
        checks = {
            check: _check_spec(check, raw_checks.get(check, {}), base.checks[check])
            for check in CHECKS
        }
        return cls(name, checks, float(wait), description)

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> AnalysisTemplate:
        """This template with a rollout's overrides applied (None: unchanged)."""
        if overrides is None:
            return self
        return AnalysisTemplate.from_dict(self.name, overrides, base=self)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _no_unknown(data: Mapping[str, Any], allowed: tuple[str, ...], prefix: str, what: str) -> None:
    for key in data:
        if key not in allowed:
            raise ValidationFailed.field(
                f"{prefix}{key}", f"unknown {what}; allowed: {', '.join(allowed)}"
            )


def _check_spec(check: str, raw: Any, base: CheckSpec) -> CheckSpec:
    where = f"checks.{check}"
    if not isinstance(raw, Mapping):
        raise ValidationFailed.field(where, "must be an object")
    _no_unknown(raw, _CHECK_KEYS, f"{where}.", "field")
    threshold = raw.get("threshold", base.threshold)
    if check in SHARE_CHECKS:
        if not _is_number(threshold) or not 0 <= threshold <= 1:
            raise ValidationFailed.field(f"{where}.threshold", "must be a number between 0 and 1")
    elif not _is_number(threshold) or threshold <= 0:
        raise ValidationFailed.field(f"{where}.threshold", "must be a positive number")
    min_samples = raw.get("min_samples", base.min_samples)
    if (
        not isinstance(min_samples, int)
        or isinstance(min_samples, bool)
        or not 1 <= min_samples <= _MAX_MIN_SAMPLES
    ):
        raise ValidationFailed.field(
            f"{where}.min_samples", f"must be a whole number between 1 and {_MAX_MIN_SAMPLES}"
        )
    flags: dict[str, bool] = {}
    for key in ("critical", "enabled"):
        value = raw.get(key, getattr(base, key))
        if not isinstance(value, bool):
            raise ValidationFailed.field(f"{where}.{key}", "must be true or false")
        flags[key] = value
    slack = raw.get("slack", base.slack)
    if not _is_number(slack) or slack < 0:
        raise ValidationFailed.field(f"{where}.slack", "must be a number, 0 or more")
    return CheckSpec(float(threshold), min_samples, slack=float(slack), **flags)


DEFAULT = AnalysisTemplate(
    "default",
    {
        # canary rate - primary rate, absolute; samples: requests per arm
        "error_rate": CheckSpec(0.01, 100),
        # canary p99 / primary p99; samples: timed requests per arm
        # (p99 of fewer than 200 requests is little more than their maximum)
        "latency_p99": CheckSpec(1.5, 200, slack=5.0),
        # absolute increase; samples: offered rows (rows + violations) per arm
        "contract_violation_rate": CheckSpec(0.01, 100),
        # JS distance (categorical predictions) or W1 / std (numeric); predicted rows per arm
        # (at 500 rows a chance difference of 0.1 is ~4 standard errors for two classes)
        "output_shift": CheckSpec(0.1, 500),
        # min share of compared rows given the same class (classifiers); compared rows
        "agreement": CheckSpec(0.9, 200),
        # accuracy drop (classifiers) or relative MAE increase (regressors); labels per arm
        "label_quality": CheckSpec(0.02, 100),
    },
    inconclusive_wait=1.0,
    description="Built-in thresholds: errors, p99 latency, contract violations, "
    "output shift, agreement and label quality against the primary.",
)


def _spec(template: AnalysisTemplate) -> dict[str, Any]:
    return {k: v for k, v in template.to_dict().items() if k != "name"}


class TemplateService:
    """Stored templates plus the built-in ``default``; every change audited."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, name: str) -> AnalysisTemplate:
        if name == DEFAULT.name:
            return DEFAULT
        with self.engine.connect() as conn:
            row = conn.execute(
                select(analysis_templates).where(analysis_templates.c.name == name)
            ).first()
        if row is None:
            raise NotFound(f"analysis template {name!r} not found")
        return AnalysisTemplate.from_dict(name, row.spec)

    def list(self) -> builtins.list[AnalysisTemplate]:
        """``default`` first, then the stored ones by name."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(analysis_templates).order_by(analysis_templates.c.name)
            ).all()
        return [DEFAULT, *(AnalysisTemplate.from_dict(r.name, r.spec) for r in rows)]

    def put(self, name: str, spec: Mapping[str, Any], actor: Actor) -> AnalysisTemplate:
        """Create or replace ``name``; what ``spec`` leaves out comes from ``default``."""
        if name == DEFAULT.name:
            raise Conflict(
                "the built-in template 'default' cannot be changed; create one under another name"
            )
        check_slug(name)
        template = AnalysisTemplate.from_dict(name, spec)
        now = utcnow()
        try:
            with transaction(self.engine) as conn:
                row = conn.execute(
                    select(analysis_templates).where(analysis_templates.c.name == name)
                ).first()
                if row is None:
                    before = None
                    conn.execute(
                        insert(analysis_templates).values(
                            name=name,
                            spec=_spec(template),
                            created_by=actor.name,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                else:
                    before = {"name": name, **row.spec}
                    conn.execute(
                        update(analysis_templates)
                        .where(analysis_templates.c.name == name)
                        .values(spec=_spec(template), updated_at=now)
                    )
                append(
                    conn,
                    actor,
                    "analysis_template.put",
                    target_kind="analysis_template",
                    target=name,
                    before=before,
                    after=template.to_dict(),
                )
        except IntegrityError:
            # Two creations of the same name at once: the other one won.
            raise Conflict(
                f"analysis template {name!r} was created concurrently; try again"
            ) from None
        return template

    def delete(self, name: str, actor: Actor) -> None:
        if name == DEFAULT.name:
            raise Conflict("the built-in template 'default' cannot be deleted")
        with transaction(self.engine) as conn:
            row = conn.execute(
                select(analysis_templates).where(analysis_templates.c.name == name)
            ).first()
            if row is None:
                raise NotFound(f"analysis template {name!r} not found")
            conn.execute(analysis_templates.delete().where(analysis_templates.c.name == name))
            append(
                conn,
                actor,
                "analysis_template.delete",
                target_kind="analysis_template",
                target=name,
                before={"name": name, **row.spec},
            )
