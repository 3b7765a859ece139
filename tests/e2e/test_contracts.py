"""Data contracts end to end, against a real server: reject and partial modes, the
quarantine (masked, listable, exportable, replayable), nothing lost, breaking deploys
gated and audited, counters on /metrics and the contract in V2 metadata."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from slipway import errors

pytestmark = pytest.mark.e2e

MODEL = "iris-contract"
PII = "sepal_width"  # marked pii only to check that the quarantine masks it
MASKED = re.compile(r"^pii:[0-9a-f]{16}$")


def _contract(names: list[str], sepal_max: float) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "sepal_length", "type": "float", "min": 4.0, "max": sepal_max},
            {"name": "sepal_width", "type": "float", "min": 1.5, "max": 5.0, "pii": True},
            {"name": "petal_length", "type": "float", "min": 0.5, "max": 7.5},
            {"name": "petal_width", "type": "float", "min": 0.0, "max": 3.0},
        ],
        "outputs": {"classes": names},
    }


def _row(sepal_length: float = 5.1, sepal_width: float = 3.5) -> dict[str, float]:
    return {
        "sepal_length": sepal_length,
        "sepal_width": sepal_width,
        "petal_length": 1.4,
        "petal_width": 0.2,
    }


@pytest.fixture(scope="module")
def setup(shared_server: Any, iris: Any, logreg: Any, e2e: Any) -> dict[str, int]:
    """v1 (sepal_length max 8), v2 (widened: max 10), v3 (narrowed: max 7)."""
    numbers: dict[str, int] = {}
    with shared_server.client() as client:
        for tag, sepal_max in (("v1", 8.0), ("v2", 10.0), ("v3", 7.0)):
            version = client.register(
                logreg,
                name=MODEL,
                X_train=iris.X,
                y_train=iris.y_names,
                owner="ml-team",
                feature_names=e2e.FEATURES,
                contract=_contract(iris.names, sepal_max),
            )
            assert version["status"] == "ready", version
            numbers[tag] = version["number"]
        for endpoint, mode in (
            ("rej", "reject"),
            ("part", "partial"),
            ("lost-r", "reject"),
            ("lost-p", "partial"),
            ("replay", "reject"),
            ("brk", "reject"),
        ):
            client.deploy(endpoint, model=MODEL, version=numbers["v1"], contract_mode=mode)
    return numbers


def _open(client: Any, endpoint: str) -> int:
    count: int = client.list_quarantine(endpoint)["open"]
    return count


def _violations(server: Any, endpoint: str, field: str) -> float:
    text = httpx.get(
        f"{server.url}/metrics", headers={"Authorization": f"Bearer {server.token}"}
    ).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("slipway_contract_violations_total{") and (
            f'endpoint="{endpoint}"' in line and f'field="{field}"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_reject_mode_refuses_the_request_and_quarantines_the_bad_row(
    shared_server: Any, setup: dict[str, int]
) -> None:
    with shared_server.client() as client:
        records_before = client.list_predictions("rej")["total"]
        open_before = _open(client, "rej")
        metric_before = _violations(shared_server, "rej", "sepal_length")

        rows = [_row(), _row(sepal_length=9.5, sepal_width=3.1), _row()]
        with pytest.raises(errors.ContractViolation) as raised:
            client.predict("rej", rows)
        assert raised.value.status == 422
        assert raised.value.code == "contract_violation"
        assert len(raised.value.details) == 1
        detail = raised.value.details[0]
        assert detail["row"] == 1
        assert detail["field"] == "sepal_length"
        assert detail["reason"]
        assert "sepal_length" in raised.value.message

        # Nothing predicted; the bad row is kept, pii masked, reasons attached.
        assert client.list_predictions("rej")["total"] == records_before
        listed = client.list_quarantine("rej")
        assert listed["open"] == open_before + 1
        shown = client.get_quarantined(detail["quarantine_id"])
        assert shown["id"] == detail["quarantine_id"]
        assert shown["endpoint"] == "rej"
        assert shown["status"] == "open"
        assert shown["version"] == setup["v1"]
        assert shown["row_index"] == 1
        assert shown["row"]["sepal_length"] == 9.5
        assert MASKED.match(shown["row"][PII]), shown["row"]
        assert [r["field"] for r in shown["reasons"]] == ["sepal_length"]
        assert shown["id"] in {r["id"] for r in listed["rows"]}

        # V2 always rejects a request with a bad row, whatever the mode, and quarantines it.
        bad = [5.0, 3.0, 1.4, 0.2, 5.0, 3.0, 1.4, 99.0]
        with pytest.raises(errors.ContractViolation) as raised_v2:
            client.infer("rej", [{"name": "x", "datatype": "FP64", "shape": [2, 4], "data": bad}])
        assert raised_v2.value.status == 422
        assert [(d["row"], d["field"]) for d in raised_v2.value.details] == [(1, "petal_width")]
        assert _open(client, "rej") == open_before + 2
        assert client.list_predictions("rej")["total"] == records_before

    assert _violations(shared_server, "rej", "sepal_length") == metric_before + 1
    assert _violations(shared_server, "rej", "petal_width") >= 1


def test_partial_mode_predicts_valid_rows_and_returns_errors_in_order(
    shared_server: Any, setup: dict[str, int]
) -> None:
    with shared_server.client() as client:
        open_before = _open(client, "part")
        answer = client.predict("part", [_row(), _row(sepal_length=3.0), _row(5.9)])
        assert answer["refused"] == 1
        predictions = answer["predictions"]
        assert [p["row"] for p in predictions] == [0, 1, 2]
        for p in (predictions[0], predictions[2]):
            assert p["id"] and p["prediction"] in {"setosa", "versicolor", "virginica"}
            assert p["version"] == setup["v1"]
            assert set(p["probabilities"]) == {"setosa", "versicolor", "virginica"}
            assert "errors" not in p
        refused = predictions[1]
        assert "id" not in refused and "prediction" not in refused
        assert [e["field"] for e in refused["errors"]] == ["sepal_length"]
        assert client.get_quarantined(refused["quarantine_id"])["row_index"] == 1
        assert _open(client, "part") == open_before + 1
        # The record holds the two predicted rows only.
        record = client.get_prediction(predictions[0]["id"])
        assert record["rows"] == 2

        # V2 on a partial endpoint still rejects the whole request.
        data = [5.0, 3.0, 1.4, 0.2, 3.0, 3.0, 1.4, 0.2]
        with pytest.raises(errors.ContractViolation):
            client.infer("part", [{"name": "x", "datatype": "FP64", "shape": [2, 4], "data": data}])
        assert _open(client, "part") == open_before + 2


def test_nothing_is_lost(shared_server: Any, setup: dict[str, int]) -> None:
    """Rows sent = rows predicted + rows quarantined, over both modes and many requests.

    A reject-mode 422 (and a V2 request, which always rejects) also bounces the *valid*
    rows of that request back to the caller: they are neither predicted nor quarantined
    (the contract did not refuse them), so they are counted from the 422 itself. With
    plain partial-mode requests nothing is bounced and the equation holds as stated.
    """
    good, bad_range, bad_type = _row(), _row(8.5), _row(sepal_width="wide")  # type: ignore[arg-type]
    missing = _row()
    del missing["petal_length"]
    batches = [
        [good, good],
        [good, bad_range, good],
        [bad_type],
        [good] * 5,
        [missing, good, bad_range, bad_type],
        [good, {**good, "extra": 1.0}],
        [bad_range, bad_range],
    ]
    v2_values = [v for row in (good, good, good, bad_range) for v in row.values()]
    with shared_server.client() as client:
        for endpoint in ("lost-r", "lost-p"):
            sent = bounced = 0
            for batch in batches:
                sent += len(batch)
                try:
                    answer = client.predict(endpoint, batch)
                    assert len(answer["predictions"]) == len(batch)
                except errors.ContractViolation as exc:
                    bounced += len(batch) - len({d["row"] for d in exc.details})
            for n, chunk in enumerate((v2_values[:8], v2_values[8:])):
                sent += 2
                tensor = {"name": "x", "datatype": "FP64", "shape": [2, 4], "data": chunk}
                try:
                    client.infer(endpoint, [tensor])
                except errors.ContractViolation as exc:
                    assert n == 1
                    bounced += 2 - len({d["row"] for d in exc.details})
            listing = client.list_predictions(endpoint, limit=1000)
            assert listing["total"] == len(listing["records"])
            predicted = sum(r["rows"] for r in listing["records"])
            quarantined = _open(client, endpoint)
            assert sent == 23
            assert sent == predicted + quarantined + bounced, (
                endpoint,
                sent,
                predicted,
                quarantined,
                bounced,
            )
            # 8 bad rows in the plain requests, 1 in the V2 ones, in either mode.
            assert quarantined == 9
            if endpoint == "lost-p":
                assert bounced == 1  # only the V2 request's valid row
                assert predicted == 13
            else:
                assert bounced == 5
                assert predicted == 9


def test_replay_after_a_widened_version_resolves_rows(
    shared_server: Any, setup: dict[str, int]
) -> None:
    with shared_server.client() as client:
        ids: dict[str, str] = {}
        for tag, sepal_length in (("a1", 9.5), ("a2", 9.0), ("b", 12.0), ("c", 9.9)):
            with pytest.raises(errors.ContractViolation) as raised:
                client.predict("replay", [_row(sepal_length=sepal_length)])
            ids[tag] = raised.value.details[0]["quarantine_id"]
        assert _open(client, "replay") == 4
        old_reason = client.get_quarantined(ids["b"])["reasons"]

        # Widening the range is compatible: no allow_breaking needed.
        client.deploy("replay", model=MODEL, version=setup["v2"])

        replayed = client.replay_quarantine("replay", ids=[ids["a1"], ids["a2"], ids["b"]])
        assert replayed["version"] == setup["v2"]
        assert (replayed["replayed"], replayed["resolved"], replayed["still_failing"]) == (3, 2, 1)
        # Written in the same transaction as the rows' new status.
        [event] = client.audit_events(action="quarantine.replay", target="replay")
        assert event["after"] == {"replayed": 3, "resolved": 2, "version": setup["v2"]}
        by_id = {r["quarantine_id"]: r for r in replayed["results"]}
        for tag in ("a1", "a2"):
            pid = by_id[ids[tag]]["prediction_id"]
            assert pid
            shown = client.get_quarantined(ids[tag])
            assert shown["status"] == "resolved"
            assert shown["prediction_id"] == pid
            record = client.get_prediction(pid)
            assert record["endpoint"] == "replay"
            assert record["route"] == "replay"
            assert record["version"] == setup["v2"]
        still = client.get_quarantined(ids["b"])
        assert still["status"] == "open"
        assert by_id[ids["b"]]["prediction_id"] is None
        assert [r["field"] for r in still["reasons"]] == ["sepal_length"]
        assert still["reasons"] != old_reason  # now measured against v2's max 10
        assert still["attempts"] == 1
        assert _open(client, "replay") == 2

        # The CLI: exit 0 when every replayed row resolves, 1 when some still fail.
        ok = shared_server.cli("quarantine", "replay", "replay", "--id", ids["c"])
        assert "1 resolved" in ok.stdout
        assert client.get_quarantined(ids["c"])["status"] == "resolved"
        failing = shared_server.cli("quarantine", "replay", "replay", check=False)
        assert failing.returncode == 1, failing.stdout + failing.stderr
        assert "1 still failing" in failing.stdout
        assert client.list_quarantine("replay")["open"] == 1
        assert client.get_quarantined(ids["b"])["attempts"] == 2


def test_breaking_deploy_needs_allow_breaking_and_a_reason(
    shared_server: Any, setup: dict[str, int]
) -> None:
    with shared_server.client() as client:
        with pytest.raises(errors.Conflict) as raised:
            client.deploy("brk", model=MODEL, version=setup["v3"])
        assert raised.value.status == 409
        assert [d["field"] for d in raised.value.details] == ["sepal_length"]
        assert "breaking" in raised.value.message
        assert client.get_endpoint("brk")["version"] == setup["v1"]

        with pytest.raises(errors.ValidationFailed) as no_reason:
            client.deploy("brk", model=MODEL, version=setup["v3"], allow_breaking=True)
        assert no_reason.value.status == 422
        assert client.get_endpoint("brk")["version"] == setup["v1"]

        reason = "upstream clamps sepal_length to 7 since the sensor fix"
        client.deploy("brk", model=MODEL, version=setup["v3"], allow_breaking=True, reason=reason)
        assert client.get_endpoint("brk")["version"] == setup["v3"]
        events = [
            e
            for e in client.audit_events(action="endpoint.deploy")
            if e["target"] == "brk" and e["after"].get("breaking_changes")
        ]
        assert len(events) == 1
        assert events[0]["reason"] == reason
        assert [c["field"] for c in events[0]["after"]["breaking_changes"]] == ["sepal_length"]

        # The narrowed contract is now enforced.
        with pytest.raises(errors.ContractViolation):
            client.predict("brk", [_row(sepal_length=7.5)])


def test_v2_metadata_shows_the_contract(
    shared_server: Any, setup: dict[str, int], iris: Any
) -> None:
    response = httpx.get(
        f"{shared_server.url}/v2/models/part",
        headers={"Authorization": f"Bearer {shared_server.token}"},
    )
    assert response.status_code == 200
    parameters = response.json()["parameters"]
    from slipway.contracts.schema import Contract

    expected = Contract.from_dict(_contract(iris.names, 8.0)).to_dict()
    assert parameters["contract"] == expected
    assert parameters["contract_mode"] == "partial"


def test_quarantine_cli_list_and_export(shared_server: Any, setup: dict[str, int]) -> None:
    with shared_server.client() as client:
        with pytest.raises(errors.ContractViolation):
            client.predict("rej", [_row(sepal_width=0.5)])
        expected = client.list_quarantine("rej")
    assert expected["open"] >= 1
    listed = json.loads(shared_server.cli("quarantine", "list", "rej", "--json").stdout)
    assert listed["open"] == expected["open"]
    assert {r["id"] for r in listed["rows"]} == {r["id"] for r in expected["rows"]}
    assert all(MASKED.match(r["row"][PII]) for r in listed["rows"])

    exported = shared_server.cli("quarantine", "export", "rej", "--status", "open").stdout
    lines = [json.loads(line) for line in exported.splitlines() if line.strip()]
    assert {r["id"] for r in lines} == {r["id"] for r in expected["rows"]}
    assert all(r["reasons"] and "sealed" not in r for r in lines)

    shown = json.loads(
        shared_server.cli("quarantine", "show", expected["rows"][0]["id"], "--json").stdout
    )
    assert shown["id"] == expected["rows"][0]["id"]


def test_an_answer_that_breaks_the_output_contract_is_withheld_and_counted(
    shared_server: Any, iris: Any, logreg: Any, e2e: Any
) -> None:
    """A contract whose classes the model does not answer: every answer is withheld."""
    wrong = _contract(["cat", "dog", "bird"], 8.0)
    with shared_server.client() as client:
        version = client.register(
            logreg,
            name="iris-wrong-labels",
            X_train=iris.X,
            y_train=iris.y_names,
            owner="ml-team",
            feature_names=e2e.FEATURES,
            contract=wrong,
        )
        client.deploy("wrong-labels", model="iris-wrong-labels", version=version["number"])
        with pytest.raises(errors.OutputContractViolation) as withheld:
            client.predict("wrong-labels", [_row()])
        assert withheld.value.status == 500
        assert "class label outside the contract" in withheld.value.message
        assert "setosa" not in withheld.value.message  # the withheld answer stays withheld
        records = client.list_predictions("wrong-labels")
        assert records["total"] == 1
        assert records["records"][0]["outcome"] == "output_contract_violation"
        assert records["records"][0]["outputs"]["predictions"] == ["setosa"]  # kept
    metrics = httpx.get(
        f"{shared_server.url}/metrics",
        headers={"Authorization": f"Bearer {shared_server.token}"},
    ).text
    assert any(
        line.startswith("slipway_output_contract_violations_total{")
        and 'endpoint="wrong-labels"' in line
        and float(line.rsplit(" ", 1)[1]) >= 1
        for line in metrics.splitlines()
    )
