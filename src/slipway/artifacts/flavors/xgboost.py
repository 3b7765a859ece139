"""XGBoost boosters in their native JSON or UBJSON format (never pickle)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from slipway.artifacts.flavors import (
    LoadSpec,
    ModelOutput,
    class_labels,
    labels_of,
    library_version,
    missing_extra,
)
from slipway.artifacts.safety import refuse_pickle
from slipway.errors import ModelLoadFailed


class XGBoostFlavor:
    name = "xgboost"

    def validate(self, data: bytes, spec: LoadSpec) -> None:
        self._booster(data)

    def load(self, data: bytes, spec: LoadSpec) -> XGBoostPredictor:
        booster = self._booster(data)
        try:
            objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
        except (KeyError, ValueError, TypeError) as exc:
            raise ModelLoadFailed(f"cannot read the booster's objective: {exc}") from None
        return XGBoostPredictor(booster, str(objective), spec)

    def library_versions(self) -> dict[str, str]:
        return {"xgboost": library_version("xgboost") or library_version("xgboost-cpu")}

    def _booster(self, data: bytes) -> Any:
        refuse_pickle(data)
        try:
            import xgboost
        except ImportError:
            raise missing_extra("xgboost", "xgboost") from None
        if data[:1] not in (b"{", b"["):  # JSON and UBJSON documents both open an object
            raise ModelLoadFailed("not an XGBoost model (expected JSON or UBJSON from save_raw)")
        try:
            booster = xgboost.Booster(params={"nthread": 1})
            booster.load_model(bytearray(data))
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadFailed(f"XGBoost could not load the model: {reason}") from None
        booster.set_param({"nthread": 1})
        return booster


class XGBoostPredictor:
    # Its calls only compute: a short one may run on the event loop (serving/calls.py).
    compute_only = True

    def __init__(self, booster: Any, objective: str, spec: LoadSpec) -> None:
        self.booster = booster
        self.objective = objective
        self.spec = spec

    def predict(self, X: np.ndarray) -> ModelOutput:
        raw = np.asarray(self.booster.inplace_predict(X), dtype=np.float64)
        if self.objective == "binary:logistic":
            p = raw.reshape(-1)
            proba = np.column_stack([1.0 - p, p])
        elif self.objective == "multi:softprob":
            proba = raw.reshape(len(X), -1)
        else:  # regression, ranking, raw margins: the values themselves
            return ModelOutput(raw.reshape(len(X), -1)[:, 0] if raw.ndim > 1 else raw, None, None)
        classes = class_labels(self.spec, proba.shape[1])
        return ModelOutput(labels_of(proba, classes), proba, classes)
