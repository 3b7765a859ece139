"""Turn an in-memory model into a flavor and artifact bytes, without pickle.

Detection goes by the object's type and module name, so optional libraries are only
imported when the model already comes from them::

    >>> s = serialize_model(LogisticRegression().fit(X, y))
    >>> s.flavor, s.classes
    ('sklearn', [0, 1, 2])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from slipway.errors import ValidationFailed


@dataclass
class SerializedModel:
    flavor: str
    data: bytes
    classes: list[Any] | None
    library_versions: dict[str, str] = field(default_factory=dict)


def serialize_model(model: Any) -> SerializedModel:
    module = type(model).__module__.split(".")[0]
    if module == "xgboost":
        return _xgboost(model)
    if module == "lightgbm":
        return _lightgbm(model)
    if module == "onnx" and type(model).__name__ == "ModelProto":
        from slipway.artifacts.flavors import get_flavor

        versions = get_flavor("onnx").library_versions()
        return SerializedModel("onnx", model.SerializeToString(), None, versions)
    if _is_sklearn(model):
        import skops.io

        from slipway.artifacts.flavors import get_flavor

        data = skops.io.dumps(model)
        versions = get_flavor("sklearn").library_versions()
        return SerializedModel("sklearn", data, _classes(model), versions)
    raise ValidationFailed.field(
        "model",
        f"cannot serialize {type(model).__module__}.{type(model).__qualname__}; "
        "pass flavor and artifact bytes explicitly",
    )


def _is_sklearn(model: Any) -> bool:
    # Any estimator built on sklearn's BaseEstimator (pipelines, third-party ones too).
    for klass in type(model).__mro__:
        if klass.__module__.startswith("sklearn.") and klass.__name__ == "BaseEstimator":
            return True
    return False


def _xgboost(model: Any) -> SerializedModel:
    from slipway.artifacts.flavors import get_flavor

    booster = model.get_booster() if hasattr(model, "get_booster") else model
    data = bytes(booster.save_raw("ubj"))
    return SerializedModel(
        "xgboost", data, _classes(model), get_flavor("xgboost").library_versions()
    )


def _lightgbm(model: Any) -> SerializedModel:
    from slipway.artifacts.flavors import get_flavor

    booster = model.booster_ if hasattr(model, "booster_") else model
    data = booster.model_to_string().encode("utf-8")
    versions = get_flavor("lightgbm").library_versions()
    return SerializedModel("lightgbm", data, _classes(model), versions)


def _classes(model: Any) -> list[Any] | None:
    try:
        classes = getattr(model, "classes_", None)
    except AttributeError:  # unfitted wrappers raise instead of returning None
        return None
    if classes is None:
        return None
    return [c.item() if isinstance(c, np.generic) else c for c in np.asarray(classes).tolist()]
