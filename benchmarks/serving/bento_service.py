"""BentoML serving the benchmark model, the way BentoML's scikit-learn examples do it.

The model is saved into the BentoML model store first (``python bento_service.py save``,
in the BentoML venv, with ``BENTOML_HOME`` set); then

    BENCH_MODEL=logreg bentoml serve bento_service:Classifier --port 3000

answers ``POST /predict`` with ``{"input_data": [[0.1, ...]]}`` -> ``[[p0, p1]]``.
``BENCH_WORKERS`` sets the service's worker processes (BentoML's default is 1).
"""

from __future__ import annotations

import os
import sys

import bentoml
import numpy as np

KIND = os.environ.get("BENCH_MODEL", "logreg")
TAG = f"bench-{KIND}"


@bentoml.service(workers=int(os.environ.get("BENCH_WORKERS", "1")))
class Classifier:
    model_ref = bentoml.models.BentoModel(f"{TAG}:latest")

    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model(self.model_ref)

    @bentoml.api
    def predict(self, input_data: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(input_data)


def save() -> None:
    from models import MODELS, train

    for kind in MODELS:
        bentoml.sklearn.save_model(f"bench-{kind}", train(kind))


if __name__ == "__main__" and sys.argv[1:] == ["save"]:
    save()
