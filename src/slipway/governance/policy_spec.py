"""The policy language: YAML in, a validated :class:`PolicySpec` out.

A policy names the endpoints it guards (fnmatch patterns), the actions it is checked on
and its checks, each with an id unique within the policy::

    name: production
    applies_to: {endpoints: ["prod-*"]}
    on: [deploy, rollout_start, promote]        # default: all three
    checks:
      - type: metadata
        require: [owner, runbook_url, risk_tier, contract]
      - {type: metric, metric: auc, op: ">=", value: 0.80, per_slice: true}
      - {id: auc-vs-current, type: metric, metric: auc, op: ">=", relative_to: current,
         delta: -0.01}
      - {type: baseline, metrics: {auc: ">="}, margin: 0.02}
      - type: no_breaking_change
      - {type: artifact, allow_code: false}
      - {type: evaluation_age, max_days: 30}
      - type: approvals
        by_risk_tier: {medium: {count: 1}, high: {count: 2, role: approver}}

A check without ``id`` gets its type, then ``<type>-2``, ``<type>-3``... Every error
names the path of the bad value, e.g. ``checks[2].op``. ``applies_to.stages`` takes
name patterns too: a stage is the set of endpoints whose names match (``prod-*``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, TypeGuard

import yaml

from slipway.access.authz import ROLES
from slipway.errors import ValidationFailed
from slipway.registry.models import RISK_TIERS, check_slug

ACTIONS = ("deploy", "rollout_start", "promote")
CHECK_TYPES = (
    "metadata",
    "metric",
    "baseline",
    "no_breaking_change",
    "artifact",
    "evaluation_age",
    "approvals",
)
# What ``metadata.require`` may name: model fields (non-empty), the version's stored
# contract and its reference profile.
MODEL_FIELDS = ("owner", "oncall", "runbook_url", "intended_use", "limitations", "description")
METADATA = (*MODEL_FIELDS, "risk_tier", "contract", "reference_profile")
OPS = (">=", "<=")
# Formats that are data, not code: loading them runs no code of the uploader's.
SAFE_FLAVORS = ("sklearn", "onnx", "xgboost", "lightgbm")
CODE_FLAVORS = ("pyfunc",)
MAX_SOURCE_BYTES = 64 * 1024
MAX_CHECKS = 100
MAX_PATTERNS = 100
MAX_DESCRIPTION = 2000
_ID = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$")
_TOP_KEYS = ("name", "description", "applies_to", "on", "checks")
_APPLIES_KEYS = ("endpoints", "stages")
# Keys each check type takes besides ``id`` and ``type``.
_CHECK_KEYS: dict[str, tuple[str, ...]] = {
    "metadata": ("require",),
    "metric": ("metric", "op", "value", "relative_to", "delta", "per_slice"),
    "baseline": ("metrics", "margin"),
    "no_breaking_change": (),
    "artifact": ("allow_code", "formats"),
    "evaluation_age": ("max_days",),
    "approvals": ("count", "role", "by_risk_tier"),
}


@dataclass(frozen=True)
class CheckSpec:
    """One check: ``options`` holds its type's fields, validated, defaults filled in."""

    id: str
    type: str
    options: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, **self.options}


