"""Monitoring reports rendered from summaries a real server built.

One server for the module: a churn classifier (two numeric features and one string
feature whose values include ``<script>``) registered with its training data, deployed,
sent the older half of its customers (so ``age`` drifts), then labelled; and a second
endpoint with no profile, no traffic and no labels.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from slipway.monitoring.report import ms, render_html, render_terminal
from tests.conftest import make_server

pytestmark = pytest.mark.e2e

EVIL = "<script>alert(1)</script>"


def churn_data(n: int = 1200, seed: int = 0) -> tuple[Any, np.ndarray]:
    import pandas as pd

    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "income": rng.normal(50, 15, n),
            "plan": rng.choice(["basic", "pro", EVIL], n, p=[0.5, 0.3, 0.2]),
        }
    )
    y = np.where(X["age"] + rng.normal(0, 6, n) > 40, "yes", "no")
    return X, y


def churn_model(X: Any, y: np.ndarray) -> Any:
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    # Fitted on an array, columns by position: the server hands the model a 2-D array
    # in signature order.
    encode = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), [2]), remainder=StandardScaler()
    )
    return make_pipeline(encode, LogisticRegression()).fit(X.to_numpy(dtype=object), y)


@pytest.fixture(scope="module")
def summaries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    server = make_server(tmp_path_factory.mktemp("report") / "home")
    server.init()
    server.start()
    try:
        X, y = churn_data()
        model = churn_model(X, y)
        with server.client() as c:
            v = c.register(model, name="churn", X_train=X, y_train=y, owner="growth")
            assert v["status"] == "ready", v
            c.deploy("churn", model="churn", version=v["number"])
            older = X.sort_values("age").index[-600:]  # the older half: age drifts
            answer = c.predict("churn", X.loc[older].to_dict("records"))
            ids = [p["id"] for p in answer["predictions"]]
            report = c.send_feedback("churn", dict(zip(ids[:300], y[older][:300], strict=True)))
            assert report["accepted"] == 300, report
            c.create_monitor(
                "churn", name="any-traffic", metric="requests", threshold=0, min_samples=0
            )
            c.evaluate_monitors("churn")  # fires: one request > 0
            full = c.monitoring("churn", window=3600)

            quiet = c.register(
                model, name="quiet", X_train=X, y_train=y, owner="growth", profile=False
            )
            c.deploy("quiet", model="quiet", version=quiet["number"])
            empty = c.monitoring("quiet", window=3600)
        yield {"full": full, "empty": empty}
    except BaseException:
        print(server.log()[-5000:])
        raise
    finally:
        server.stop()


def _svg(page: str, label: str) -> str:
    """The chart whose aria-label is ``label`` (already escaped)."""
    match = re.search(rf'<svg[^>]*aria-label="{re.escape(label)}".*?</svg>', page, re.S)
    assert match, f"no chart {label!r}"
    return match.group(0)


def test_html_is_one_self_contained_file(summaries: dict[str, Any]) -> None:
    page = render_html(summaries["full"])
    assert page.startswith("<!doctype html>") and page.count("<html") == 1
    # Nothing fetched: no scripts, links, images, fonts, imports or URLs at all; and the
    # category value "<script>..." from the data never appears unescaped.
    for needle in ("<script", "src=", "href=", "url(", "@import", "http://", "https://"):
        assert needle not in page, needle
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_html_plots_every_distribution_drift_series_and_reliability(
    summaries: dict[str, Any],
) -> None:
    summary = summaries["full"]
    page = render_html(summary)
    distributions = summary["distributions"]
    assert {"age", "income", "plan", "[prediction]", "[score]"} <= set(distributions)
    for name in distributions:
        _svg(page, name)
    assert page.count("<svg") == len(distributions) + 4  # + drift, latency, requests, reliability

    # Numeric: a histogram over the given edges, each bar as wide as its bin.
    age = distributions["age"]
    chart = _svg(page, "age")
    bars = re.findall(
        r'<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)"[^>]*><title>reference', chart
    )
    assert len(bars) == len(age["edges"]) - 1 == len(age["reference"])
    widths = np.array([float(w) for _, w in bars])
    bins = np.diff(age["edges"])
    assert np.allclose(widths / widths.sum(), bins / bins.sum(), atol=0.003)
    # Categorical: grouped bars, one reference and one current bar per item.
    plan = _svg(page, "plan")
    assert plan.count("· reference:") == plan.count("· current:") == 3
    assert "&lt;script&gt;alert(1)&lt;/script&gt; · current:" in plan

    drift = _svg(page, "Drift score by column")
    assert "age · score:" in drift and "threshold" in drift
    assert "Latency over time" in page and "Requests over time" in page
    reliability = _svg(page, "Reliability: confidence vs accuracy")
    assert "stroke-dasharray" in reliability  # the diagonal
    shown = [b for b in summary["quality"]["reliability"] if b["count"]]
    assert reliability.count("<circle") == len(shown) > 0


def test_html_tables_show_monitors_and_firing_alerts(summaries: dict[str, Any]) -> None:
    summary = summaries["full"]
    page = render_html(summary)
    firing = {(a["monitor"], a["subject"]): a for a in summary["alerts"]}
    assert {("any-traffic", ""), ("feature-drift", "age")} <= set(firing)
    assert all(a["id"] in page for a in firing.values())
    assert '<td class="breach">breach</td>' in page  # the any-traffic monitor
    assert '<td class="drift">drift</td>' in page  # age
    assert "label delay p50" in page


def test_terminal_shows_the_key_numbers(summaries: dict[str, Any]) -> None:
    summary = summaries["full"]
    console = Console(record=True, width=200, force_terminal=True, color_system="standard")
    render_terminal(summary, console)
    styled = console.export_text(styles=True, clear=False)
    text = console.export_text()
    assert "churn v1" in text and "(1 h)" in text
    assert "600" in text  # rows
    assert ms(summary["traffic"]["latency_ms"]["p99"]) in text
    quality = summary["quality"]
    assert quality["n"] == 300
    assert f"{quality['accuracy']:.4g}" in text and f"{quality['roc_auc']:.4g}" in text
    assert "label delay p95" in text
    drift = {c["column"]: c for c in summary["drift"]["columns"]}
    assert (drift["age"]["verdict"], drift["income"]["verdict"]) == ("drift", "ok")
    assert f"{drift['age']['score']:.4g}" in text
    assert text.index("│ age ") < text.index("│ income ")  # ranked: drift first
    assert "\x1b[31mdrift" in styled and "\x1b[31mbreach" in styled  # red
    assert "\x1b[32mok" in styled  # green
    assert summary["alerts"][0]["id"] in text


@pytest.mark.parametrize("kind", ["server", "all-none", "bare"])
def test_an_empty_summary_renders_both_ways(
    summaries: dict[str, Any], kind: str, tmp_path: Path
) -> None:
    empty = summaries["empty"]
    assert empty["drift"] is None and empty["quality"] is None
    assert empty["traffic"]["requests"] == 0 and empty["series"] == []
    summary = {
        "server": empty,
        "all-none": {key: None for key in empty},
        "bare": {},
    }[kind]
    console = Console(record=True, width=160)
    render_terminal(summary, console)
    text = console.export_text()
    assert "no labels in this window" in text and "—" in text
    page = render_html(summary)
    assert "<svg" not in page  # nothing to plot
    assert "no labels in this window" in page and "no predictions" in page
    if kind == "server":
        assert "no reference profile" in text and "quiet v1" in text
