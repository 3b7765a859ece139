from __future__ import annotations

import json
import operator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from slipway.artifacts.flavors import LoadSpec, available_flavors, get_flavor
from slipway.artifacts.serialize import serialize_model
from slipway.errors import ModelLoadFailed, UnsafeArtifact, ValidationFailed

HERE = str(Path(__file__).parent)


def _round_trip(model: Any, X: np.ndarray, *, proba: bool, trusted: tuple[str, ...] = ()) -> None:
    s = serialize_model(model)
    names = tuple(f"f{i}" for i in range(X.shape[1]))
    spec = LoadSpec(names, tuple(s.classes) if s.classes else None, trusted_types=trusted)
    flavor = get_flavor(s.flavor)
    flavor.validate(s.data, spec)
    out = flavor.load(s.data, spec).predict(X)
    assert out.predictions.shape == (len(X),)
    np.testing.assert_allclose(out.predictions.astype(float), model.predict(X), atol=1e-5)
    if proba:
        assert out.probabilities is not None and out.classes == s.classes
        np.testing.assert_allclose(out.probabilities, model.predict_proba(X), atol=1e-5)
    else:
        assert out.probabilities is None


def test_registry_lists_builtins() -> None:
    assert {"sklearn", "onnx", "xgboost", "lightgbm", "pyfunc"} <= set(available_flavors())
    assert get_flavor("sklearn") is get_flavor("sklearn")
    with pytest.raises(ValidationFailed, match="unknown flavor 'torch'; available: "):
        get_flavor("torch")


def test_sklearn_round_trips(
    logreg: Any, pipeline: Any, hgb: Any, linreg: Any, iris: Any, cancer: Any
) -> None:
    _round_trip(logreg, iris.X, proba=True)
    # skops does not trust HistGradientBoosting's tree type by default: registrants opt in.
    tree = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
    with pytest.raises(UnsafeArtifact, match=tree):
        _round_trip(hgb, iris.X, proba=True)
    _round_trip(hgb, iris.X, proba=True, trusted=(tree,))
    _round_trip(pipeline, cancer.X, proba=True)
    _round_trip(linreg, cancer.X, proba=False)
    versions = get_flavor("sklearn").library_versions()
    assert versions["scikit-learn"] and versions["skops"]


def test_sklearn_untrusted_type_named(iris: Any) -> None:
    model = make_pipeline(FunctionTransformer(operator.abs), LogisticRegression(max_iter=500))
    model.fit(iris.X, iris.y)
    data = skops.io.dumps(model)
    flavor = get_flavor("sklearn")
    with pytest.raises(UnsafeArtifact, match=r"_operator\.abs.*trusted_types"):
        flavor.validate(data, LoadSpec(iris.names))
    spec = LoadSpec(iris.names, trusted_types=("_operator.abs",))
    flavor.validate(data, spec)
    out = flavor.load(data, spec).predict(iris.X)
    assert out.predictions.tolist() == model.predict(iris.X).tolist()


def test_sklearn_refuses_non_skops(iris: Any) -> None:
    with pytest.raises(ModelLoadFailed, match="not a skops file"):
        get_flavor("sklearn").validate(b'{"a": 1}', LoadSpec(iris.names))


def test_xgboost_round_trips(xgb_clf: Any, cancer: Any, iris: Any) -> None:
    xgboost = pytest.importorskip("xgboost")
    _round_trip(xgb_clf, iris.X, proba=True)
    binary = xgboost.XGBClassifier(n_estimators=5, n_jobs=1).fit(cancer.X, cancer.y)
    _round_trip(binary, cancer.X, proba=True)
    _round_trip(
        xgboost.XGBRegressor(n_estimators=5, n_jobs=1).fit(iris.X, iris.y), iris.X, proba=False
    )
    # the JSON form loads as well
    data = bytes(xgb_clf.get_booster().save_raw("json"))
    out = get_flavor("xgboost").load(data, LoadSpec(iris.names)).predict(iris.X)
    assert out.classes == [0, 1, 2]
    with pytest.raises(ModelLoadFailed, match="not an XGBoost model"):
        get_flavor("xgboost").validate(b"tree\n", LoadSpec(iris.names))


def test_lightgbm_round_trips(lgbm_clf: Any, cancer: Any, iris: Any) -> None:
    lightgbm = pytest.importorskip("lightgbm")
    _round_trip(lgbm_clf, iris.X, proba=True)
    binary = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1, n_jobs=1).fit(cancer.X, cancer.y)
    _round_trip(binary, cancer.X, proba=True)
    reg = lightgbm.LGBMRegressor(n_estimators=5, verbose=-1, n_jobs=1).fit(iris.X, iris.y)
    _round_trip(reg, iris.X, proba=False)
    with pytest.raises(ModelLoadFailed, match="not a LightGBM model"):
        get_flavor("lightgbm").validate(b"\x00\x01", LoadSpec(iris.names))


