"""Monitoring end to end: a real server, real HTTP, a real webhook receiver.

Traffic that drifts from the training data raises a feature-drift alert, which reaches
a webhook receiver started here — signed, with owner, runbook and evidence — and the
delivery is recorded. Feedback by prediction id flows into label metrics; unknown ids
are reported, never dropped silently.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.conftest import ServerProcess, make_server

pytestmark = pytest.mark.e2e

SECRET = "webhook-secret-for-tests"


class Receiver:
    """A real HTTP server on 127.0.0.1 that keeps what it is sent."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append({"headers": dict(self.headers), "body": body})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def monitored(tmp_path: Any) -> Iterator[ServerProcess]:
    # The controller is off: the test decides when monitors are judged.
    proc = make_server(tmp_path / "home", SLIPWAY_MONITOR_INTERVAL_S="0", HOOK_SECRET=SECRET)
    proc.init()
    proc.start()
    yield proc
    proc.stop()


def test_drift_alert_reaches_a_signed_webhook_with_owner_runbook_and_evidence(
    monitored: ServerProcess, receiver: Receiver, iris: Any, logreg: Any, e2e: Any
) -> None:
    client = monitored.client()
    client.create_model(
        "iris", owner="ml-team", oncall="pager:ml", runbook_url="https://runbooks/iris"
    )
    e2e.register_logreg(client, "iris", iris, logreg)
    client.deploy("iris", model="iris", version=1)
    profile = client.get_profile("iris", 1)
    assert set(profile["columns"]) == set(e2e.FEATURES)
    client.create_channel("hook", "webhook", url=receiver.url, secret_ref="env:HOOK_SECRET")

    # Only setosa flowers: petal sizes far from the training mix of three species.
    setosa = iris.X[iris.y == 0]
    for _ in range(12):
        client.predict("iris", e2e.rows_of(setosa))
    result = client.evaluate_monitors("iris")
    drifted = {e["subject"] for e in result["evaluations"] if e["status"] == "breach"}
    assert {"petal_length", "petal_width"} <= drifted, result["evaluations"]

    deadline = time.monotonic() + 15
    while len(receiver.requests) < len(drifted) and time.monotonic() < deadline:
        time.sleep(0.2)
    firing = [json.loads(r["body"]) for r in receiver.requests]
    petal = next(p for p in firing if p["subject"] == "petal_length")
    assert petal["event"] == "firing" and petal["endpoint"] == "iris"
    assert petal["owner"] == "ml-team" and petal["oncall"] == "pager:ml"
    assert petal["runbook_url"] == "https://runbooks/iris"
    evidence = petal["evidence"]
    assert evidence["value"] > evidence["threshold"] and evidence["samples"] == 600
    assert evidence["window_start"] and evidence["window_end"]

    request = next(r for r in receiver.requests if json.loads(r["body"]) == petal)
    headers = {k.lower(): v for k, v in request["headers"].items()}
    signed = f"{headers['x-slipway-timestamp']}.".encode() + request["body"]
    expected = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert headers["x-slipway-signature"] == f"sha256={expected}"

    alert = client.get_alert(petal["alert_id"])
    hook = [d for d in alert["deliveries"] if d["channel"] == "hook"]
    assert hook and hook[0]["status"] == "delivered" and hook[0]["response_status"] == 204
    # The same breach judged again is the same alert: nothing new is sent.
    before = len(receiver.requests)
    client.evaluate_monitors("iris")
    time.sleep(2.5)
    assert len(receiver.requests) == before
    listed = client.list_alerts(endpoint="iris", state="firing")
    assert len([a for a in listed if a["subject"] == "petal_length"]) == 1
    client.close()


def test_feedback_reports_every_id_and_feeds_label_metrics(
    monitored: ServerProcess, iris: Any, logreg: Any, e2e: Any
) -> None:
    client = monitored.client()
    e2e.register_logreg(client, "iris", iris, logreg)
    client.deploy("iris", model="iris", version=1)
    answer = client.predict("iris", e2e.rows_of(iris.X))
    ids = [p["id"] for p in answer["predictions"]]
    labels = {pid: str(name) for pid, name in zip(ids, iris.y_names, strict=True)}
    labels[ids[0].rsplit("-", 1)[0] + "-999"] = "setosa"  # no such row
    labels["0" * 32 + "-0"] = "setosa"  # no such record
    report = client.send_feedback("iris", labels)
    assert report["accepted"] == 150 and report["updated"] == 0
    assert sorted(report["unknown"]) == sorted(list(labels)[-2:])
    again = client.send_feedback("iris", {ids[0]: "virginica"})
    assert again["updated"] == 1 and again["accepted"] == 0

    summary = client.monitoring("iris", window=3600)
    quality = summary["quality"]
    assert quality["n"] == 150
    expected = sum(
        p["prediction"] == y for p, y in zip(answer["predictions"], iris.y_names, strict=True)
    )
    expected -= answer["predictions"][0]["prediction"] == iris.y_names[0]
    expected += answer["predictions"][0]["prediction"] == "virginica"
    assert quality["accuracy"] == pytest.approx(expected / 150)
    assert quality["reliability"] and quality["label_delay"]["p50_s"] is not None
    assert summary["traffic"]["requests"] == 1 and summary["traffic"]["rows"] == 150
    assert summary["traffic"]["latency_ms"]["p99"] is not None

    mixed = client.send_feedback(
        "iris", [{"prediction_id": ids[1]}, {"prediction_id": "x", "label": "setosa"}]
    )
    assert mixed["accepted"] == 0 and mixed["updated"] == 0
    assert [(bad["index"], bad["field"]) for bad in mixed["invalid"]] == [
        (0, "items[0].label"),
        (1, "items[1].prediction_id"),
    ]
    empty = client._http.post("/api/v1/endpoints/iris/feedback", json={"items": []})
    assert empty.status_code == 422 and "items" in empty.text
    client.close()


def test_metrics_expose_per_endpoint_counters(
    monitored: ServerProcess, iris: Any, logreg: Any, e2e: Any
) -> None:
    client = monitored.client()
    e2e.register_logreg(client, "iris", iris, logreg)
    client.deploy("iris", model="iris", version=1)
    client.predict("iris", e2e.rows_of(iris.X[:5]))
    text = client._http.get("/metrics").text
    assert 'slipway_predictions_total{endpoint="iris",outcome="ok",version="1"} 1.0' in text
    assert 'slipway_prediction_rows_total{endpoint="iris",version="1"} 5.0' in text
    assert 'slipway_prediction_latency_seconds_count{endpoint="iris",version="1"} 1.0' in text
    client.close()
