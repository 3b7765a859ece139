"""Client-side preparation of a registration: everything the SDK sends with a model.

Runs in the caller's process (it needs the estimator object and the data): serializes the
model in a safe format, infers the signature, fingerprints training and evaluation data,
evaluates the model on the evaluation data, and records parameters and the git commit.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from slipway.artifacts.serialize import serialize_model
from slipway.contracts.signature import Signature, rows_from_matrix
from slipway.errors import ValidationFailed
from slipway.registry.lineage import code_reference, fingerprint


def prepare(
    model: Any,
    *,
    X_train: Any,
    y_train: Any = None,
    X_eval: Any = None,
    y_eval: Any = None,
    metrics: dict[str, float] | None = None,
    params: dict[str, Any] | None = None,
    parent_version: int | None = None,
    examples: int = 5,
    trusted_types: list[str] | None = None,
    description: str = "",
    code_path: str = ".",
    feature_names: list[str] | None = None,
    contract: Any = "infer",
    profile: bool = True,
) -> dict[str, Any]:
    """Keyword arguments for :meth:`slipway.Client.register_version`.

    ``profile``: sketch the training data, the model's predictions on it and the labels
    as the version's reference profile, which drift monitoring compares live traffic to.
    """
    serialized = serialize_model(model)
    signature = Signature.infer(
        X_train, y_train, classes=serialized.classes, feature_names=feature_names
    )
    example_rows = rows_from_matrix(_head(X_train, examples), signature.input_names)
    lineage: dict[str, Any] = {
        "training_data": fingerprint(X_train, y_train),
        "parameters": params if params is not None else _params_of(model),
        "metrics": dict(metrics or {}),
        "code": code_reference(code_path),
        "parent_version": parent_version,
    }
    if X_eval is not None:
        lineage["evaluation_data"] = fingerprint(X_eval, y_eval)
        if y_eval is not None and hasattr(model, "predict"):
            lineage["metrics"] = {**evaluate(model, X_eval, y_eval), **lineage["metrics"]}
    contract_dict = _contract(contract, X_train, signature, serialized.classes)
    return {
        "contract": contract_dict,
        "profile": _profile(model, X_train, y_train, signature, contract_dict, serialized.classes)
        if profile
        else None,
        "artifact": serialized.data,
        "flavor": serialized.flavor,
        "signature": signature.to_dict(),
        "example_rows": example_rows,
        "lineage": lineage,
        "trusted_types": list(trusted_types or []),
        "description": description,
        "library_versions": serialized.library_versions,
    }


def _contract(
    contract: Any, X: Any, signature: Signature, classes: list[Any] | None
) -> dict[str, Any] | None:
    """``"infer"``: from the training data (ranges from quantiles with a margin,
    categories from observed values, nullability from observed nulls) — review it with
    ``slipway contract`` and register an edited one; a Contract or dict: as given;
    None: names and types only."""
    from slipway.contracts.schema import Contract, OutputRules

    if contract is None:
        return None
    if isinstance(contract, Contract):
        return contract.to_dict()
    if isinstance(contract, dict):
        return Contract.from_dict(contract).to_dict()
    if contract != "infer":
        raise ValidationFailed.field("contract", 'must be "infer", a Contract, a dict or None')
    from slipway.contracts.infer import infer_contract

    if hasattr(X, "columns") or (isinstance(X, list) and X and isinstance(X[0], dict)):
        data = X
    else:
        arr = np.asarray(X)
        data = {name: arr[:, i] for i, name in enumerate(signature.input_names)}
    inferred = infer_contract(data)
    outputs = OutputRules(classes=tuple(classes)) if classes is not None else inferred.outputs
    return Contract(inferred.inputs, outputs).to_dict()


def _profile(
    model: Any,
    X: Any,
    y: Any,
    signature: Signature,
    contract: dict[str, Any] | None,
    classes: list[Any] | None,
) -> dict[str, Any]:
    """Sketches of the training data, of the model's answers on it, and of the labels."""
    from slipway.contracts.schema import Contract
    from slipway.monitoring.profile import build_profile, kinds_from_contract

    rules = (
        Contract.from_dict(contract) if contract else Contract.from_signature(signature.to_dict())
    )
    served = _as_served(X, signature)
    predictions = model.predict(served) if hasattr(model, "predict") else None
    probabilities = model.predict_proba(served) if hasattr(model, "predict_proba") else None
    built = build_profile(
        X,
        predictions=predictions,
        probabilities=probabilities,
        classes=classes,
        labels=y,
        kinds=kinds_from_contract(rules),
        feature_names=list(signature.input_names),
    )
    return built.to_dict()


def _as_served(X: Any, signature: Signature) -> Any:
    """``X`` as the server hands it to the model: a 2-D array in signature order,
    float64 when every input is numeric, else objects."""
    dtype = np.float64 if signature.numeric else object
    if hasattr(X, "columns"):
        return X[list(signature.input_names)].to_numpy(dtype=dtype)
    if isinstance(X, list) and X and isinstance(X[0], dict):
        return signature.matrix(X, where="X_train", allow_null=True)
    return np.asarray(X, dtype=dtype)


def _head(X: Any, n: int) -> Any:
    if hasattr(X, "iloc"):
        return X.iloc[:n]
    if isinstance(X, list):
        return X[:n]
    return np.asarray(X)[:n]


def _params_of(model: Any) -> dict[str, Any]:
    get_params = getattr(model, "get_params", None)
    if get_params is None:
        return {}
    out: dict[str, Any] = {}
    for key, value in get_params(deep=False).items():
        if value is None or isinstance(value, bool | int | str):
            out[key] = value
        elif isinstance(value, float):
            out[key] = value if math.isfinite(value) else str(value)
        else:
            out[key] = repr(value)[:200]
    return out


def evaluate(model: Any, X: Any, y: Any) -> dict[str, float]:
    """Standard metrics for a classifier (with probabilities when it has them) or a
    regressor, computed with scikit-learn."""
    from sklearn import metrics as m

    y_true = np.asarray(y)
    y_pred = model.predict(X)
    is_classifier = (
        hasattr(model, "predict_proba") or getattr(model, "_estimator_type", None) == "classifier"
    )
    if not is_classifier:
        return {
            "r2": float(m.r2_score(y_true, y_pred)),
            "mae": float(m.mean_absolute_error(y_true, y_pred)),
            "rmse": float(math.sqrt(m.mean_squared_error(y_true, y_pred))),
        }
    out = {
        "accuracy": float(m.accuracy_score(y_true, y_pred)),
        "f1_macro": float(m.f1_score(y_true, y_pred, average="macro")),
    }
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(X)
        labels = getattr(model, "classes_", None)
        out["log_loss"] = float(m.log_loss(y_true, proba, labels=labels))
        if proba.shape[1] == 2:
            out["roc_auc"] = float(m.roc_auc_score(y_true, proba[:, 1]))
        else:
            out["roc_auc_ovr"] = float(
                m.roc_auc_score(y_true, proba, multi_class="ovr", labels=labels)
            )
    return out