def test_onnx_round_trip(onnx_model: Any, logreg: Any, iris: Any) -> None:
    data = serialize_model(onnx_model).data
    spec = LoadSpec(iris.names, classes=(0, 1, 2))
    out = get_flavor("onnx").load(data, spec).predict(iris.X)
    np.testing.assert_allclose(out.probabilities, logreg.predict_proba(iris.X), atol=1e-5)
    assert out.predictions.tolist() == logreg.predict(iris.X).tolist()
    assert out.classes == [0, 1, 2]


def test_onnx_zipmap_and_regressor(logreg: Any, linreg: Any, iris: Any, cancer: Any) -> None:
    skl2onnx = pytest.importorskip("skl2onnx")
    zipmap = skl2onnx.to_onnx(logreg, iris.X[:1].astype(np.float32))
    out = get_flavor("onnx").load(zipmap.SerializeToString(), LoadSpec(iris.names)).predict(iris.X)
    assert out.classes == [0, 1, 2]
    assert out.probabilities is not None
    np.testing.assert_allclose(out.probabilities, logreg.predict_proba(iris.X), atol=1e-5)
    reg = skl2onnx.to_onnx(linreg, cancer.X[:1].astype(np.float32))
    out = get_flavor("onnx").load(reg.SerializeToString(), LoadSpec(cancer.names)).predict(cancer.X)
    assert out.probabilities is None and out.predictions.shape == (len(cancer.X),)
    np.testing.assert_allclose(out.predictions, linreg.predict(cancer.X), rtol=1e-4, atol=1e-4)


def _matmul_model(onnx: Any) -> Any:
    """y = X @ W with W as an initializer, the tensor external data would replace."""
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.ones((4, 1), dtype=np.float32), name="W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        initializer=[weights],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_onnx_external_data_refused(iris: Any) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx.external_data_helper import convert_model_to_external_data

    model = _matmul_model(onnx)
    inline = get_flavor("onnx").load(model.SerializeToString(), LoadSpec(iris.names))
    np.testing.assert_allclose(inline.predict(iris.X).predictions, iris.X.sum(axis=1), rtol=1e-5)
    convert_model_to_external_data(model, location="../../etc/weights.bin", size_threshold=0)
    with pytest.raises(UnsafeArtifact, match="external data.*'W'"):
        get_flavor("onnx").validate(model.SerializeToString(), LoadSpec(iris.names))


def test_onnx_refuses_garbage(iris: Any) -> None:
    with pytest.raises(ModelLoadFailed, match="ONNX"):
        get_flavor("onnx").load(b"\xff\xfe not onnx", LoadSpec(iris.names))


def _pyfunc_doc(**init: Any) -> bytes:
    return json.dumps({"class": "pyfunc_example:ThresholdModel", "init": init}).encode()


def test_pyfunc_trusted_module_works(monkeypatch: pytest.MonkeyPatch, iris: Any) -> None:
    monkeypatch.syspath_prepend(HERE)
    flavor = get_flavor("pyfunc")
    spec = LoadSpec(iris.names, trusted_modules=("pyfunc_example",))
    flavor.validate(_pyfunc_doc(threshold=5.5), spec)
    out = flavor.load(_pyfunc_doc(threshold=5.5), spec).predict(iris.X)
    assert out.predictions.tolist() == (iris.X[:, 0] > 5.5).astype(int).tolist()
    assert out.probabilities is not None and out.classes == [0, 1]
    plain = flavor.load(_pyfunc_doc(with_proba=False), spec).predict(iris.X)
    assert plain.probabilities is None and plain.predictions.shape == (len(iris.X),)


@pytest.mark.parametrize("trusted", [(), ("pyfunc",), ("pyfunc_example.sub",), ("os",)])
def test_pyfunc_untrusted_module_refused(trusted: tuple[str, ...], iris: Any) -> None:
    with pytest.raises(UnsafeArtifact, match="SLIPWAY_PYFUNC_TRUSTED_MODULES"):
        get_flavor("pyfunc").load(_pyfunc_doc(), LoadSpec(iris.names, trusted_modules=trusted))


@pytest.mark.parametrize(
    "doc", [b"not json", b"[]", b'{"class": "no_colon"}', b'{"class": "a:b c"}']
)
def test_pyfunc_bad_document(doc: bytes, iris: Any) -> None:
    with pytest.raises(ModelLoadFailed, match="pyfunc"):
        get_flavor("pyfunc").validate(doc, LoadSpec(iris.names, trusted_modules=("a",)))


def test_every_flavor_refuses_pickle(logreg: Any, iris: Any) -> None:
    import pickle

    data = pickle.dumps(logreg)
    spec = LoadSpec(iris.names, trusted_modules=("pyfunc_example",))
    for name in ("sklearn", "onnx", "xgboost", "lightgbm", "pyfunc"):
        with pytest.raises(UnsafeArtifact, match="pickle"):
            get_flavor(name).load(data, spec)
