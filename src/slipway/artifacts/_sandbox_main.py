"""Child side of :func:`slipway.artifacts.sandbox.smoke_test`.

Sets its resource limits before importing anything heavy, then checks, loads and calls
the model. It always answers with one JSON line on the real stdout; libraries that print
(lightgbm does) are sent to stderr so they cannot corrupt the answer.
"""

from __future__ import annotations

import json
import os
import re
import resource
import sys
from typing import Any


def _limit(memory_mb: int, cpu_s: int) -> None:
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))


# Absolute paths of the server (site-packages, temp files) must not reach the caller.
_PATH = re.compile(r"(?<![\w.])/[^\s:'\"]+")
# What the loader says when mmap hits RLIMIT_AS while loading a shared library.
_OUT_OF_MEMORY = ("failed to map segment", "cannot allocate memory", "std::bad_alloc")


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", "") or exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return _PATH.sub("<path>", line)[:300]


def _check(out: Any, n: int, signature: Any) -> str:
    """'' when the output is well formed, else why not."""
    import numpy as np

    preds = np.asarray(out.predictions)
    if preds.ndim != 1 or preds.shape[0] != n:
        return f"model returned {preds.shape} predictions for {n} rows"
    if preds.dtype.kind in "fiub" and not np.all(np.isfinite(preds.astype(np.float64))):
        return "model returned non-finite predictions"
    if out.probabilities is not None:
        proba = np.asarray(out.probabilities, dtype=np.float64)
        if proba.ndim != 2 or proba.shape[0] != n:
            return f"model returned probabilities of shape {proba.shape} for {n} rows"
        if not np.all(np.isfinite(proba)):
            return "model returned non-finite probabilities"
        if not np.allclose(proba.sum(axis=1), 1.0, atol=1e-3):
            return "model probabilities do not sum to 1 per row"
        if out.classes is not None and len(out.classes) != proba.shape[1]:
            return f"{len(out.classes)} classes for {proba.shape[1]} probability columns"
    return ""


def run(job: dict[str, Any]) -> dict[str, Any]:
    import hashlib

    from slipway.artifacts.flavors import LoadSpec, get_flavor
    from slipway.artifacts.safety import refuse_pickle
    from slipway.contracts.signature import Signature

    path = job["path"]
    stage = "read"
    try:
        with open(path, "rb") as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != job["sha256"]:
            return _fail(f"artifact hash mismatch: expected sha256 {job['sha256']}")
        refuse_pickle(data)
        raw = job["spec"]
        spec = LoadSpec(
            feature_names=tuple(raw["feature_names"]),
            classes=tuple(raw["classes"]) if raw.get("classes") is not None else None,
            trusted_types=tuple(raw.get("trusted_types", ())),
            trusted_modules=tuple(raw.get("trusted_modules", ())),
        )
        stage = "load"
        flavor = get_flavor(job["flavor"])
        flavor.validate(data, spec)
        predictor = flavor.load(data, spec)
        stage = "input"
        rows = job["example_rows"]
        X = Signature.from_dict(job["signature"]).matrix(rows, where="example_rows")
        stage = "predict"
        out = predictor.predict(X)
        problem = _check(out, len(rows), job["signature"])
        if problem:
            return _fail(problem)
        return {"ok": True, "reason": "", "rows": len(rows)}
    except MemoryError:
        return _fail(f"{stage} ran out of memory (limit {job['memory_mb']} MiB)")
    except Exception as exc:
        if any(marker in str(exc).lower() for marker in _OUT_OF_MEMORY):
            return _fail(f"{stage} ran out of memory (limit {job['memory_mb']} MiB)")
        return _fail(f"{stage} failed: {type(exc).__name__}: {_one_line(exc)}")


def _fail(reason: str) -> dict[str, Any]:
    return {"ok": False, "reason": reason, "rows": 0}


def main() -> None:
    answer = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything printed from here on goes to stderr
    job = json.loads(sys.stdin.read())
    _limit(int(job["memory_mb"]), int(job["cpu_s"]))
    sys.path.extend(p for p in job.get("sys_path", []) if p not in sys.path)
    answer.write(json.dumps(run(job)) + "\n")
    answer.flush()


if __name__ == "__main__":
    main()
