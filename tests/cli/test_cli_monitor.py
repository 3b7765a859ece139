"""``slipway monitor|alert|channel|feedback`` against a real server.

Models are set up through the SDK (not what is tested here): classifiers registered
with their training data and sent a few hundred rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.cli.expect import as_json, assert_clean_failure
from tests.conftest import ServerProcess

pytestmark = pytest.mark.e2e


def deploy_classifier(
    server: ServerProcess, endpoint: str, classes: tuple[Any, Any]
) -> dict[str, Any]:
    """Register a classifier answering ``classes`` with its training data (so drift has a
    reference), deploy it on ``endpoint`` and send it 300 rows; the prediction ids and
    the true labels of those rows."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    X = pd.DataFrame({"x0": rng.normal(0, 1, 400), "x1": rng.normal(0, 1, 400)})
    positive = (X["x0"] + X["x1"] + rng.normal(0, 0.5, 400) > 0).to_numpy()
    y = np.array([classes[int(p)] for p in positive])
    model = LogisticRegression().fit(X.to_numpy(), y)
    with server.client() as c:
        v = c.register(model, name=endpoint, X_train=X, y_train=y, owner="ml")
        assert v["status"] == "ready", v
        c.deploy(endpoint, model=endpoint, version=v["number"])
        answer = c.predict(endpoint, X.iloc[:300].to_dict("records"))
    assert {p["prediction"] for p in answer["predictions"]} == set(classes)
    return {"ids": [p["id"] for p in answer["predictions"]], "labels": y[:300].tolist()}


@pytest.fixture(scope="module")
def served(shared_server: ServerProcess) -> dict[str, Any]:
    """Endpoint ``scoring``: a classifier of "no" and "yes"."""
    return deploy_classifier(shared_server, "scoring", ("no", "yes"))


def test_report_as_tables_json_and_html(
    shared_server: ServerProcess, served: dict[str, Any], tmp_path: Path
) -> None:
    cli = shared_server.cli
    text = cli("monitor", "report", "scoring", "--window", "1h").stdout
    assert "scoring" in text and "scoring v1" in text and "(1 h)" in text
    assert "Traffic & latency" in text and "300" in text and "Drift" in text

    summary = as_json(cli("monitor", "report", "scoring", "--window", "90m", "--json"))
    assert summary["window"]["seconds"] == 5400 and summary["traffic"]["rows"] == 300
    assert {"x0", "x1"} <= {c["column"] for c in summary["drift"]["columns"]}

    out = tmp_path / "scoring.html"
    result = cli("monitor", "report", "scoring", "--version", "1", "--html", str(out))
    assert result.stdout.strip() == str(out)
    page = out.read_text()
    assert page.startswith("<!doctype html>") and 'aria-label="x0"' in page


def test_a_bad_window_is_refused_with_the_option_named(shared_server: ServerProcess) -> None:
    result = shared_server.cli("monitor", "report", "scoring", "--window", "5x", check=False)
    line = assert_clean_failure(result, "invalid_field")
    assert "--window" in line and "'5x'" in line


def test_monitor_create_list_update_delete(
    shared_server: ServerProcess, served: dict[str, Any]
) -> None:
    cli = shared_server.cli
    created = as_json(
        cli(
            *("monitor", "create", "scoring", "--name", "x0-drift", "--metric", "feature_drift"),
            *("--feature", "x0", "--window", "15m", "--threshold", "0.3", "--json"),
        )
    )
    assert (created["feature"], created["window_s"], created["op"]) == ("x0", 900, ">")
    assert (created["threshold"], created["min_samples"], created["builtin"]) == (0.3, 100, False)
    table = cli("monitor", "list", "scoring").stdout
    assert "x0-drift" in table and "15m" in table and "error-rate" in table  # + built-ins

    updated = as_json(
        cli("monitor", "update", "scoring", "x0-drift", "--threshold", "0.5", "--disable", "--json")
    )
    assert (updated["threshold"], updated["enabled"]) == (0.5, False)
    assert (updated["window_s"], updated["feature"]) == (900, "x0")  # not given: kept

    nothing = cli("monitor", "update", "scoring", "x0-drift", check=False)
    assert "options" in assert_clean_failure(nothing, "invalid_field")
    bad = cli(
        *("monitor", "create", "scoring", "--name", "m", "--metric", "vibes", "--threshold", "1"),
        check=False,
    )
    assert "metric" in assert_clean_failure(bad, "invalid_field").split(":")[1]

    assert "deleted monitor x0-drift" in cli("monitor", "delete", "scoring", "x0-drift").stdout
    names = {m["name"] for m in as_json(cli("monitor", "list", "scoring", "--json"))}
    assert "x0-drift" not in names and "error-rate" in names


