"""A reviewer's override of a prediction, on a real server: who may, what is refused,
the audit event, how it shows with the prediction, and that label metrics count it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pytest

from tests.api.conftest import check_error_response
from tests.cli.expect import as_json, assert_clean_failure
from tests.conftest import ServerProcess

pytestmark = pytest.mark.e2e

ENDPOINTS = ("reviewed", "counted", "elsewhere", "partial")


@dataclass
class World:
    server: ServerProcess
    tokens: dict[str, str] = field(default_factory=dict)  # caller -> secret

    def http(self, caller: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[caller]}"}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=60)

    def predict(self, endpoint: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with self.server.client() as c:
            predictions: list[dict[str, Any]] = c.predict(endpoint, rows)["predictions"]
        return predictions

    def audit(self, action: str) -> list[dict[str, Any]]:
        with self.server.client() as c:
            return c.audit_events(action=action)


def _rows(n: int, seed: int) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    return [{"x0": float(a), "x1": float(b)} for a, b in rng.normal(0, 1, (n, 2))]


def _other(label: str) -> str:
    return "no" if label == "yes" else "yes"


@pytest.fixture(scope="module")
def world(shared_server: ServerProcess) -> Iterator[World]:
    """A "no"/"yes" classifier on four endpoints ("partial" serves the good rows of a
    request and refuses the bad ones); a global reviewer, a reviewer of "elsewhere"
    only, a viewer and an operator."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x0": rng.normal(0, 1, 200), "x1": rng.normal(0, 1, 200)})
    y = np.where(X["x0"] + X["x1"] > 0, "yes", "no")
    w = World(shared_server)
    with shared_server.client() as c:
        version = c.register(
            LogisticRegression().fit(X.to_numpy(), y),
            name="churn",
            X_train=X,
            y_train=y,
            owner="ml",
        )
        assert version["status"] == "ready", version
        for endpoint in ENDPOINTS:
            mode = "partial" if endpoint == "partial" else None
            c.deploy(endpoint, model="churn", version=1, contract_mode=mode)
        callers = {
            "rita": ("reviewer", None),
            "ed": ("reviewer", "elsewhere"),
            "vic": ("viewer", None),
            "olga": ("operator", None),
        }
        for name, (role, endpoint) in callers.items():
            c.create_principal(name)
            if endpoint:
                c.create_grant(name, role, scope_kind="endpoint", scope_name=endpoint)
            else:
                c.create_grant(name, role)
            w.tokens[name] = c.create_token(name)["token"]
    deadline = time.monotonic() + 10
    for caller in w.tokens:  # new tokens reach the server's snapshot within a second
        with w.http(caller) as http:
            while http.get("/api/v1/endpoints").status_code == 401:
                assert time.monotonic() < deadline, caller
                time.sleep(0.1)
    yield w


def _override(world: World, caller: str, prediction_id: str, body: Any) -> httpx.Response:
    with world.http(caller) as http:
        return http.post(f"/api/v1/predictions/{prediction_id}/override", json=body)


def test_a_reviewer_overrides_and_it_is_audited_and_shown(world: World) -> None:
    first, second = world.predict("reviewed", _rows(2, seed=1))
    corrected = _other(first["prediction"])
    response = _override(
        world, "rita", first["id"], {"label": corrected, "reason": "customer stayed"}
    )
    assert response.status_code == 200, response.text
    done = response.json()
    assert done["prediction_id"] == first["id"] and done["endpoint"] == "reviewed"
    assert done["prediction"] == first["prediction"] and done["label"] == corrected
    assert done["previous_label"] is None and done["by"] == "rita"

    [event] = [e for e in world.audit("prediction.override") if e["target"] == first["id"]]
    assert event["actor"] == "rita" and event["target_kind"] == "prediction"
    assert event["reason"] == "customer stayed"
    assert event["before"]["prediction"] == first["prediction"]
    assert event["before"]["label"] is None and event["after"]["label"] == corrected

    # A second override replaces the first, and is audited again with the label it replaced.
    again = _override(world, "rita", first["id"], {"label": first["prediction"], "reason": "no"})
    assert again.status_code == 200 and again.json()["previous_label"] == corrected
    events = [e for e in world.audit("prediction.override") if e["target"] == first["id"]]
    assert [e["before"]["label"] for e in events] == [None, corrected]

    # Shown with the prediction, by record id or by prediction id, to any reader.
    record_id = first["id"].rsplit("-", 1)[0]
    with world.http("vic") as http:
        for key in (record_id, second["id"]):
            shown = http.get(f"/api/v1/predictions/{key}").json()
            assert shown["overrides"] == [
                {
                    "prediction_id": first["id"],
                    "label": first["prediction"],
                    "reason": "no",
                    "by": "rita",
                    "at": again.json()["at"],
                }
            ]


