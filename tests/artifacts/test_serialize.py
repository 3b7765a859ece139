from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from slipway.artifacts.serialize import serialize_model
from slipway.errors import ValidationFailed


def test_sklearn_classes_are_plain(logreg: Any) -> None:
    s = serialize_model(logreg)
    assert s.flavor == "sklearn" and s.data[:2] == b"PK"
    assert s.classes == [0, 1, 2] and all(type(c) is int for c in s.classes)
    assert set(s.library_versions) == {"scikit-learn", "skops"}


def test_string_classes(iris: Any) -> None:
    y = np.array(["setosa", "versicolor", "virginica"])[iris.y.astype(int)]
    s = serialize_model(LogisticRegression(max_iter=1000).fit(iris.X, y))
    assert s.classes == ["setosa", "versicolor", "virginica"]


def test_pipeline_and_regressor(pipeline: Any, linreg: Any) -> None:
    assert serialize_model(pipeline).classes == [0, 1]
    s = serialize_model(linreg)
    assert s.flavor == "sklearn" and s.classes is None


def test_boosters_and_wrappers(xgb_clf: Any, lgbm_clf: Any) -> None:
    s = serialize_model(xgb_clf)
    assert (s.flavor, s.classes, s.data[:1]) == ("xgboost", [0, 1, 2], b"{")
    booster = serialize_model(xgb_clf.get_booster())
    assert booster.flavor == "xgboost" and booster.classes is None
    s = serialize_model(lgbm_clf)
    assert (s.flavor, s.classes) == ("lightgbm", [0, 1, 2])
    assert s.data.startswith(b"tree\n")
    assert serialize_model(lgbm_clf.booster_).classes is None


def test_onnx_model(onnx_model: Any) -> None:
    s = serialize_model(onnx_model)
    assert (s.flavor, s.classes) == ("onnx", None)
    assert s.data == onnx_model.SerializeToString()


@pytest.mark.parametrize("obj", [object(), {"w": 1}, np.zeros(3), LogisticRegression])
def test_unknown_objects_refused(obj: Any) -> None:
    with pytest.raises(ValidationFailed, match="cannot serialize .*pass flavor and artifact bytes"):
        serialize_model(obj)