@dataclass(frozen=True)
class PolicySpec:
    name: str
    description: str
    endpoints: tuple[str, ...]
    stages: tuple[str, ...]
    actions: tuple[str, ...]
    checks: tuple[CheckSpec, ...]

    def applies(self, endpoint: str, action: str) -> bool:
        patterns = (*self.endpoints, *self.stages)
        return action in self.actions and any(fnmatchcase(endpoint, p) for p in patterns)

    def to_dict(self) -> dict[str, Any]:
        applies_to: dict[str, Any] = {}
        if self.endpoints:
            applies_to["endpoints"] = list(self.endpoints)
        if self.stages:
            applies_to["stages"] = list(self.stages)
        return {
            "name": self.name,
            "description": self.description,
            "applies_to": applies_to,
            "on": list(self.actions),
            "checks": [c.to_dict() for c in self.checks],
        }

    @classmethod
    def from_dict(cls, name: str, data: Any) -> PolicySpec:
        """Validate a parsed policy (or read back a stored spec) named ``name``."""
        check_slug(name)
        if not isinstance(data, Mapping):
            raise ValidationFailed.field("source", "must be a YAML mapping (name, applies_to...)")
        _no_unknown(data, _TOP_KEYS, "")
        if data.get("name") is not None and data["name"] != name:
            raise ValidationFailed.field(
                "name", f"is {data['name']!r}; must be {name!r} or left out"
            )
        description = data.get("description") or ""
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
            raise ValidationFailed.field(
                "description", f"must be a string of at most {MAX_DESCRIPTION} characters"
            )
        endpoints, stages = _applies_to(data.get("applies_to"))
        return cls(
            name=name,
            description=description,
            endpoints=endpoints,
            stages=stages,
            actions=_actions(data.get("on")),
            checks=_checks(data.get("checks")),
        )


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load`` with YAML 1.2 booleans: only true and false. YAML 1.1 reads
    ``on``, ``off``, ``yes`` and ``no`` as booleans, which would turn the ``on:`` key
    into ``True``."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def parse_policy(name: str, source: Any) -> PolicySpec:
    """Parse policy YAML ``source`` (safe loading: no tags, no objects)."""
    if not isinstance(source, str) or not source.strip():
        raise ValidationFailed.field("source", "must be the policy's YAML text")
    if len(source.encode()) > MAX_SOURCE_BYTES:
        raise ValidationFailed.field("source", f"at most {MAX_SOURCE_BYTES // 1024} KiB")
    try:
        data = yaml.load(source, Loader=_Loader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "unreadable"
        raise ValidationFailed.field("source", f"not valid YAML{where}: {problem}") from None
    return PolicySpec.from_dict(name, data)


# -- the parts ------------------------------------------------------------------------


def _no_unknown(data: Mapping[Any, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in allowed:
            path = f"{where}.{key}" if where else str(key)
            raise ValidationFailed.field(path, f"unknown field; allowed: {', '.join(allowed)}")


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _strings(value: Any, where: str, *, allowed: tuple[str, ...] | None = None) -> list[str]:
    """A non-empty list of distinct non-empty strings (each in ``allowed`` if given)."""
    if not isinstance(value, list) or not value:
        raise ValidationFailed.field(where, "must be a non-empty list")
    out: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise ValidationFailed.field(f"{where}[{i}]", "must be a non-empty string")
        if allowed is not None and item not in allowed:
            raise ValidationFailed.field(f"{where}[{i}]", f"must be one of {', '.join(allowed)}")
        if item in out:
            raise ValidationFailed.field(f"{where}[{i}]", f"{item!r} is listed twice")
        out.append(item)
    return out


def _applies_to(value: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if not isinstance(value, Mapping):
        raise ValidationFailed.field(
            "applies_to", 'is required: {endpoints: [patterns]} ("*" for every endpoint)'
        )
    _no_unknown(value, _APPLIES_KEYS, "applies_to")
    found: dict[str, list[str]] = {}
    for key in _APPLIES_KEYS:
        if value.get(key) is not None:
            found[key] = _strings(value[key], f"applies_to.{key}")
            if len(found[key]) > MAX_PATTERNS:
                raise ValidationFailed.field(f"applies_to.{key}", f"at most {MAX_PATTERNS}")
    if not found:
        raise ValidationFailed.field("applies_to", "needs endpoints or stages (name patterns)")
    return tuple(found.get("endpoints", ())), tuple(found.get("stages", ()))


def _actions(value: Any) -> tuple[str, ...]:
    if value is None:
        return ACTIONS
    return tuple(_strings(value, "on", allowed=ACTIONS))


def _checks(value: Any) -> tuple[CheckSpec, ...]:
    if not isinstance(value, list) or not value:
        raise ValidationFailed.field("checks", "must be a non-empty list of checks")
    if len(value) > MAX_CHECKS:
        raise ValidationFailed.field("checks", f"at most {MAX_CHECKS} checks")
    parsed: list[tuple[str | None, str, dict[str, Any]]] = []
    taken: set[str] = set()
    for i, raw in enumerate(value):
        where = f"checks[{i}]"
        if not isinstance(raw, Mapping):
            raise ValidationFailed.field(where, "must be a mapping with a type")
        kind = raw.get("type")
        if kind not in CHECK_TYPES:
            raise ValidationFailed.field(
                f"{where}.type", f"must be one of {', '.join(CHECK_TYPES)}"
            )
        _no_unknown(raw, ("id", "type", *_CHECK_KEYS[kind]), where)
        check_id = raw.get("id")
        if check_id is not None:
            if not isinstance(check_id, str) or not _ID.match(check_id):
                raise ValidationFailed.field(
                    f"{where}.id", "must be 1-64 lowercase letters, digits, '-' or '_'"
                )
            if check_id in taken:
                raise ValidationFailed.field(f"{where}.id", f"{check_id!r} is used twice")
            taken.add(check_id)
        options = {k: v for k, v in raw.items() if k not in ("id", "type")}
        parsed.append((check_id, kind, _OPTIONS[kind](options, where)))
    checks: list[CheckSpec] = []
    for given, kind, options in parsed:
        check_id = given
        if check_id is None:  # type, then type-2, type-3... skipping ids given explicitly
            check_id, n = kind, 1
            while check_id in taken:
                n += 1
                check_id = f"{kind}-{n}"
            taken.add(check_id)
        checks.append(CheckSpec(check_id, kind, options))
    return tuple(checks)


def _metadata(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    return {"require": _strings(raw.get("require"), f"{where}.require", allowed=METADATA)}


def _op(value: Any, where: str) -> str:
    if value not in OPS:
        raise ValidationFailed.field(where, f"must be one of {', '.join(OPS)}")
    return str(value)


def _metric_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 64:
        raise ValidationFailed.field(where, "must be a metric name (1-64 characters)")
    return value


def _metric(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "metric": _metric_name(raw.get("metric"), f"{where}.metric"),
        "op": _op(raw.get("op"), f"{where}.op"),
    }
    relative = raw.get("relative_to")
    value = raw.get("value")
    if (value is None) == (relative is None):
        raise ValidationFailed.field(
            where, "needs either value (an absolute threshold) or relative_to: current"
        )
    if relative is not None:
        if relative != "current":
            raise ValidationFailed.field(f"{where}.relative_to", "must be current")
        delta = raw.get("delta", 0.0)
        if not _is_number(delta):
            raise ValidationFailed.field(f"{where}.delta", "must be a number")
        if raw.get("per_slice"):
            raise ValidationFailed.field(
                f"{where}.per_slice", "works with an absolute value only, not relative_to"
            )
        out.update(relative_to="current", delta=float(delta))
        return out
    if "delta" in raw:
        raise ValidationFailed.field(f"{where}.delta", "only with relative_to: current")
    if not _is_number(value):
        raise ValidationFailed.field(f"{where}.value", "must be a number")
    per_slice = raw.get("per_slice", False)
    if not isinstance(per_slice, bool):
        raise ValidationFailed.field(f"{where}.per_slice", "must be true or false")
    out.update(value=float(value), per_slice=per_slice)
    return out


def _baseline(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    metrics = raw.get("metrics")
    if not isinstance(metrics, Mapping) or not metrics:
        raise ValidationFailed.field(f"{where}.metrics", 'must map metric names to ">=" or "<="')
    clean = {
        _metric_name(name, f"{where}.metrics"): _op(op, f"{where}.metrics.{name}")
        for name, op in metrics.items()
    }
    margin = raw.get("margin", 0.0)
    if not _is_number(margin) or margin < 0:
        raise ValidationFailed.field(f"{where}.margin", "must be a number, 0 or more")
    return {"metrics": clean, "margin": float(margin)}


def _no_breaking_change(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    return {}


def _artifact(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    allow_code = raw.get("allow_code", False)
    if not isinstance(allow_code, bool):
        raise ValidationFailed.field(f"{where}.allow_code", "must be true or false")
    formats = raw.get("formats")
    if formats is None:
        allowed = [*SAFE_FLAVORS, *(CODE_FLAVORS if allow_code else ())]
    else:
        allowed = _strings(formats, f"{where}.formats")
        code = [f for f in allowed if f in CODE_FLAVORS]
        if code and not allow_code:
            raise ValidationFailed.field(
                f"{where}.formats", f"{code[0]} is Python code: it needs allow_code: true"
            )
    return {"allow_code": allow_code, "formats": allowed}


def _evaluation_age(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    max_days = raw.get("max_days")
    if not _is_number(max_days) or max_days <= 0:
        raise ValidationFailed.field(f"{where}.max_days", "must be a number of days above 0")
    return {"max_days": float(max_days)}


def _requirement(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise ValidationFailed.field(where, "must be a mapping: {count: N, role: ROLE}")
    _no_unknown(raw, ("count", "role"), where)
    count = raw.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 20:
        raise ValidationFailed.field(f"{where}.count", "must be a whole number from 0 to 20")
    role = raw.get("role", "approver")
    if role not in ROLES:
        raise ValidationFailed.field(f"{where}.role", f"must be one of {', '.join(ROLES)}")
    return {"count": count, "role": role}


def _approvals(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``count``/``role`` for every risk tier, or ``by_risk_tier``; a tier left out of
    ``by_risk_tier`` needs no approval."""
    by_tier = raw.get("by_risk_tier")
    flat = {k: raw[k] for k in ("count", "role") if k in raw}
    if (by_tier is None) == (not flat):
        raise ValidationFailed.field(where, "needs either count (and role) or by_risk_tier")
    if by_tier is None:
        rule = _requirement(flat, where)
        return {"by_risk_tier": {tier: rule for tier in RISK_TIERS}}
    if not isinstance(by_tier, Mapping) or not by_tier:
        raise ValidationFailed.field(f"{where}.by_risk_tier", "must map risk tiers to rules")
    _no_unknown(by_tier, RISK_TIERS, f"{where}.by_risk_tier")
    return {
        "by_risk_tier": {
            tier: _requirement(by_tier[tier], f"{where}.by_risk_tier.{tier}")
            for tier in RISK_TIERS
            if tier in by_tier
        }
    }


_OPTIONS = {
    "metadata": _metadata,
    "metric": _metric,
    "baseline": _baseline,
    "no_breaking_change": _no_breaking_change,
    "artifact": _artifact,
    "evaluation_age": _evaluation_age,
    "approvals": _approvals,
}
