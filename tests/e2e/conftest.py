"""Shared data, trained models and helpers for the end-to-end suites.

Models are trained once per session (they are small) and registered through the SDK
against whatever real server a test uses. Helpers reach tests through the ``e2e``
fixture (test modules here are not a package, so they cannot import this file).
"""

from __future__ import annotations

import sqlite3
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@dataclass(frozen=True)
class Iris:
    X: np.ndarray  # float64, (150, 4)
    y: np.ndarray  # int labels 0..2
    y_names: np.ndarray  # string labels ("setosa", ...)
    names: list[str]  # class names, index = int label


def rows_of(X: np.ndarray) -> list[dict[str, float]]:
    """Request rows keyed by the iris feature names."""
    return [dict(zip(FEATURES, map(float, r), strict=True)) for r in X]


@pytest.fixture(scope="session")
def iris() -> Iris:
    from sklearn.datasets import load_iris

    data = load_iris()
    names = [str(n) for n in data.target_names]
    y = np.asarray(data.target, dtype=np.int64)
    return Iris(np.asarray(data.data, dtype=np.float64), y, np.asarray(names)[y], names)


def train_logreg(iris: Iris, C: float = 1.0) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=1000).fit(iris.X, iris.y_names)


@pytest.fixture(scope="session")
def logreg(iris: Iris) -> Any:
    """LogisticRegression on iris with string class labels."""
    return train_logreg(iris)


def register_logreg(client: Any, name: str, iris: Iris, model: Any) -> dict[str, Any]:
    version: dict[str, Any] = client.register(
        model,
        name=name,
        X_train=iris.X,
        y_train=iris.y_names,
        X_eval=iris.X[::3],
        y_eval=iris.y_names[::3],
        owner="ml-team",
        feature_names=FEATURES,
    )
    return version


def artifact_file(home: Path, sha256: str) -> Path:
    """Where the local artifact store keeps ``sha256`` (ArtifactStore layout)."""
    return home / "artifacts" / "sha256" / sha256[:2] / sha256


def flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if offset is None else offset
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def record_ids_in_store(home: Path, endpoint: str) -> set[str]:
    """Prediction record ids straight from the SQLite store (read-only), for checks over
    thousands of ids that would take too long one HTTP request at a time."""
    uri = f"file:{home / 'slipway.db'}?mode=ro"
    with sqlite3.connect(uri, uri=True) as conn:
        rows = conn.execute(
            "SELECT id FROM prediction_records WHERE endpoint = ?", (endpoint,)
        ).fetchall()
    conn.close()
    return {r[0] for r in rows}


def record_id(prediction_id: str) -> str:
    """A per-row prediction id is ``<record id>-<row>``."""
    return prediction_id.rsplit("-", 1)[0]


@pytest.fixture(scope="session")
def e2e() -> types.SimpleNamespace:
    return types.SimpleNamespace(
        FEATURES=FEATURES,
        rows_of=rows_of,
        train_logreg=train_logreg,
        register_logreg=register_logreg,
        artifact_file=artifact_file,
        flip_byte=flip_byte,
        record_ids_in_store=record_ids_in_store,
        record_id=record_id,
    )
