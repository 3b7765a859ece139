"""Each smoke test spawns a real child process (about a second each): keep them few."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from slipway.artifacts.flavors import LoadSpec
from slipway.artifacts.sandbox import SmokeResult, smoke_test
from slipway.artifacts.serialize import serialize_model

HERE = str(Path(__file__).parent)


def _smoke(
    data: bytes,
    flavor: str,
    data_set: Any,
    *,
    classes: list[Any] | None = None,
    memory_mb: int = 4096,
    timeout_s: float = 60.0,
    rows: int = 5,
    trusted_modules: tuple[str, ...] = (),
) -> SmokeResult:
    spec = LoadSpec(
        data_set.names,
        tuple(classes) if classes else None,
        trusted_modules=trusted_modules,
    )
    result = smoke_test(
        data,
        sha256=hashlib.sha256(data).hexdigest(),
        flavor=flavor,
        spec=spec,
        signature=data_set.signature,
        example_rows=data_set.rows(rows),
        memory_mb=memory_mb,
        timeout_s=timeout_s,
    )
    assert "\n" not in result.reason and "slipway-smoke" not in result.reason
    return result


@pytest.mark.parametrize("fixture", ["logreg", "onnx_model", "xgb_clf", "lgbm_clf"])
def test_each_flavor_passes(fixture: str, request: pytest.FixtureRequest, iris: Any) -> None:
    s = serialize_model(request.getfixturevalue(fixture))
    assert _smoke(s.data, s.flavor, iris, classes=s.classes) == SmokeResult(True, "", 5)


def test_pyfunc_passes_with_trusted_module(monkeypatch: pytest.MonkeyPatch, iris: Any) -> None:
    monkeypatch.syspath_prepend(HERE)  # the child gets the parent's import path
    doc = b'{"class": "pyfunc_example:ThresholdModel", "init": {"threshold": 5.0}}'
    result = _smoke(doc, "pyfunc", iris, trusted_modules=("pyfunc_example",))
    assert result == SmokeResult(True, "", 5)


def test_corrupted_artifact_fails(logreg: Any, iris: Any) -> None:
    data = serialize_model(logreg).data
    result = _smoke(data[: len(data) // 2], "sklearn", iris)
    assert not result.ok and result.rows == 0
    assert result.reason.startswith("load failed: ModelLoadFailed: not a skops file")


def test_wrong_feature_count_fails(logreg: Any, iris: Any) -> None:
    from dataclasses import replace

    three = replace(iris, X=iris.X[:, :3], names=iris.names[:3])
    result = _smoke(serialize_model(logreg).data, "sklearn", three)
    assert not result.ok
    assert "predict failed" in result.reason and "3 features" in result.reason


def test_memory_limit_fails_cleanly(logreg: Any, iris: Any) -> None:
    # 256 MiB of address space is too little to import scikit-learn (measured: ~300 MiB).
    result = _smoke(serialize_model(logreg).data, "sklearn", iris, memory_mb=256)
    assert not result.ok
    assert result.reason == "load ran out of memory (limit 256 MiB)"


def test_timeout(logreg: Any, iris: Any) -> None:
    result = _smoke(serialize_model(logreg).data, "sklearn", iris, timeout_s=0.05)
    assert result == SmokeResult(False, "smoke test timed out after 0.05s", 0)


def test_no_example_rows_needs_no_process(logreg: Any, iris: Any) -> None:
    result = _smoke(serialize_model(logreg).data, "sklearn", iris, rows=0)
    assert result == SmokeResult(False, "no example rows to smoke-test with", 0)


def test_hash_mismatch_refused(iris: Any) -> None:
    result = smoke_test(
        b"abc",
        sha256="0" * 64,
        flavor="sklearn",
        spec=LoadSpec(iris.names),
        signature=iris.signature,
        example_rows=iris.rows(1),
        memory_mb=4096,
        timeout_s=10,
    )
    assert not result.ok and "hash mismatch" in result.reason
