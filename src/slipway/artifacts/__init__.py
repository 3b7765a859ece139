"""Artifacts: a content-addressed store, pickle refusal, flavors and a smoke-test sandbox.

Nothing here imports a model library at import time; flavors import theirs when used.
"""

from slipway.artifacts.flavors import (
    Flavor,
    LoadSpec,
    ModelOutput,
    Predictor,
    available_flavors,
    get_flavor,
)
from slipway.artifacts.safety import refuse_pickle
from slipway.artifacts.sandbox import SmokeResult, smoke_test
from slipway.artifacts.serialize import SerializedModel, serialize_model
from slipway.artifacts.store import ArtifactInfo, ArtifactStore, Upload

__all__ = [
    "ArtifactInfo",
    "ArtifactStore",
    "Flavor",
    "LoadSpec",
    "ModelOutput",
    "Predictor",
    "SerializedModel",
    "SmokeResult",
    "Upload",
    "available_flavors",
    "get_flavor",
    "refuse_pickle",
    "serialize_model",
    "smoke_test",
]