def test_channels_checks_and_alerts(shared_server: ServerProcess, served: dict[str, Any]) -> None:
    cli = shared_server.cli
    channel = as_json(
        cli(
            *("channel", "add", "ops-log", "--kind", "log", "--endpoint", "scoring"),
            *("--min-severity", "warning", "--json"),
        )
    )
    assert (channel["kind"], channel["endpoints"], channel["url"]) == ("log", ["scoring"], "")
    assert "ops-log" in cli("channel", "list").stdout
    assert "channel ops-log: delivered" in cli("channel", "test", "ops-log").stdout

    with shared_server.client() as c:
        c.create_monitor(
            "scoring", name="any-traffic", metric="requests", threshold=0, min_samples=0
        )
    checked = cli("monitor", "check", "scoring")  # exit 0 although a monitor breaches
    assert "breach" in checked.stdout and "fired alert" in checked.stdout
    assert "Firing alerts" in checked.stdout and "any-traffic" in checked.stdout

    firing = as_json(cli("alert", "list", "--endpoint", "scoring", "--state", "firing", "--json"))
    [alert] = [a for a in firing if a["monitor"] == "any-traffic"]
    shown = cli("alert", "show", alert["id"]).stdout
    assert "deliveries" in shown and "ops-log" in shown and "firing" in shown
    resolved = cli("alert", "resolve", alert["id"], "--reason", "expected traffic")
    assert f"resolved alert {alert['id']}" in resolved.stdout
    states = {a["id"]: a["state"] for a in as_json(cli("alert", "list", "--json"))}
    assert states[alert["id"]] == "resolved"

    assert "removed channel ops-log" in cli("channel", "remove", "ops-log").stdout
    gone = cli("channel", "test", "ops-log", check=False)
    assert_clean_failure(gone, "not_found")


def test_feedback_send_reports_unknown_ids_and_fails(
    shared_server: ServerProcess, served: dict[str, Any], tmp_path: Path
) -> None:
    cli = shared_server.cli
    ids, labels = served["ids"], served["labels"]
    csv = tmp_path / "labels.csv"
    lines = [f"{i},{label}" for i, label in zip(ids[:200], labels[:200], strict=True)]
    # One unknown id, one malformed id (the server says so), one empty label (the CLI does).
    bad = ["ffff0000-7,yes", "not-an-id,no", f"{ids[250]},"]
    csv.write_text("prediction_id,label\n" + "\n".join([*lines, *bad]) + "\n")
    result = cli("feedback", "send", "scoring", str(csv), check=False)
    assert result.returncode == 1, result.stderr
    assert "accepted 200, updated 0, unknown 1, invalid 2" in result.stdout
    assert "unknown ids: ffff0000-7" in result.stderr and "Traceback" not in result.stderr
    assert "invalid item 202: prediction_id:" in result.stderr
    assert "invalid item 203: label: required" in result.stderr

    # JSON lines from stdin; a second label for an id updates it.
    jsonl = "\n".join(
        json.dumps({"prediction_id": i, "label": label})
        for i, label in zip(ids[190:250], labels[190:250], strict=True)
    )
    report = as_json(cli("feedback", "send", "scoring", "-", "--json", input=jsonl))
    assert (report["accepted"], report["updated"], report["unknown"]) == (50, 10, [])
    quality = as_json(cli("monitor", "report", "scoring", "--json"))["quality"]
    assert quality["n"] == 250 and quality["accuracy"] > 0.8

    missing = tmp_path / "no-label.csv"
    missing.write_text("prediction_id,truth\nabc-1,1\n")
    refused = cli("feedback", "send", "scoring", str(missing), check=False)
    assert "prediction_id and label" in assert_clean_failure(refused, "invalid_field")


def test_numeric_labels_match_a_model_with_integer_classes(
    shared_server: ServerProcess, tmp_path: Path
) -> None:
    """A CSV says "1"; a model trained on 0/1 answers 1. --numeric makes them match."""
    served = deploy_classifier(shared_server, "numbers", (0, 1))
    csv = tmp_path / "labels.csv"
    rows = [f"{i},{label}" for i, label in zip(served["ids"], served["labels"], strict=True)]
    csv.write_text("prediction_id,label\n" + "\n".join(rows) + "\n")
    cli = shared_server.cli
    assert "accepted 300" in cli("feedback", "send", "numbers", str(csv), "--numeric").stdout
    quality = as_json(cli("monitor", "report", "numbers", "--json"))["quality"]
    assert quality["n"] == 300 and quality["accuracy"] > 0.8  # the labels matched
