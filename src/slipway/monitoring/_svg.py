"""Inline SVG charts for the HTML report: plain markup, no scripts, no external files.

:class:`Plot` maps data to pixels and draws bars, lines and axes; the three chart kinds
the report needs are a few calls on it::

    bar_chart("drift", ["age", "plan"], [Series("score", "#e8743b", [0.3, 0.02])],
              markers=[0.1, 0.1])                  # grouped bars, a threshold tick each
    histogram("age", [18, 30, 45, 90], [Series("reference", REFERENCE, [0.3, 0.4, 0.3])])
    line_chart("latency", [Series("p99", "#e8743b", [12.0, 15.5])], xs=[t0, t1])

Every text that reaches the markup goes through :func:`html.escape`: labels are user
data (feature names, category values).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

REFERENCE = "#7f8ea3"
CURRENT = "#e8743b"
ACCENT = "#3b7dd8"
ALARM = "#c62828"
MARK = "#3a4150"


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    values: Sequence[float | None]  # None: no value (drawn as a gap)
    colors: Sequence[str] = ()  # per value, overriding ``color`` (bars only)


def number(value: float) -> str:
    """Short tick text: 0.25, 1.2k, 3e-05."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value / 1000:.3g}k"
    return f"{value:.3g}" if magnitude >= 1e-3 else f"{value:.0e}"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round numbers (1, 2 or 5 times a power of ten) spanning the range."""
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        return [low] if math.isfinite(low) else []
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


@dataclass
class Plot:
    """A data rectangle inside an SVG canvas; methods take data coordinates."""

    x_range: tuple[float, float]
    y_range: tuple[float, float]
    width: int = 460
    height: int = 230
    left: int = 56
    right: int = 26
    top: int = 30
    bottom: int = 48
    parts: list[str] = field(default_factory=list)

    def px(self, x: float) -> float:
        lo, hi = self.x_range
        span = (hi - lo) or 1.0
        return self.left + (x - lo) / span * (self.width - self.left - self.right)

    def py(self, y: float) -> float:
        lo, hi = self.y_range
        span = (hi - lo) or 1.0
        clipped = min(max(y, lo), hi)
        return (
            self.height
            - self.bottom
            - (clipped - lo) / span * (self.height - self.top - self.bottom)
        )

    def bar(self, x0: float, x1: float, y: float, color: str, tip: str, opacity: float = 1) -> None:
        left, right = self.px(x0), self.px(x1)
        top, base = self.py(y), self.py(self.y_range[0])
        self.parts.append(
            f'<rect x="{left:.1f}" y="{top:.1f}" width="{max(right - left, 0.5):.1f}" '
            f'height="{max(base - top, 0):.1f}" fill="{color}" fill-opacity="{opacity}">'
            f"<title>{html.escape(tip)}</title></rect>"
        )

    def line(
        self,
        points: Sequence[tuple[float, float]],
        color: str,
        *,
        dashed: bool = False,
        dots: bool = False,
        tips: Sequence[str] = (),
    ) -> None:
        coords = " ".join(f"{self.px(x):.1f},{self.py(y):.1f}" for x, y in points)
        dash = ' stroke-dasharray="4 3"' if dashed else ""
        self.parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="1.6"{dash}/>'
        )
        if dots:
            for i, (x, y) in enumerate(points):
                tip = f"<title>{html.escape(tips[i])}</title>" if i < len(tips) and tips[i] else ""
                self.parts.append(
                    f'<circle cx="{self.px(x):.1f}" cy="{self.py(y):.1f}" r="2.6" '
                    f'fill="{color}">{tip}</circle>'
                )

    def render(
        self,
        title: str,
        x_ticks: Sequence[tuple[float, str]],
        y_label: str = "",
        legend: Sequence[Series] = (),
        slanted: bool = False,
        x_label: str = "",
    ) -> str:
        """The whole ``<svg>``: title, y grid with labels, x tick labels, legend, data."""
        bottom = self.height - self.bottom
        out = [
            f'<svg viewBox="0 0 {self.width} {self.height}" width="{self.width}" '
            f'height="{self.height}" role="img" aria-label="{html.escape(title)}">',
            f'<text x="{self.left}" y="16" class="t">{html.escape(title)}</text>',
        ]
        for tick in nice_ticks(*self.y_range):
            y = self.py(tick)
            out.append(
                f'<line x1="{self.left}" x2="{self.width - self.right}" y1="{y:.1f}" '
                f'y2="{y:.1f}" class="grid"/><text x="{self.left - 4}" y="{y + 3:.1f}" '
                f'text-anchor="end">{number(tick)}</text>'
            )
        for x, label in x_ticks:
            at = self.px(x)
            text = html.escape(label if len(label) <= 14 else label[:13] + "…")
            place = (
                f'transform="rotate(-35 {at:.1f} {bottom + 12})" text-anchor="end"'
                if slanted
                else 'text-anchor="middle"'
            )
            out.append(
                f'<text x="{at:.1f}" y="{bottom + 12}" {place}>{text}'
                f"<title>{html.escape(label)}</title></text>"
            )
        if x_label:
            out.append(
                f'<text x="{(self.left + self.width - self.right) / 2:.1f}" '
                f'y="{bottom + 30}" text-anchor="middle">{html.escape(x_label)}</text>'
            )
        if y_label:
            out.append(
                f'<text x="12" y="{(self.top + bottom) / 2:.1f}" text-anchor="middle" '
                f'transform="rotate(-90 12 {(self.top + bottom) / 2:.1f})">'
                f"{html.escape(y_label)}</text>"
            )
        legend_x = float(self.width - self.right)
        for s in reversed(legend):
            legend_x -= 8 + 6.5 * len(s.name) + 14
            out.append(
                f'<rect x="{legend_x:.1f}" y="8" width="10" height="10" fill="{s.color}"/>'
                f'<text x="{legend_x + 14:.1f}" y="17">{html.escape(s.name)}</text>'
            )
        out += self.parts
        out.append(
            f'<line x1="{self.left}" x2="{self.width - self.right}" y1="{bottom}" '
            f'y2="{bottom}" class="axis"/></svg>'
        )
        return "".join(out)


def _y_top(values: Sequence[float | None], floor: float = 0.0) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    top = max([floor, *finite]) if finite else floor
    return top * 1.08 if top > 0 else 1.0


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    markers: Sequence[float | None] = (),
    y_label: str = "",
    legend: Sequence[Series] | None = None,
) -> str:
    """Grouped bars, one group per label; ``markers`` draws a threshold tick per group.
    The legend names the series (when more than one), unless ``legend`` is given."""
    n = max(len(labels), 1)
    values = [v for s in series for v in s.values]
    plot = Plot((0.0, float(n)), (0.0, _y_top([*values, *markers])))
    plot.width = max(plot.width, min(60 + 34 * n * max(len(series), 1), 900))
    width = 0.8 / max(len(series), 1)
    for k, s in enumerate(series):
        for i, value in enumerate(s.values):
            if value is None or not math.isfinite(value):
                continue
            x0 = i + 0.1 + k * width
            tip = f"{labels[i]} · {s.name}: {value:.4g}"
            plot.bar(x0, x0 + width, value, s.colors[i] if i < len(s.colors) else s.color, tip)
    for i, mark in enumerate(markers):
        if mark is not None:
            plot.line([(i + 0.02, mark), (i + 0.98, mark)], MARK, dashed=True)
    ticks = [(i + 0.5, label) for i, label in enumerate(labels)]
    keys = list(legend if legend is not None else series if len(series) > 1 else ())
    if markers:
        keys.append(Series("threshold", MARK, ()))
    return plot.render(title, ticks, y_label, keys, slanted=n > 4)


def histogram(title: str, edges: Sequence[float], series: Sequence[Series]) -> str:
    """Bars between consecutive ``edges`` whose areas are the shares (height = density),
    so unequal bins (quantile edges) do not look heavier than they are. Overlaid."""
    widths = [hi - lo for lo, hi in zip(edges, edges[1:], strict=False)]
    densities = [
        [
            None if v is None else v / w if w > 0 else 0.0
            for v, w in zip(s.values, widths, strict=True)
        ]
        for s in series
    ]
    plot = Plot((edges[0], edges[-1]), (0.0, _y_top([v for d in densities for v in d])))
    for s, dens in zip(series, densities, strict=True):
        for i, d in enumerate(dens):
            if d is not None:
                tip = f"{s.name} [{edges[i]:.4g}, {edges[i + 1]:.4g}]: {s.values[i]:.1%}"
                plot.bar(edges[i], edges[i + 1], d, s.color, tip, opacity=0.55)
    ticks = [(t, number(t)) for t in nice_ticks(edges[0], edges[-1])]
    return plot.render(title, ticks, "density", series)


def line_chart(
    title: str,
    series: Sequence[Series],
    xs: Sequence[float],
    *,
    x_format: Callable[[float], str] = number,
    x_ticks: Sequence[float] | None = None,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    y_label: str = "",
    x_label: str = "",
    diagonal: bool = False,
    tips: Sequence[str] = (),
) -> str:
    """Lines over shared ``xs`` (gaps at None); dots when there are few points."""
    lo, hi = x_range or (min(xs, default=0.0), max(xs, default=1.0))
    if hi <= lo:
        lo, hi = lo - 1, hi + 1
    values = [v for s in series for v in s.values]
    plot = Plot((lo, hi), y_range or (0.0, _y_top(values)))
    if diagonal:
        plot.line([(lo, lo), (hi, hi)], REFERENCE, dashed=True)
    for s in series:
        dots = sum(v is not None for v in s.values) <= 60
        run: list[tuple[float, float, str]] = []
        for i, (x, v) in enumerate([*zip(xs, s.values, strict=True), (math.nan, None)]):
            if v is not None and math.isfinite(v):
                run.append((x, v, tips[i] if i < len(tips) else ""))
            elif run:  # a missing value ends the line: a gap, not a bridge
                points = [(px, pv) for px, pv, _ in run]
                plot.line(points, s.color, dots=dots, tips=[t for *_, t in run])
                run = []
    ticks = [(t, x_format(t)) for t in (nice_ticks(lo, hi, 4) if x_ticks is None else x_ticks)]
    return plot.render(title, ticks, y_label, series if len(series) > 1 else (), x_label=x_label)
