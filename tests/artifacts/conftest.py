"""Tiny real models, trained once per session, and their artifacts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

IRIS_NAMES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


@dataclass
class Data:
    X: np.ndarray
    y: np.ndarray
    names: tuple[str, ...]

    @property
    def signature(self) -> dict[str, Any]:
        return {"inputs": [{"name": n, "type": "float"} for n in self.names]}

    def rows(self, n: int) -> list[dict[str, Any]]:
        return [dict(zip(self.names, map(float, r), strict=True)) for r in self.X[:n]]


@pytest.fixture(scope="session")
def iris() -> Data:
    X, y = load_iris(return_X_y=True)
    return Data(X, y, IRIS_NAMES)


@pytest.fixture(scope="session")
def cancer() -> Data:
    X, y = load_breast_cancer(return_X_y=True)
    return Data(X, y, tuple(f"f{i}" for i in range(X.shape[1])))


@pytest.fixture(scope="session")
def logreg(iris: Data) -> LogisticRegression:
    return LogisticRegression(max_iter=1000).fit(iris.X, iris.y)


@pytest.fixture(scope="session")
def pipeline(cancer: Data) -> Any:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
        cancer.X, cancer.y
    )


@pytest.fixture(scope="session")
def hgb(iris: Data) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(max_iter=10).fit(iris.X, iris.y)


@pytest.fixture(scope="session")
def linreg(cancer: Data) -> LinearRegression:
    return LinearRegression().fit(cancer.X, cancer.y.astype(float))


@pytest.fixture(scope="session")
def xgb_clf(iris: Data) -> Any:
    xgboost = pytest.importorskip("xgboost")
    return xgboost.XGBClassifier(n_estimators=5, n_jobs=1).fit(iris.X, iris.y)


@pytest.fixture(scope="session")
def lgbm_clf(iris: Data) -> Any:
    lightgbm = pytest.importorskip("lightgbm")
    return lightgbm.LGBMClassifier(n_estimators=5, verbose=-1, n_jobs=1).fit(iris.X, iris.y)


@pytest.fixture(scope="session")
def onnx_model(logreg: LogisticRegression, iris: Data) -> Any:
    skl2onnx = pytest.importorskip("skl2onnx")
    sample = iris.X[:1].astype(np.float32)
    return skl2onnx.to_onnx(logreg, sample, options={id(logreg): {"zipmap": False}})
