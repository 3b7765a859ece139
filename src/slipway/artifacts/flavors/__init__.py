"""Flavors: how an artifact is checked, loaded and called.

Built-in flavors are registered through the ``slipway.flavors`` entry point group, the
same way a third-party package adds its own, and looked up by name::

    flavor = get_flavor("sklearn")
    flavor.validate(data, spec)            # cheap, at registration
    predictor = flavor.load(data, spec)
    predictor.predict(X).predictions
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from slipway.errors import ModelLoadFailed
from slipway.plugins import Registry

__all__ = [
    "Flavor",
    "LoadSpec",
    "ModelOutput",
    "Predictor",
    "available_flavors",
    "class_labels",
    "get_flavor",
    "labels_of",
    "library_version",
    "missing_extra",
]

_GROUP = "slipway.flavors"


@dataclass
class ModelOutput:
    predictions: np.ndarray  # (n,): class labels for classifiers, values for regressors
    probabilities: np.ndarray | None  # (n, k) float, or None
    classes: list[Any] | None  # column labels of probabilities, plain Python values


class Predictor(Protocol):
    """What serving calls. Optional attributes, read with ``getattr``: ``batchable``
    (default True: concurrent requests may share one call) and ``compute_only`` (default
    False; True: calls never wait on I/O or locks, so a short one may run on the event
    loop, ``serving/calls.py``)."""

    def predict(self, X: np.ndarray) -> ModelOutput: ...


@dataclass(frozen=True)
class LoadSpec:
    feature_names: tuple[str, ...]
    classes: tuple[Any, ...] | None = None
    trusted_types: tuple[str, ...] = ()
    trusted_modules: tuple[str, ...] = ()


class Flavor(Protocol):
    name: str

    def validate(self, data: bytes, spec: LoadSpec) -> None: ...

    def load(self, data: bytes, spec: LoadSpec) -> Predictor: ...

    def library_versions(self) -> dict[str, str]: ...


_FLAVORS: Registry[Flavor] = Registry(_GROUP, "flavor")
available_flavors = _FLAVORS.names
get_flavor = _FLAVORS.get


def library_version(dist: str) -> str:
    """Installed version of a distribution, or "" when it is not installed."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return ""


def missing_extra(library: str, extra: str) -> ModelLoadFailed:
    return ModelLoadFailed(
        f"the {library} library is not installed on the server; "
        f"install it with: pip install 'slipway[{extra}]'"
    )


def class_labels(spec: LoadSpec, k: int) -> list[Any]:
    """Probability column labels: the signature's classes, else 0..k-1."""
    if spec.classes is None:
        return list(range(k))
    if len(spec.classes) != k:
        raise ModelLoadFailed(
            f"the model gives {k} probability columns but the signature names "
            f"{len(spec.classes)} classes"
        )
    return list(spec.classes)


def labels_of(probabilities: np.ndarray, classes: list[Any]) -> np.ndarray:
    """The most probable class of each row, as a 1-D array of labels."""
    idx = np.argmax(probabilities, axis=1)
    labels: np.ndarray = np.asarray(classes, dtype=object if _mixed(classes) else None)
    return np.asarray(labels[idx])


def _mixed(classes: list[Any]) -> bool:
    return any(isinstance(c, str) for c in classes) and not all(isinstance(c, str) for c in classes)
