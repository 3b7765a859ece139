"""``slipway contract infer|check|diff`` on files, through the real entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from slipway.contracts.schema import Contract
from tests.cli.expect import assert_clean_failure


def contract_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slipway", "contract", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "SLIPWAY_HOME": str(cwd / "home")},
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("contract-cli")
    frame = pd.DataFrame(
        {
            "age": [20 + i % 50 for i in range(200)],
            "country": ["DE", "FR", "NL", "DE"] * 50,
            "email": [f"user{i}@example.com" for i in range(200)],
        }
    )
    frame.to_csv(root / "train.csv", index=False)
    frame.to_parquet(root / "train.parquet", index=False)
    bad = frame.head(10).copy()
    bad.loc[2, "age"] = 5
    bad.loc[3, "country"] = "XX"
    bad.to_parquet(root / "bad.parquet", index=False)
    return root


def test_infer_check_and_diff(files: Path) -> None:
    inferred = contract_cli("infer", "train.csv", "--category-cap", "3", cwd=files)
    assert inferred.returncode == 0, inferred.stderr
    contract = Contract.from_yaml(inferred.stdout)
    assert [f.type for f in contract.inputs] == ["int", "category", "string"]
    (files / "c.yaml").write_text(inferred.stdout)

    clean = contract_cli("check", "train.parquet", "--contract", "c.yaml", cwd=files)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "200 rows, 0 invalid" in clean.stdout

    dirty = contract_cli("check", "bad.parquet", "--contract", "c.yaml", cwd=files)
    assert dirty.returncode == 1
    assert "10 rows, 2 invalid" in dirty.stdout and "not one of the allowed values" in dirty.stdout

    as_json = contract_cli("check", "bad.parquet", "--contract", "c.yaml", "--json", cwd=files)
    report = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and report["invalid_rows"] == 2
    assert report["fields"]["country"]["examples"][0] == {
        "row": 3,
        "value": "XX",
        "reason": "not one of the allowed values",
    }

    narrowed = contract.to_dict()
    narrowed["inputs"][1]["allowed"] = ["DE", "FR"]
    (files / "narrow.json").write_text(json.dumps(narrowed))
    breaking = contract_cli("diff", "c.yaml", "narrow.json", cwd=files)
    assert breaking.returncode == 1
    assert "allowed values removed ['NL']" in breaking.stdout
    widening = contract_cli("diff", "narrow.json", "c.yaml", "--json", cwd=files)
    assert widening.returncode == 0
    assert json.loads(widening.stdout) == {
        "breaking": False,
        "changes": [
            {"field": "country", "kind": "compatible", "what": "allowed values added ['NL']"}
        ],
    }
    same = contract_cli("diff", "c.yaml", "c.yaml", cwd=files)
    assert same.returncode == 0 and "no changes" in same.stdout


def test_clean_failures(files: Path) -> None:
    assert_clean_failure(contract_cli("infer", "nope.csv", cwd=files), "bad_request")
    assert_clean_failure(contract_cli("infer", "c.txt", cwd=files), "bad_request")
    assert_clean_failure(contract_cli("check", "train.csv", cwd=files), "bad_request")
    assert_clean_failure(contract_cli("diff", "a.yaml", "m:x", cwd=files), "bad_request")
    (files / "broken.yaml").write_text("inputs: 3\n")
    failure = contract_cli("diff", "broken.yaml", "broken.yaml", cwd=files)
    assert failure.returncode == 1 and "broken.yaml" in failure.stderr
