"""LightGBM boosters in their native text format (never pickle)."""

from __future__ import annotations

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


class LightGBMFlavor:
    name = "lightgbm"

    def validate(self, data: bytes, spec: LoadSpec) -> None:
        self._booster(data)

    def load(self, data: bytes, spec: LoadSpec) -> LightGBMPredictor:
        booster = self._booster(data)
        objective = str(booster.params.get("objective") or "")
        if not objective:
            objective = str(booster.dump_model(num_iteration=0).get("objective", ""))
        # "binary sigmoid:1" -> "binary"; "multiclass num_class:3" -> "multiclass"
        return LightGBMPredictor(booster, objective.split()[0] if objective else "", spec)

    def library_versions(self) -> dict[str, str]:
        return {"lightgbm": library_version("lightgbm")}

    def _booster(self, data: bytes) -> Any:
        refuse_pickle(data)
        try:
            import lightgbm
        except ImportError:
            raise missing_extra("lightgbm", "lightgbm") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ModelLoadFailed("not a LightGBM model (expected the text format)") from None
        if not text.startswith("tree\n"):
            raise ModelLoadFailed(
                "not a LightGBM model (expected the text of Booster.model_to_string())"
            )
        try:
            return lightgbm.Booster(model_str=text)
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadFailed(f"LightGBM could not load the model: {reason}") from None


_CLASSIFIERS = ("binary", "multiclass", "softmax", "multiclassova", "ova", "cross_entropy")


class LightGBMPredictor:
    # Its calls only compute: a short one may run on the event loop (serving/calls.py).
    compute_only = True

    def __init__(self, booster: Any, objective: str, spec: LoadSpec) -> None:
        self.booster = booster
        self.objective = objective
        self.spec = spec

    def predict(self, X: np.ndarray) -> ModelOutput:
        raw = np.asarray(self.booster.predict(X, num_threads=1), dtype=np.float64)
        if self.objective in ("binary", "cross_entropy"):
            p = raw.reshape(-1)
            proba = np.column_stack([1.0 - p, p])
        elif self.objective in _CLASSIFIERS:
            proba = raw.reshape(len(X), -1)
        else:
            return ModelOutput(raw.reshape(-1), None, None)
        classes = class_labels(self.spec, proba.shape[1])
        return ModelOutput(labels_of(proba, classes), proba, classes)
