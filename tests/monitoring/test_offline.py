"""Offline drift over frames, tables, dicts and files, and ``slipway drift`` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from slipway.errors import InvalidRequest, ValidationFailed
from slipway.monitoring.drift import DriftThresholds
from slipway.monitoring.offline import drift
from tests.cli.expect import assert_clean_failure

ROWS = 5_000
PLANTED = ["amount", "channel"]


def frames(rows: int = ROWS) -> tuple[dict[str, Any], dict[str, Any]]:
    """Reference and current columns; ``amount`` shifts by 0.3 sigma and ``channel``
    changes its mix, everything else is a fresh sample of the same distribution."""
    rng = np.random.default_rng(11)

    def sample(shift: float, mix: list[float]) -> dict[str, Any]:
        score = rng.gamma(2, 2, rows)
        score[rng.random(rows) < 0.05] = np.nan
        return {
            "amount": rng.normal(100 + 15 * shift, 15, rows),
            "age": rng.integers(18, 90, rows),
            "score": score,
            "channel": rng.choice(["web", "ios", "android"], rows, p=mix).astype(object),
            "plan": rng.choice(["free", "pro"], rows, p=[0.8, 0.2]).astype(object),
            "member": rng.random(rows) < 0.4,
        }

    return sample(0.0, [0.6, 0.3, 0.1]), sample(0.3, [0.4, 0.3, 0.3])


def test_drift_of_dicts_finds_exactly_the_planted_columns() -> None:
    ref, cur = frames()
    report = drift(ref, cur)
    assert sorted(report.drifted) == PLANTED
    assert {c.column for c in report.columns} == set(ref)
    assert {c.column: c.kind for c in report.columns}["member"] == "categorical"
    assert report.columns[0].column in PLANTED


def test_frames_and_tables_agree() -> None:
    import pandas as pd
    import pyarrow as pa

    ref, cur = frames()
    as_pandas = drift(pd.DataFrame(ref), pd.DataFrame(cur))
    as_arrow = drift(pa.Table.from_pandas(pd.DataFrame(ref)), pa.table(cur))
    for report in (as_pandas, as_arrow):
        assert sorted(report.drifted) == PLANTED
        counts = {c.column: (c.n_reference, c.n_current) for c in report.columns}
        assert counts["score"][0] == int(np.sum(~np.isnan(ref["score"])))


def test_columns_and_thresholds() -> None:
    ref, cur = frames()
    report = drift(ref, cur, columns=["age", "amount", "age"])
    assert [c.column for c in report.columns] == ["amount", "age"]
    loose = drift(ref, cur, thresholds=DriftThresholds(numeric_wasserstein=1.0))
    assert loose.drifted == ["channel"]
    few = drift(ref, cur, thresholds=DriftThresholds(min_samples=10 * ROWS))
    assert {c.verdict for c in few.columns} == {"insufficient"}


def test_bad_columns_are_named() -> None:
    ref, cur = frames()
    with pytest.raises(ValidationFailed) as info:
        drift(ref, {k: v for k, v in cur.items() if k != "age"}, columns=["age"])
    assert info.value.details[0]["field"] == "age" and "current" in info.value.message
    with pytest.raises(InvalidRequest, match="no column in common"):
        drift({"a": [1.0]}, {"b": [1.0]})
    text = {**cur, "amount": np.array(["n/a"] * ROWS, dtype=object)}
    with pytest.raises(ValidationFailed, match="amount: in current: expected numbers"):
        drift(ref, text)
    when = {"t": np.array(["2024-01-01"] * 3, dtype="datetime64[D]")}
    with pytest.raises(ValidationFailed, match="neither numbers nor categories"):
        drift(when, when, columns=["t"])
    assert drift({**when, "x": [1.0]}, {**when, "x": [1.0]}).columns[0].column == "x"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    d = tmp_path_factory.mktemp("drift-files")
    paths = {}
    for name, data in zip(("ref", "cur"), frames(), strict=True):
        table = pa.table(data)
        pq.write_table(table, d / f"{name}.parquet")
        pacsv.write_csv(table, d / f"{name}.csv")
        paths[f"{name}_parquet"], paths[f"{name}_csv"] = d / f"{name}.parquet", d / f"{name}.csv"
    return paths


def test_files_of_either_format(files: dict[str, Path]) -> None:
    assert sorted(drift(files["ref_parquet"], files["cur_csv"]).drifted) == PLANTED
    assert sorted(drift(str(files["ref_csv"]), str(files["cur_parquet"])).drifted) == PLANTED
    with pytest.raises(InvalidRequest, match="missing.parquet: no such file"):
        drift(files["ref_parquet"], files["ref_parquet"].with_name("missing.parquet"))
    garbage = files["ref_csv"].with_name("garbage.parquet")
    garbage.write_bytes(b"not parquet at all")
    with pytest.raises(InvalidRequest, match="garbage.parquet: cannot read as parquet"):
        drift(garbage, files["cur_parquet"])


def test_parquet_path_never_imports_pandas(files: dict[str, Path]) -> None:
    """arrow's to_numpy imports pandas (a quarter second); the file path avoids it."""
    code = (
        "import sys; from slipway.monitoring.offline import drift; "
        f"r = drift({str(files['ref_parquet'])!r}, {str(files['cur_parquet'])!r}); "
        "print(sorted(r.drifted), 'pandas' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == f"{PLANTED} False"


def slipway(*args: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slipway", "drift", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_table_summary_and_fail_on_drift(files: dict[str, Path]) -> None:
    result = slipway(files["ref_parquet"], files["cur_parquet"], "--fail-on-drift")
    assert result.returncode == 3, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["column", "kind", "statistic", "score", "threshold"] + [
        "verdict",
        "severity",
        "psi",
        "n",
    ]
    assert {lines[2].split()[0], lines[3].split()[0]} == set(PLANTED)
    assert "drift" in lines[2] and "5000/5000" in lines[2]
    assert lines[-1].startswith("2 of 6 columns drifted: ")
    assert "…" not in result.stdout  # fits an 80-column log uncut


def test_cli_json_on_csv_and_options(files: dict[str, Path]) -> None:
    result = slipway(
        files["ref_csv"],
        files["cur_csv"],
        "--json",
        "--columns",
        "age,channel",
        "--categorical-threshold",
        "0.5",
        "--min-samples",
        "100",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["drifted"] == []
    by_name = {c["column"]: c for c in data["columns"]}
    assert set(by_name) == {"age", "channel"}
    assert by_name["channel"]["threshold"] == 0.5 and by_name["channel"]["verdict"] == "ok"
    assert by_name["age"]["statistic"] == "wasserstein_norm"


def test_cli_failures_name_the_file_or_column(files: dict[str, Path]) -> None:
    missing = files["ref_csv"].with_name("nope.csv")
    line = assert_clean_failure(slipway(files["ref_csv"], missing), "bad_request")
    assert "nope.csv: no such file" in line
    line = assert_clean_failure(
        slipway(files["ref_csv"], files["cur_csv"], "--columns", "age,wat"), "invalid_field"
    )
    assert "wat: no such column in " in line and "ref.csv" in line