def test_who_may_override(world: World) -> None:
    [prediction] = world.predict("reviewed", _rows(1, seed=2))
    body = {"label": "yes", "reason": "checked"}
    for caller in ("vic", "olga"):  # viewers and operators hold no prediction:override
        check_error_response(_override(world, caller, prediction["id"], body), 403, "forbidden")
    # A reviewer of another endpoint: refused once the prediction's endpoint is known.
    denied = check_error_response(_override(world, "ed", prediction["id"], body), 403, "forbidden")
    assert "'reviewed'" in denied["error"]["message"]
    [elsewhere] = world.predict("elsewhere", _rows(1, seed=3))
    assert _override(world, "ed", elsewhere["id"], body).status_code == 200
    assert all(e["target"] != prediction["id"] for e in world.audit("prediction.override"))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"label": "yes"}, "reason"),
        ({"label": "yes", "reason": "   "}, "reason"),
        ({"label": "yes", "reason": 5}, "reason"),
        ({"reason": "why"}, "label"),
        ({"label": None, "reason": "why"}, "label"),
        ({"label": {"class": "yes"}, "reason": "why"}, "label"),
        ({"label": "yes", "reason": "why", "extra": 1}, "extra"),
    ],
)
def test_bad_bodies_name_the_field(world: World, body: dict[str, Any], field: str) -> None:
    [prediction] = world.predict("reviewed", _rows(1, seed=4))
    refused = check_error_response(
        _override(world, "rita", prediction["id"], body), 422, "invalid_field"
    )
    assert refused["error"]["details"][0]["field"] == field, refused


def test_unknown_malformed_and_unanswered_ids(world: World) -> None:
    body = {"label": "yes", "reason": "why"}
    unknown = check_error_response(
        _override(world, "rita", "0" * 32 + "-0", body), 404, "not_found"
    )
    assert "0" * 32 + "-0" in unknown["error"]["message"]
    malformed = check_error_response(_override(world, "rita", "nope", body), 422, "invalid_field")
    assert malformed["error"]["details"][0]["field"] == "prediction_id"

    # "partial" answers the good row and refuses the bad one: the refused row has no
    # answer to override (nor has a row the request never had).
    with world.server.client() as c:
        answer = c.predict("partial", [{"x0": 0.1, "x1": 0.2}, {"x0": "bad", "x1": 0.0}])
    good, bad = answer["predictions"]
    assert "id" in good and "id" not in bad and bad["errors"]
    record_id = good["id"].rsplit("-", 1)[0]
    for missing in (f"{record_id}-1", f"{record_id}-7"):
        refused = check_error_response(
            _override(world, "rita", missing, body), 422, "invalid_field"
        )
        assert refused["error"]["details"][0]["field"] == "prediction_id"
        assert "no answer" in refused["error"]["message"]


def test_an_override_counts_as_a_label_in_the_endpoints_metrics(world: World) -> None:
    a, b, c = world.predict("counted", _rows(3, seed=5))
    with world.server.client() as client:
        sent = client.send_feedback("counted", {a["id"]: a["prediction"], b["id"]: b["prediction"]})
        assert sent["accepted"] == 2
        quality = client.monitoring("counted", window=3600)["quality"]
        assert (quality["n"], quality["accuracy"]) == (2, 1.0)

        # An override of a prediction without a label adds one: wrong, as the reviewer says.
        client.override_prediction(c["id"], label=_other(c["prediction"]), reason="wrong")
        quality = client.monitoring("counted", window=3600)["quality"]
        assert quality["n"] == 3 and quality["accuracy"] == pytest.approx(2 / 3)

        # An override of a labeled prediction replaces its label.
        client.override_prediction(a["id"], label=_other(a["prediction"]), reason="relabeled")
        quality = client.monitoring("counted", window=3600)["quality"]
        assert quality["n"] == 3 and quality["accuracy"] == pytest.approx(1 / 3)

        # A later plain label does not undo a person's correction; it is reported.
        late = client.send_feedback("counted", {a["id"]: a["prediction"], b["id"]: "x"})
        assert (late["accepted"], late["updated"], late["overridden"]) == (0, 1, [a["id"]])
        quality = client.monitoring("counted", window=3600)["quality"]
        assert quality["n"] == 3 and quality["accuracy"] == pytest.approx(0.0)
        shown = client.get_prediction(a["id"])["overrides"]
        assert [o["reason"] for o in shown if o["prediction_id"] == a["id"]] == ["relabeled"]


def test_cli_prediction_override_and_show(world: World) -> None:
    [prediction] = world.predict("reviewed", _rows(1, seed=6))
    cli = world.server.cli
    label = _other(prediction["prediction"])
    done = as_json(
        cli(
            "prediction",
            "override",
            prediction["id"],
            "--label",
            label,
            "--reason",
            "call notes",
            "--json",
        )
    )
    assert done["label"] == label and done["by"] == "admin"
    shown = as_json(cli("prediction", "show", prediction["id"], "--json"))
    assert [o["reason"] for o in shown["overrides"]] == ["call notes"]
    text = cli("prediction", "show", prediction["id"]).stdout
    assert "overrides" in text and "call notes" in text

    # Labels that look like numbers go as numbers (a model trained on 0/1), unless --text.
    pid = prediction["id"]
    numeric = as_json(cli("prediction", "override", pid, "--label", "1", "--reason", "x", "--json"))
    assert numeric["label"] == 1 and numeric["previous_label"] == label
    text_label = ("prediction", "override", pid, "--label", "1", "--text", "--reason", "x")
    assert as_json(cli(*text_label, "--json"))["label"] == "1"

    failed = cli("prediction", "override", pid, "--label", "yes", "--reason", "", check=False)
    assert "reason" in assert_clean_failure(failed, "invalid_field")
