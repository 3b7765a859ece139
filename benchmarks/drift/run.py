"""Drift on N rows x 25 columns: slipway's ``offline.drift`` vs Evidently's DataDriftPreset.

    .venv/bin/python benchmarks/drift/run.py [--rows 1000000] [--repeat 3] [--skip-evidently]

Generates the data if missing (generate.py), creates the Evidently venv if missing
(.venv-evidently, from requirements-evidently.txt), then runs each tool in its own
subprocess on the same two Parquet files: slipway ``--repeat`` times (median reported),
Evidently once. Each child times reading both files plus the drift computation and
reports its own peak RSS (ru_maxrss). Writes RESULTS.md next to this file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
EVIDENTLY_VENV = HERE / ".venv-evidently"
EVIDENTLY_PYTHON = EVIDENTLY_VENV / "bin" / "python"


# -- children ------------------------------------------------------------------------------
def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _cpu() -> float:
    """CPU seconds of this process, all threads: steadier than wall time on a busy box."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_slipway(ref: str, cur: str) -> dict[str, Any]:
    from importlib.metadata import version

    from slipway.monitoring.offline import drift

    base, cpu = _peak_mb(), _cpu()
    start = time.perf_counter()
    report = drift(ref, cur)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "cpu_seconds": _cpu() - cpu,
        "flagged": sorted(report.drifted),
        "scores": {c.column: c.score for c in report.columns},
        "base_mb": base,
        "peak_mb": _peak_mb(),
        "versions": {p: version(p) for p in ("numpy", "pyarrow", "datasketches", "scipy")},
    }


def child_evidently(ref: str, cur: str) -> dict[str, Any]:
    import warnings
    from importlib.metadata import version

    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    warnings.simplefilter("ignore")  # Evidently's deprecation noise, not ours to fix
    base, cpu = _peak_mb(), _cpu()
    start = time.perf_counter()
    reference, current = pd.read_parquet(ref), pd.read_parquet(cur)
    loaded = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    seconds = time.perf_counter() - start
    scores: dict[str, float] = {}
    flagged = []
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type") != "evidently:metric_v2:ValueDrift":
            continue
        # Evidently's distance tests flag value >= threshold (wasserstein, jensenshannon).
        scores[config["column"]] = float(metric["value"])
        if float(metric["value"]) >= float(config["threshold"]):
            flagged.append(config["column"])
    return {
        "seconds": seconds,
        "cpu_seconds": _cpu() - cpu,
        "load_seconds": loaded - start,
        "flagged": sorted(flagged),
        "scores": scores,
        "base_mb": base,
        "peak_mb": _peak_mb(),
        "versions": {p: version(p) for p in ("evidently", "pandas", "numpy", "scipy")},
    }


# -- parent --------------------------------------------------------------------------------
def run_child(python: Path | str, tool: str, ref: Path, cur: Path) -> dict[str, Any]:
    start = time.perf_counter()
    proc = subprocess.run(
        [str(python), __file__, "--child", tool, str(ref), str(cur)],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} child failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_seconds"] = wall
    return result


def ensure_data(rows: int) -> dict[str, Any]:
    truth_file = DATA / "truth.json"
    if truth_file.is_file():
        truth: dict[str, Any] = json.loads(truth_file.read_text())
        if truth.get("rows") == rows:
            return truth
    sys.path.insert(0, str(HERE))
    from generate import write

    print(f"generating {rows:,} rows ...", flush=True)
    return write(DATA, rows)


def ensure_evidently() -> str | None:
    """None when the venv is ready, else why it could not be set up."""
    if EVIDENTLY_PYTHON.is_file():
        return None
    print("creating .venv-evidently (evidently==0.7.23) ...", flush=True)
    requirements = str(HERE / "requirements-evidently.txt")
    steps = [
        [_base_python(), "-m", "venv", str(EVIDENTLY_VENV)],
        [str(EVIDENTLY_PYTHON), "-m", "pip", "install", "-q", "-r", requirements],
    ]
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            return f"`{' '.join(step)}` failed: {proc.stderr.strip().splitlines()[-1:]}"
    return None


def _base_python() -> str:
    # The interpreter this venv was made from, so the Evidently venv is independent of it.
    return str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--child", nargs=3, metavar=("TOOL", "REF", "CUR"))
    args = parser.parse_args()
    if args.child:
        tool, ref, cur = args.child
        result = (child_slipway if tool == "slipway" else child_evidently)(ref, cur)
        print(json.dumps(result))
        return

    truth = ensure_data(args.rows)
    ref, cur = DATA / "reference.parquet", DATA / "current.parquet"
    runs = []
    for i in range(args.repeat):
        runs.append(run_child(sys.executable, "slipway", ref, cur))
        print(f"slipway run {i + 1}: {runs[-1]['seconds']:.2f} s {runs[-1]['flagged']}", flush=True)
    evidently: dict[str, Any] | None = None
    missing = "skipped (--skip-evidently)" if args.skip_evidently else ensure_evidently()
    if missing is None:
        print("running Evidently (minutes) ...", flush=True)
        evidently = run_child(EVIDENTLY_PYTHON, "evidently", ref, cur)
        print(f"evidently: {evidently['seconds']:.1f} s {evidently['flagged']}", flush=True)
    text = results_markdown(args, truth, runs, evidently, missing)
    (HERE / "RESULTS.md").write_text(text)
    print(text)


