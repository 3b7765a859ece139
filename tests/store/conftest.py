"""The store suite: every test here runs on SQLite and on PostgreSQL (``store_url``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from slipway.artifacts.store import ArtifactStore
from slipway.registry.models import ModelService
from slipway.registry.versions import VersionService
from slipway.serving.endpoints import EndpointService
from slipway.serving.pool import PredictorPool


@pytest.fixture
def artifacts(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(str(tmp_path / "artifacts"), max_bytes=64 * 1024 * 1024)


@pytest.fixture
def models(engine: Engine) -> ModelService:
    return ModelService(engine)


@pytest.fixture
def versions(engine: Engine, artifacts: ArtifactStore, models: ModelService) -> VersionService:
    return VersionService(engine, artifacts, models)


@pytest.fixture
def endpoints(
    engine: Engine, versions: VersionService, artifacts: ArtifactStore
) -> EndpointService:
    return EndpointService(engine, versions, PredictorPool(artifacts))


@pytest.fixture(scope="session")
def iris_skops() -> tuple[bytes, dict, list[dict]]:
    """A tiny skops artifact, its signature and example rows."""
    import skops.io as sio
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    names = ["a", "b", "c", "d"]
    signature = {"inputs": [{"name": n, "type": "float"} for n in names], "classes": [0, 1, 2]}
    rows = [dict(zip(names, map(float, x), strict=True)) for x in X[:3]]
    return sio.dumps(model), signature, rows


def a_record(rid: str) -> dict[str, Any]:
    """A prediction record with id ``rid``, as the serving path hands it to the writer."""
    from slipway.ids import utcnow

    return {
        "id": rid,
        "created_at": utcnow(),
        "endpoint": "e",
        "model": "m",
        "version": 1,
        "version_id": "v",
        "caller": "t",
        "route": "plain",
        "rows": 1,
        "inputs": [{"a": 1.0}],
        "outputs": {"predictions": [1]},
        "latency_ms": 0.5,
        "outcome": "ok",
    }
