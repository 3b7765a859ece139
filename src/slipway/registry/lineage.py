"""Lineage: where a version came from — data fingerprints, code reference, parameters,
metrics. The SDK computes fingerprints client-side; the server checks their shape."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from slipway.errors import ValidationFailed

LINEAGE_KEYS = (
    "training_data",
    "evaluation_data",
    "code",
    "parameters",
    "metrics",
    "parent_version",
)


def fingerprint(X: Any, y: Any = None) -> dict[str, Any]:
    """SHA-256 of a canonical byte form of a data set, with its row count and columns.

    Canonical: column names, then each column as little-endian float64 (numbers) or
    UTF-8 strings joined by NUL, so the same data gives the same hash whatever the
    container (numpy array, DataFrame, list of dicts).
    """
    columns, arrays = _as_columns(X)
    if y is not None:
        columns.append("__label__")
        arrays.append(np.asarray(y))
    h = hashlib.sha256()
    h.update("\x1f".join(columns).encode())
    for arr in arrays:
        h.update(b"\x1e")
        if np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_):
            h.update(np.ascontiguousarray(arr, dtype="<f8").tobytes())
        else:
            h.update("\x00".join(str(v) for v in arr.tolist()).encode())
    rows = int(len(arrays[0])) if arrays else 0
    return {"sha256": h.hexdigest(), "rows": rows, "columns": columns[: len(columns)]}


def _as_columns(X: Any) -> tuple[list[str], list[np.ndarray]]:
    if hasattr(X, "columns") and hasattr(X, "to_numpy"):
        return [str(c) for c in X.columns], [X[c].to_numpy() for c in X.columns]
    if isinstance(X, list) and X and isinstance(X[0], Mapping):
        names = list(X[0])
        return names, [np.asarray([r[n] for r in X]) for n in names]
    arr = np.asarray(X)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    return [f"f{i}" for i in range(arr.shape[1])], [arr[:, i] for i in range(arr.shape[1])]


def code_reference(path: str | Path = ".") -> dict[str, Any] | None:
    """The git commit of the repository around ``path`` and whether it has changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=path,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=path,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"git_commit": commit, "dirty": bool(dirty)}


def check_fingerprint(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationFailed.field(f"lineage.{name}", "must be an object")
    sha = value.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64:
        raise ValidationFailed.field(f"lineage.{name}.sha256", "must be a SHA-256 hex digest")
    rows = value.get("rows")
    if not isinstance(rows, int) or rows < 0:
        raise ValidationFailed.field(f"lineage.{name}.rows", "must be a non-negative integer")
    cols = value.get("columns", [])
    if not isinstance(cols, list):
        raise ValidationFailed.field(f"lineage.{name}.columns", "must be a list")
    return {"sha256": sha, "rows": rows, "columns": [str(c) for c in cols]}


def check_lineage(lineage: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the lineage record sent at registration; unknown keys are refused."""
    if not isinstance(lineage, Mapping):
        raise ValidationFailed.field("lineage", "must be an object")
    out: dict[str, Any] = {}
    for key, value in lineage.items():
        if key not in LINEAGE_KEYS:
            raise ValidationFailed.field(f"lineage.{key}", "unknown lineage field")
        if value is None:
            continue
        if key in ("training_data", "evaluation_data"):
            out[key] = check_fingerprint(key, value)
        elif key == "code":
            if not isinstance(value, Mapping) or not isinstance(value.get("git_commit"), str):
                raise ValidationFailed.field("lineage.code.git_commit", "must be a string")
            out[key] = {"git_commit": value["git_commit"], "dirty": bool(value.get("dirty"))}
        elif key in ("parameters", "metrics"):
            if not isinstance(value, Mapping):
                raise ValidationFailed.field(f"lineage.{key}", "must be an object")
            if key == "metrics" and not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()
            ):
                raise ValidationFailed.field("lineage.metrics", "values must be numbers")
            out[key] = dict(value)
        elif key == "parent_version":
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValidationFailed.field("lineage.parent_version", "must be a version number")
            out[key] = value
    return out
