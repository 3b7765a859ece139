"""Serving limits: bounded work, deadlines and micro-batching, per endpoint.

Five limits shape how an endpoint is served in each worker: ``max_inflight`` requests run
at once, ``max_queue`` more may wait, a request not started ``request_timeout_s`` after
it arrived is refused (504), and micro-batching merges up to ``batch_max_rows`` rows,
waiting up to ``batch_wait_ms`` for more. The server's settings give the defaults; an
endpoint may override any of them (stored on its row, NULL meaning "the server's"), so a
slow model can get a small queue and a short deadline while a cheap one next to it
takes heavy traffic.

The ranges are declared once here and checked both for the server-wide settings and for
an endpoint's overrides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slipway.errors import ValidationFailed


@dataclass(frozen=True)
class LimitRange:
    """What values one limit accepts: an integer or a number in [low, high] (or
    (low, high] when ``low_open``)."""

    integer: bool
    low: float
    high: float
    low_open: bool = False
    unit: str = ""

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.integer:
            return f"must be an integer{unit} from {self.low:g} to {self.high:g}"
        opening = "(" if self.low_open else "["
        return f"must be a number{unit} in {opening}{self.low:g}, {self.high:g}]"

    def check(self, field: str, value: Any) -> int | float:
        """``value`` as an int or float, or :class:`ValidationFailed` naming ``field``
        and the allowed range."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationFailed.field(field, self.describe())
        if self.integer and isinstance(value, float):
            if not value.is_integer():
                raise ValidationFailed.field(field, self.describe())
            value = int(value)
        if not math.isfinite(value):
            raise ValidationFailed.field(field, self.describe())
        too_low = value <= self.low if self.low_open else value < self.low
        if too_low or value > self.high:
            raise ValidationFailed.field(field, self.describe())
        return int(value) if self.integer else float(value)


# The ceiling of request_timeout_s is also the most a caller's X-Slipway-Timeout-Ms asks.
MAX_TIMEOUT_S = 600.0

RANGES: dict[str, LimitRange] = {
    "max_inflight": LimitRange(integer=True, low=1, high=10_000),
    "max_queue": LimitRange(integer=True, low=0, high=100_000),
    "request_timeout_s": LimitRange(
        integer=False, low=0, high=MAX_TIMEOUT_S, low_open=True, unit="of seconds"
    ),
    # 0 turns micro-batching off.
    "batch_max_rows": LimitRange(integer=True, low=0, high=10_000),
    "batch_wait_ms": LimitRange(integer=False, low=0, high=1_000, unit="of milliseconds"),
}
LIMIT_NAMES: tuple[str, ...] = tuple(RANGES)


@dataclass(frozen=True)
class ServingLimits:
    """The limits an endpoint is served with: its overrides over the server's."""

    max_inflight: int
    max_queue: int
    request_timeout_s: float
    batch_max_rows: int
    batch_wait_ms: float

    def to_dict(self) -> dict[str, int | float]:
        return {name: getattr(self, name) for name in LIMIT_NAMES}


@dataclass(frozen=True)
class EndpointLimits:
    """The five limits; ``None`` means "not set here" (for an endpoint: the server's)."""

    max_inflight: int | None = None
    max_queue: int | None = None
    request_timeout_s: float | None = None
    batch_max_rows: int | None = None
    batch_wait_ms: float | None = None

    @classmethod
    def of_row(cls, row: Any) -> EndpointLimits:
        """The overrides stored on an ``endpoints`` row (any object with the columns)."""
        return cls(**{name: getattr(row, name) for name in LIMIT_NAMES})

    def over(self, defaults: ServingLimits) -> ServingLimits:
        """These limits, each unset one taken from ``defaults``."""
        merged = {name: getattr(self, name) for name in LIMIT_NAMES}
        for name, own in merged.items():
            if own is None:
                merged[name] = getattr(defaults, name)
        return ServingLimits(**merged)

    def to_dict(self) -> dict[str, int | float | None]:
        return {name: getattr(self, name) for name in LIMIT_NAMES}


def check_limits(limits: Mapping[str, Any]) -> dict[str, int | float | None]:
    """Validate endpoint overrides: known names only, each ``None`` (clear the override)
    or within its range. Returns them normalized (ints as ints, numbers as floats)."""
    checked: dict[str, int | float | None] = {}
    for name, value in limits.items():
        rule = RANGES.get(name)
        if rule is None:
            raise ValidationFailed.field(name, f"unknown limit; one of {', '.join(LIMIT_NAMES)}")
        checked[name] = None if value is None else rule.check(name, value)
    return checked
