"""Trusted Python code as a model, opt-in per module prefix.

The artifact is a small JSON document naming a class and its keyword arguments::

    {"class": "acme.models:Scorer", "init": {"threshold": 0.5}}

The class is imported only when its module starts with one of the server's trusted
prefixes (``SLIPWAY_PYFUNC_TRUSTED_MODULES``); with none configured, pyfunc is off.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

import numpy as np

from slipway.artifacts.flavors import LoadSpec, ModelOutput, library_version
from slipway.artifacts.safety import refuse_pickle
from slipway.errors import ModelLoadFailed, UnsafeArtifact

_MAX_DOC = 1 << 20


class PyfuncFlavor:
    name = "pyfunc"

    def validate(self, data: bytes, spec: LoadSpec) -> None:
        self._parse(data, spec)

    def load(self, data: bytes, spec: LoadSpec) -> PyfuncPredictor:
        module_name, class_name, init = self._parse(data, spec)
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            raise ModelLoadFailed(
                f"cannot import pyfunc class {module_name}:{class_name}: {exc}"
            ) from None
        try:
            instance = cls(**init)
        except Exception as exc:
            raise ModelLoadFailed(f"pyfunc class {class_name} failed to start: {exc}") from None
        if not callable(getattr(instance, "predict", None)):
            raise ModelLoadFailed(f"pyfunc class {class_name} has no predict method")
        return PyfuncPredictor(instance)

    def library_versions(self) -> dict[str, str]:
        return {"numpy": library_version("numpy")}

    def _parse(self, data: bytes, spec: LoadSpec) -> tuple[str, str, dict[str, Any]]:
        refuse_pickle(data)
        if len(data) > _MAX_DOC:
            raise ModelLoadFailed("pyfunc artifact is too large for a JSON class reference")
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ModelLoadFailed(f"pyfunc artifact is not valid JSON: {exc}") from None
        target = doc.get("class") if isinstance(doc, dict) else None
        init = doc.get("init", {}) if isinstance(doc, dict) else None
        if not isinstance(target, str) or target.count(":") != 1 or not isinstance(init, dict):
            raise ModelLoadFailed(
                'pyfunc artifact must be {"class": "package.module:ClassName", "init": {...}}'
            )
        module_name, class_name = target.split(":")
        if not module_name or not class_name.isidentifier():
            raise ModelLoadFailed(f"pyfunc class {target!r} is not 'package.module:ClassName'")
        if not _trusted(module_name, spec.trusted_modules):
            raise UnsafeArtifact(
                f"pyfunc module {module_name!r} is not trusted; "
                "add it to SLIPWAY_PYFUNC_TRUSTED_MODULES"
            )
        return module_name, class_name, init


def _trusted(module: str, prefixes: tuple[str, ...]) -> bool:
    """Prefix match on whole dotted components: "acme" trusts "acme.x", not "acmex"."""
    parts = module.split(".")
    for prefix in prefixes:
        wanted = [p for p in prefix.strip().split(".") if p]
        if wanted and parts[: len(wanted)] == wanted:
            return True
    return False


class PyfuncPredictor:
    def __init__(self, instance: Any) -> None:
        self.instance = instance
        # Trusted code that cannot take several requests' rows in one call says so with
        # a class attribute ``batchable = False``; micro-batching then leaves it alone.
        self.batchable = bool(getattr(instance, "batchable", True))

    def predict(self, X: np.ndarray) -> ModelOutput:
        result = self.instance.predict(X)
        if isinstance(result, dict):
            proba = result.get("probabilities")
            classes = result.get("classes")
            return ModelOutput(
                predictions=np.asarray(result["predictions"]).reshape(-1),
                probabilities=None if proba is None else np.asarray(proba, dtype=np.float64),
                classes=None if classes is None else list(classes),
            )
        return ModelOutput(np.asarray(result).reshape(-1), None, None)
