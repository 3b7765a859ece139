"""Serving end to end: sklearn, ONNX and XGBoost models registered and deployed through
the SDK on a real server, called on the plain JSON route and the Open Inference
Protocol (V2) route, with one prediction record per request and clean errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest

from slipway import errors

pytestmark = pytest.mark.e2e


@dataclass
class Deployed:
    endpoint: str
    model: str
    version: int
    classes: list[Any]
    expected: Callable[[np.ndarray], list[Any]]  # the local model's predictions
    label_datatype: str  # V2 datatype of the "predict" output


@pytest.fixture(scope="module")
def http(shared_server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=shared_server.url,
        headers={"Authorization": f"Bearer {shared_server.token}"},
        timeout=60,
    ) as client:
        yield client


@pytest.fixture(scope="module")
def sdk(shared_server: Any) -> Iterator[Any]:
    with shared_server.client() as client:
        yield client


def _onnx_model(iris: Any) -> tuple[bytes, Callable[[np.ndarray], list[Any]]]:
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from sklearn.tree import DecisionTreeClassifier

    X32 = iris.X.astype(np.float32)
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X32, iris.y)
    onx = to_onnx(model, X32[:1], options={id(model): {"zipmap": False}})
    data = onx.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def expected(X: np.ndarray) -> list[Any]:
        labels = session.run(None, {name: X.astype(np.float32)})[0]
        # The local sklearn model agrees with the ONNX graph on this data.
        assert labels.tolist() == model.predict(X.astype(np.float32)).tolist()
        return [int(v) for v in labels.tolist()]

    return data, expected


@pytest.fixture(scope="module")
def deployed(shared_server: Any, iris: Any, logreg: Any, e2e: Any) -> dict[str, Deployed]:
    """The three flavors, registered and deployed once for the module."""
    import xgboost

    out: dict[str, Deployed] = {}
    with shared_server.client() as client:
        # (a) scikit-learn, string class labels, named features.
        v = e2e.register_logreg(client, "iris-lr", iris, logreg)
        assert v["status"] == "ready", v
        assert v["flavor"] == "sklearn"
        client.deploy("iris-lr", model="iris-lr", version=v["number"])
        out["sklearn"] = Deployed(
            "iris-lr",
            "iris-lr",
            v["number"],
            list(iris.names),
            lambda X: logreg.predict(X).tolist(),
            "BYTES",
        )

        # (b) ONNX, exported by skl2onnx without ZipMap, float32 input.
        data, expected = _onnx_model(iris)
        client.create_model("iris-onnx", owner="ml-team")
        v = client.register_version(
            "iris-onnx",
            artifact=data,
            flavor="onnx",
            signature={
                "inputs": [{"name": f, "type": "float"} for f in e2e.FEATURES],
                "classes": [0, 1, 2],
            },
            example_rows=e2e.rows_of(iris.X[:5]),
        )
        assert v["status"] == "ready", v
        assert v["flavor"] == "onnx"
        client.deploy("iris-onnx", model="iris-onnx", version=v["number"])
        out["onnx"] = Deployed("iris-onnx", "iris-onnx", v["number"], [0, 1, 2], expected, "INT64")

        # (c) XGBoost; the SDK serializes it in the native format.
        xgb = xgboost.XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1).fit(iris.X, iris.y)
        v = client.register(
            xgb,
            name="iris-xgb",
            X_train=iris.X,
            y_train=iris.y,
            owner="ml-team",
            feature_names=e2e.FEATURES,
        )
        assert v["status"] == "ready", v
        assert v["flavor"] == "xgboost"
        client.deploy("iris-xgb", model="iris-xgb", version=v["number"])
        out["xgboost"] = Deployed(
            "iris-xgb",
            "iris-xgb",
            v["number"],
            [0, 1, 2],
            lambda X: [int(p) for p in xgb.predict(X).tolist()],
            "INT64",
        )
        for d in out.values():
            shown = client.get_endpoint(d.endpoint)
            assert shown["version"] == d.version
            assert shown["serving_version"] == d.version
            assert shown["load_error"] is None
    return out


FLAVORS = ["sklearn", "onnx", "xgboost"]


def _total(http: httpx.Client, endpoint: str) -> int:
    r = http.get(f"/api/v1/endpoints/{endpoint}/predictions", params={"limit": 0})
    assert r.status_code == 200, r.text
    total: int = r.json()["total"]
    return total


def _check_record(http: httpx.Client, prediction_id: str, d: Deployed, route: str, n: int) -> None:
    r = http.get(f"/api/v1/predictions/{prediction_id}")
    assert r.status_code == 200, r.text
    record = r.json()
    assert record["endpoint"] == d.endpoint
    assert record["model"] == d.model
    assert record["version"] == d.version
    assert record["route"] == route
    assert record["rows"] == n
    assert record["outcome"] == "ok"
    assert len(record["inputs"]) == n


@pytest.mark.parametrize("flavor", FLAVORS)
def test_plain_route_matches_local_model(
    flavor: str, deployed: dict[str, Deployed], http: httpx.Client, sdk: Any, iris: Any, e2e: Any
) -> None:
    d = deployed[flavor]
    before = _total(http, d.endpoint)
    sent = 0

    # The whole data set in one request.
    r = http.post(f"/v1/endpoints/{d.endpoint}/predict", json={"inputs": e2e.rows_of(iris.X)})
    sent += 1
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["endpoint"] == d.endpoint
    assert body["model"] == d.model
    assert body["version"] == d.version
    preds = body["predictions"]
    assert len(preds) == len(iris.X)
    assert [p["prediction"] for p in preds] == d.expected(iris.X)
    class_keys = {str(c) for c in d.classes}
    for p in preds:
        assert p["version"] == d.version
        assert set(p["probabilities"]) == class_keys
        assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        # The predicted label is the most probable class.
        assert max(p["probabilities"], key=p["probabilities"].get) == str(p["prediction"])
    ids = [p["id"] for p in preds]
    assert len(set(ids)) == len(ids)
    # One record per request: every row's id leads to the same record.
    record_ids = {e2e.record_id(i) for i in ids}
    assert len(record_ids) == 1
    _check_record(http, ids[0], d, "plain", len(iris.X))
    _check_record(http, ids[-1], d, "plain", len(iris.X))
    _check_record(http, record_ids.pop(), d, "plain", len(iris.X))

    # Single rows, through the SDK.
    client_ids = []
    for i in (0, 60, 120):
        answer = sdk.predict(d.endpoint, e2e.rows_of(iris.X[i : i + 1]))
        sent += 1
        assert answer["version"] == d.version
        assert answer["predictions"][0]["prediction"] == d.expected(iris.X[i : i + 1])[0]
        client_ids.append(answer["predictions"][0]["id"])
    for pid in client_ids:
        _check_record(http, pid, d, "plain", 1)

    assert _total(http, d.endpoint) == before + sent


def _check_v2_body(body: dict[str, Any], d: Deployed, n: int, request_id: str | None) -> None:
    assert body["model_name"] == d.endpoint
    assert body["model_version"] == str(d.version)
    assert isinstance(body["model_version"], str)
    if request_id is not None:
        assert body["id"] == request_id
    else:
        assert isinstance(body["id"], str) and body["id"]
    outputs = {o["name"]: o for o in body["outputs"]}
    assert set(outputs) == {"predict", "predict_proba"}
    for o in body["outputs"]:
        assert set(o) >= {"name", "datatype", "shape", "data"}
        assert int(np.prod(o["shape"])) == len(o["data"])
    assert outputs["predict"]["shape"] == [n]
    assert outputs["predict"]["datatype"] == d.label_datatype
    assert outputs["predict_proba"]["shape"] == [n, len(d.classes)]
    assert outputs["predict_proba"]["datatype"] == "FP64"
    proba = np.asarray(outputs["predict_proba"]["data"]).reshape(n, len(d.classes))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_v2_infer_both_tensor_layouts(
    flavor: str, deployed: dict[str, Deployed], http: httpx.Client, sdk: Any, iris: Any, e2e: Any
) -> None:
    d = deployed[flavor]
    X = iris.X[::7]
    n = len(X)
    expected = d.expected(X)
    before = _total(http, d.endpoint)
    url = f"/v2/models/{d.endpoint}/infer"

    # One [n, k] tensor, nested and flat (row-major) data.
    for data in (X.tolist(), X.reshape(-1).tolist()):
        tensor = {"name": "input-0", "shape": [n, 4], "datatype": "FP64", "data": data}
        r = http.post(url, json={"id": "req-matrix-1", "inputs": [tensor]})
        assert r.status_code == 200, r.text
        body = r.json()
        _check_v2_body(body, d, n, "req-matrix-1")
        assert body["outputs"][0]["data"] == expected
        _check_record(http, body["parameters"]["prediction_ids"][0], d, "v2", n)

    # One tensor per field, shapes [n] and [n, 1].
    for shape in ([n], [n, 1]):
        inputs = [
            {"name": f, "shape": shape, "datatype": "FP64", "data": X[:, j].tolist()}
            for j, f in enumerate(e2e.FEATURES)
        ]
        inputs.reverse()  # order of the tensors must not matter: they go by name
        r = http.post(url, json={"id": "req-fields-2", "inputs": inputs})
        assert r.status_code == 200, r.text
        body = r.json()
        _check_v2_body(body, d, n, "req-fields-2")
        assert body["outputs"][0]["data"] == expected

    # Without an id, the answer still carries one; `outputs` selects what comes back.
    tensor = {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": X[0].tolist()}
    r = http.post(url, json={"inputs": [tensor], "outputs": [{"name": "predict"}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"]
    assert [o["name"] for o in body["outputs"]] == ["predict"]
    assert body["outputs"][0]["data"] == expected[:1]

    # The SDK's infer() speaks the same protocol.
    answer = sdk.infer(
        d.endpoint,
        [{"name": "input-0", "shape": [n, 4], "datatype": "FP64", "data": X.tolist()}],
        id="sdk-req",
    )
    _check_v2_body(answer, d, n, "sdk-req")

    assert _total(http, d.endpoint) == before + 6


@pytest.mark.parametrize("flavor", FLAVORS)
def test_v2_metadata_and_readiness(
    flavor: str, deployed: dict[str, Deployed], http: httpx.Client, shared_server: Any, e2e: Any
) -> None:
    d = deployed[flavor]
    r = http.get(f"/v2/models/{d.endpoint}")
    assert r.status_code == 200, r.text
    meta = r.json()
    assert meta["name"] == d.endpoint
    assert meta["versions"] == [str(d.version)]
    assert [i["name"] for i in meta["inputs"]] == e2e.FEATURES
    assert all(i["datatype"] == "FP64" for i in meta["inputs"])
    outputs = {o["name"]: o for o in meta["outputs"]}
    assert outputs["predict_proba"]["shape"] == [-1, len(d.classes)]
    assert outputs["predict"]["datatype"] == d.label_datatype

    r = http.get(f"/v2/models/{d.endpoint}/ready")
    assert (r.status_code, r.json()) == (200, {"name": d.endpoint, "ready": True})
    r = httpx.get(f"{shared_server.url}/v2/health/live")  # no token needed
    assert (r.status_code, r.json()) == (200, {"live": True})
    r = httpx.get(f"{shared_server.url}/v2/health/ready")
    assert (r.status_code, r.json()) == (200, {"ready": True})
    r = httpx.get(f"{shared_server.url}/readyz")
    assert (r.status_code, r.json()) == (200, {"ready": True})


def _error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "request_id"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["request_id"] == r.headers["x-request-id"]
    assert "Traceback" not in r.text
    error: dict[str, Any] = body["error"]
    return error


BAD_ROWS = [
    ("missing", lambda row: {k: v for k, v in row.items() if k != "petal_width"}, "petal_width"),
    ("string", lambda row: {**row, "sepal_length": "abc"}, "sepal_length"),
    ("unknown", lambda row: {**row, "colour": 1.0}, "colour"),
]


@pytest.mark.parametrize(("case", "mutate", "field"), BAD_ROWS, ids=[b[0] for b in BAD_ROWS])
def test_bad_rows_are_422_naming_the_field(
    case: str,
    mutate: Callable[[dict[str, Any]], dict[str, Any]],
    field: str,
    deployed: dict[str, Deployed],
    http: httpx.Client,
    sdk: Any,
    iris: Any,
    e2e: Any,
) -> None:
    d = deployed["sklearn"]
    before = _total(http, d.endpoint)
    good = e2e.rows_of(iris.X[:2])
    r = http.post(
        f"/v1/endpoints/{d.endpoint}/predict", json={"inputs": [good[0], mutate(good[1])]}
    )
    # Row-level problems are contract violations (the rows are quarantined, see
    # tests/e2e/test_contracts.py); malformed requests stay invalid_field.
    error = _error(r, 422, "contract_violation")
    assert field in error["message"]
    assert any(det.get("field") == field and det.get("row") == 1 for det in error["details"])

    # The SDK raises the matching exception class.
    with pytest.raises(errors.ValidationFailed) as raised:
        sdk.predict(d.endpoint, [mutate(good[0])])
    assert raised.value.status == 422
    assert field in raised.value.message

    # Rejected requests leave no prediction record.
    assert _total(http, d.endpoint) == before


def test_v2_bad_tensors_are_422(deployed: dict[str, Deployed], http: httpx.Client) -> None:
    d = deployed["onnx"]
    before = _total(http, d.endpoint)
    url = f"/v2/models/{d.endpoint}/infer"
    cases = [
        # wrong width for a single tensor
        (
            [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}],
            "inputs[0].shape",
        ),
        # data does not fill the shape
        (
            [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}],
            "inputs[0].data",
        ),
        # a per-field tensor is missing
        (
            [
                {"name": "sepal_length", "shape": [1], "datatype": "FP64", "data": [1.0]},
                {"name": "sepal_width", "shape": [1], "datatype": "FP64", "data": [1.0]},
            ],
            "inputs",
        ),
        # an unknown field among per-field tensors
        (
            [
                {"name": "sepal_length", "shape": [1], "datatype": "FP64", "data": [1.0]},
                {"name": "colour", "shape": [1], "datatype": "FP64", "data": [1.0]},
            ],
            "inputs[1].name",
        ),
        # a string where a float belongs
        (
            [{"name": "x", "shape": [1, 4], "datatype": "BYTES", "data": ["a", 1, 2, 3]}],
            "sepal_length",
        ),
    ]
    for inputs, field in cases:
        code = "contract_violation" if field == "sepal_length" else "invalid_field"
        error = _error(http.post(url, json={"inputs": inputs}), 422, code)
        assert field in error["message"], (field, error)
    assert _total(http, d.endpoint) == before


def test_unknown_endpoint_is_404(
    deployed: dict[str, Deployed], http: httpx.Client, sdk: Any
) -> None:
    row = {"sepal_length": 1.0, "sepal_width": 1.0, "petal_length": 1.0, "petal_width": 1.0}
    _error(http.post("/v1/endpoints/nope/predict", json={"inputs": [row]}), 404, "not_found")
    tensor = {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 1, 1, 1]}
    _error(http.post("/v2/models/nope/infer", json={"inputs": [tensor]}), 404, "not_found")
    _error(http.get("/v2/models/nope"), 404, "not_found")
    r = http.get("/v2/models/nope/ready")
    assert r.status_code in (404, 503) and r.json().get("ready", False) is False
    _error(http.get("/api/v1/endpoints/nope"), 404, "not_found")
    _error(http.get("/api/v1/predictions/0123456789abcdef0123456789abcdef-0"), 404, "not_found")
    with pytest.raises(errors.NotFound):
        sdk.predict("nope", [row])


@pytest.mark.parametrize(
    "url", ["/v1/endpoints/iris-lr/predict", "/v2/models/iris-lr/infer"], ids=["plain", "v2"]
)
@pytest.mark.parametrize(
    "payload", [b'{"inputs": [', b"not json", b""], ids=["cut", "text", "empty"]
)
def test_malformed_json_is_400(
    url: str, payload: bytes, deployed: dict[str, Deployed], http: httpx.Client
) -> None:
    before = _total(http, "iris-lr")
    r = http.post(url, content=payload, headers={"Content-Type": "application/json"})
    _error(r, 400, "bad_request")
    assert _total(http, "iris-lr") == before


def test_wrong_body_shape_is_422(deployed: dict[str, Deployed], http: httpx.Client) -> None:
    r = http.post("/v1/endpoints/iris-lr/predict", json={"rows": []})
    _error(r, 422, "invalid_field")
    r = http.post("/v1/endpoints/iris-lr/predict", json={"inputs": []})
    error = _error(r, 422, "invalid_field")
    assert "inputs" in error["message"]