def results_markdown(
    args: argparse.Namespace,
    truth: dict[str, Any],
    runs: list[dict[str, Any]],
    evidently: dict[str, Any] | None,
    missing: str | None,
) -> str:
    planted = truth["drifted"]
    slip = runs[len(runs) // 2] if runs else {}
    median = statistics.median(r["seconds"] for r in runs)
    median_process = statistics.median(r["process_seconds"] for r in runs)
    median_cpu = statistics.median(r["cpu_seconds"] for r in runs)
    peak = max(r["peak_mb"] for r in runs)

    def verdicts(flagged: list[str]) -> str:
        hits = [c for c in flagged if c in planted]
        false = [c for c in flagged if c not in planted]
        missed = [c for c in planted if c not in flagged]
        return (
            f"{len(hits)}/{len(planted)} found, {len(false)} false"
            + (f" ({', '.join(false)})" if false else "")
            + (f", missed {', '.join(missed)}" if missed else "")
        )

    load = os.getloadavg()
    lines = [
        "# Drift benchmark results",
        "",
        f"Command: `.venv/bin/python benchmarks/drift/run.py --rows {args.rows}"
        f" --repeat {args.repeat}` (see README.md)",
        "",
        f"Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python "
        f"{platform.python_version()}; load average at the end {load[0]:.1f}/{load[1]:.1f}/"
        f"{load[2]:.1f} (1/5/15 min: the machine was shared with other work).",
        f"slipway side: {_versions(slip.get('versions', {}))}.",
    ]
    if evidently is not None:
        lines.append(
            f"Evidently side (its own venv): {_versions(evidently['versions'])} "
            "(pandas < 3: Evidently 0.7.23 does not import under pandas 3)."
        )
    lines += [
        "",
        f"Data: {truth['rows']:,} rows x 25 columns (20 numeric, 5 categorical) in two "
        f"Parquet files; planted drifts: {', '.join(planted)} (3 numeric columns shifted "
        "by 0.2 sigma, 1 categorical with a changed mix). Times include reading both "
        "files; CPU is user + system time of all the child's threads over that span; "
        '"process" adds interpreter start and imports. Peak RSS is the child\'s '
        "`ru_maxrss`.",
        "",
        "| tool | drift time (s) | CPU (s) | process (s) | peak RSS (MB) | columns flagged "
        "| verdicts |",
        "|---|---:|---:|---:|---:|---|---|",
        f"| slipway `offline.drift` (median of {len(runs)}) | {median:.2f} | {median_cpu:.2f} | "
        f"{median_process:.2f} | {peak:,.0f} | {', '.join(slip['flagged'])} | "
        f"{verdicts(slip['flagged'])} |",
    ]
    if evidently is not None:
        lines.append(
            f"| Evidently `DataDriftPreset` | {evidently['seconds']:.1f} | "
            f"{evidently['cpu_seconds']:.1f} | {evidently['process_seconds']:.1f} | "
            f"{evidently['peak_mb']:,.0f} | "
            f"{', '.join(evidently['flagged'])} | {verdicts(evidently['flagged'])} |"
        )
        lines += [
            "",
            f"slipway is **{evidently['seconds'] / median:.0f}x faster** on the drift call "
            f"({evidently['cpu_seconds'] / median_cpu:.0f}x less CPU time, "
            f"{evidently['process_seconds'] / median_process:.0f}x on whole processes) and "
            f"uses **{evidently['peak_mb'] / peak:.1f}x less memory** at peak. "
            f"Evidently spent {evidently['load_seconds']:.1f} s of its time reading the files.",
            "",
            "Scores of every column (slipway W1/std or JS base 2; Evidently W1/std or JS "
            "base e, so its JS reads ~0.83x slipway's):",
            "",
            "| column | planted | slipway | Evidently |",
            "|---|---|---:|---:|",
        ]
        for column in sorted(slip["scores"]):
            theirs = evidently["scores"].get(column, float("nan"))
            lines.append(
                f"| {column} | {'yes' if column in planted else ''} | "
                f"{slip['scores'][column]:.4f} | {theirs:.4f} |"
            )
        clean = [c for c in slip["scores"] if c not in planted and c.startswith("num")]
        ours = max(slip["scores"][c] for c in clean)
        theirs_max = max(evidently["scores"].get(c, 0.0) for c in clean)
        lines += [
            "",
            f"Clean numeric columns score up to {ours:.3f} in slipway against "
            f"{theirs_max:.3f} in Evidently: that gap is the KLL sketches' rank error "
            "(k=200), the price of bounded memory and mergeable windows. It stays well "
            "below the 0.1 threshold, while every planted drift scores about 0.2 in both.",
        ]
    else:
        lines += ["", f"Evidently was not run: {missing}."]
    lines.append("")
    return "\n".join(lines)


def _versions(versions: dict[str, str]) -> str:
    return ", ".join(f"{name} {v}" for name, v in versions.items())


if __name__ == "__main__":
    main()
