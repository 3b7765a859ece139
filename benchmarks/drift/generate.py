"""Reference and current Parquet files: N rows x 20 numeric + 5 categorical columns.

    .venv/bin/python benchmarks/drift/generate.py [--rows 1000000] [--out benchmarks/drift/data]

The current file is an independent sample of the same distributions, except for 4
planted drifts chosen by the seeded generator: 3 numeric columns shifted by 0.2 reference
standard deviations, and 1 categorical column whose mix moves 40% of the way towards its
reversed probabilities. Column names (num_00..num_19, cat_0..cat_4) say nothing about
which ones; the truth is written to ``truth.json`` next to the data.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 20250101
SHIFT_SIGMAS = 0.2
MIX_TOWARDS_REVERSED = 0.4

Sampler = Callable[[np.random.Generator, int], np.ndarray]


def _with_nulls(sampler: Sampler, rate: float) -> Sampler:
    def sample(rng: np.random.Generator, n: int) -> np.ndarray:
        x = sampler(rng, n).astype(np.float64)
        x[rng.random(n) < rate] = np.nan
        return x

    return sample


def _mixture(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.where(rng.random(n) < 0.3, rng.normal(-2, 0.5, n), rng.normal(3, 1, n))


NUMERIC: list[Sampler] = [
    lambda r, n: r.normal(50, 10, n),
    lambda r, n: r.lognormal(0, 0.6, n),
    lambda r, n: r.uniform(0, 100, n),
    lambda r, n: r.exponential(5, n),
    lambda r, n: r.poisson(20, n).astype(np.float64),
    _with_nulls(lambda r, n: r.normal(0, 1, n), 0.05),
    lambda r, n: r.gamma(2, 3, n),
    lambda r, n: r.beta(2, 5, n),
    lambda r, n: r.integers(0, 1000, n).astype(np.float64),
    lambda r, n: r.standard_t(5, n),
    lambda r, n: r.normal(-3, 0.5, n),
    lambda r, n: r.lognormal(3, 1, n),
    lambda r, n: r.uniform(-1, 1, n),
    lambda r, n: r.weibull(1.5, n) * 10,
    _mixture,
    _with_nulls(lambda r, n: r.normal(1000, 200, n), 0.02),
    lambda r, n: r.chisquare(4, n),
    lambda r, n: r.laplace(0, 2, n),
    lambda r, n: r.poisson(3, n).astype(np.float64),
    lambda r, n: r.normal(0, 100, n),
]


def _zipf(k: int, s: float) -> np.ndarray:
    w = 1 / np.arange(1, k + 1) ** s
    return np.asarray(w / w.sum())


CATEGORICAL: list[tuple[list[str], np.ndarray]] = [
    (["web", "ios", "android", "api", "partner"], np.array([0.35, 0.25, 0.2, 0.12, 0.08])),
    (["free", "pro", "team"], np.array([0.6, 0.3, 0.1])),
    ([f"region-{i:02d}" for i in range(12)], _zipf(12, 1.1)),
    (["yes", "no"], np.array([0.7, 0.3])),
    ([f"store-{i:03d}" for i in range(50)], _zipf(50, 0.8)),
]


def generate(rows: int, seed: int = SEED) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(reference columns, current columns, truth)."""
    pick = np.random.default_rng(seed)
    shifted = sorted(int(i) for i in pick.choice(len(NUMERIC), 3, replace=False))
    mixed = int(pick.integers(len(CATEGORICAL)))
    ref_rng, cur_rng = np.random.default_rng(seed + 1), np.random.default_rng(seed + 2)
    ref: dict[str, Any] = {}
    cur: dict[str, Any] = {}
    for i, sampler in enumerate(NUMERIC):
        name = f"num_{i:02d}"
        ref[name] = sampler(ref_rng, rows)
        cur[name] = sampler(cur_rng, rows)
        if i in shifted:
            cur[name] = cur[name] + SHIFT_SIGMAS * np.nanstd(ref[name])
    for i, (levels, p) in enumerate(CATEGORICAL):
        name = f"cat_{i}"
        values = np.array(levels, dtype=object)
        q = (1 - MIX_TOWARDS_REVERSED) * p + MIX_TOWARDS_REVERSED * p[::-1] if i == mixed else p
        ref[name] = values[ref_rng.choice(len(levels), rows, p=p)]
        cur[name] = values[cur_rng.choice(len(levels), rows, p=q)]
    truth = {
        "rows": rows,
        "seed": seed,
        "drifted": sorted([f"num_{i:02d}" for i in shifted] + [f"cat_{mixed}"]),
    }
    return ref, cur, truth


def write(out: Path, rows: int) -> dict[str, Any]:
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    out.mkdir(parents=True, exist_ok=True)
    ref, cur, truth = generate(rows)
    for name, columns in (("reference", ref), ("current", cur)):
        table = pa.table({k: pa.array(v, from_pandas=True) for k, v in columns.items()})
        pq.write_table(table, out / f"{name}.parquet")
    (out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=HERE / "data")
    args = parser.parse_args()
    truth = write(args.out, args.rows)
    print(f"wrote {args.out}/reference.parquet and current.parquet; drifted: {truth['drifted']}")


if __name__ == "__main__":
    main()
