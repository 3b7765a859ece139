"""scikit-learn models stored with skops, whose loader checks every type before use."""

from __future__ import annotations

import importlib
import importlib.util
import io
import zipfile
from typing import Any

import numpy as np

from slipway.artifacts.flavors import LoadSpec, ModelOutput, library_version
from slipway.artifacts.safety import refuse_pickle
from slipway.errors import ModelLoadFailed, UnsafeArtifact


class SklearnFlavor:
    name = "sklearn"

    def validate(self, data: bytes, spec: LoadSpec) -> None:
        self._trusted(data, spec)

    def load(self, data: bytes, spec: LoadSpec) -> SklearnPredictor:
        trusted = self._trusted(data, spec)
        import skops.io

        try:
            model = skops.io.loads(data, trusted=trusted)
        except UnsafeArtifact:
            raise
        except Exception as exc:
            raise ModelLoadFailed(f"skops could not load the model: {exc}") from None
        if not hasattr(model, "predict"):
            raise ModelLoadFailed(f"the skops file holds a {type(model).__name__}, not a model")
        return SklearnPredictor(model)

    def library_versions(self) -> dict[str, str]:
        return {"scikit-learn": library_version("scikit-learn"), "skops": library_version("skops")}

    def _trusted(self, data: bytes, spec: LoadSpec) -> list[str]:
        """The untrusted types the registrant vouched for; refuse if any is left over."""
        refuse_pickle(data)
        if not zipfile.is_zipfile(io.BytesIO(data)):
            raise ModelLoadFailed("not a skops file (expected a zip archive written by skops)")
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            if "schema.json" not in zf.namelist():
                raise ModelLoadFailed("not a skops file (schema.json is missing)")
        import skops.io

        try:
            untrusted = skops.io.get_untrusted_types(data=data)
        except Exception as exc:
            raise ModelLoadFailed(f"not a readable skops file: {exc}") from None
        unknown = sorted(t for t in untrusted if t not in spec.trusted_types)
        if unknown:
            raise UnsafeArtifact(
                f"the skops file uses types that are not trusted by default: "
                f"{', '.join(unknown)}. Review them; if you trust them, pass "
                f"trusted_types={unknown!r} when registering the version"
            )
        return [t for t in untrusted if t in spec.trusted_types]


class SklearnPredictor:
    # Its calls only compute: a short one may run on the event loop (serving/calls.py).
    compute_only = True

    def __init__(self, model: Any) -> None:
        self.model = model
        self._proba = hasattr(model, "predict_proba")
        names = getattr(model, "feature_names_in_", None)
        # Fitted on a DataFrame: give it one, or sklearn warns "X does not have valid
        # feature names" on every call. Without pandas, plain arrays are all we have.
        self._pandas: Any = None
        self._columns: list[str] | None = None
        if names is not None and importlib.util.find_spec("pandas") is not None:
            self._pandas = importlib.import_module("pandas")
            self._columns = [str(n) for n in names]

    def predict(self, X: np.ndarray) -> ModelOutput:
        import sklearn

        data: Any = X
        if self._columns is not None:
            data = self._pandas.DataFrame(X, columns=self._columns)
        # The contract has already checked the input: skip sklearn's per-call validation.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            if self._proba:
                proba = np.asarray(self.model.predict_proba(data), dtype=np.float64)
                classes = self.model.classes_
                return ModelOutput(
                    predictions=np.asarray(classes)[np.argmax(proba, axis=1)],
                    probabilities=proba,
                    classes=[c.item() if isinstance(c, np.generic) else c for c in classes],
                )
            return ModelOutput(np.asarray(self.model.predict(data)), None, None)
