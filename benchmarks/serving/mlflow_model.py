"""Save the benchmark models for MLflow (run in the MLflow venv): ``python mlflow_model.py DIR``
writes ``DIR/logreg`` and ``DIR/hgb``, served with ``mlflow models serve -m DIR/logreg``.

Saved the usual way: ``mlflow.sklearn.save_model`` with the signature inferred from the
training matrix (a tensor signature, which accepts both ``{"inputs": [[...]]}`` and
``dataframe_split``), and ``predict_proba`` as the pyfunc method, so the scoring server
answers the same probabilities as the other servers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import mlflow.sklearn
from mlflow.models import infer_signature
from models import HGB_TRUSTED_TYPES, MODELS, data, train


def main(out: Path) -> None:
    X, _ = data()
    for kind in MODELS:
        model = train(kind)
        mlflow.sklearn.save_model(
            model,
            str(out / kind),
            signature=infer_signature(X, model.predict_proba(X[:5])),
            pyfunc_predict_fn="predict_proba",
            skops_trusted_types=HGB_TRUSTED_TYPES if kind == "hgb" else None,
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
