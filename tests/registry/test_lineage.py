from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from slipway.errors import ValidationFailed
from slipway.registry.lineage import check_lineage, code_reference, fingerprint


def test_fingerprint_is_the_same_for_the_same_data_in_any_container() -> None:
    X = np.array([[1.0, 2.0], [3.0, 4.5]])
    as_rows = [{"f0": 1.0, "f1": 2.0}, {"f0": 3.0, "f1": 4.5}]
    a, b = fingerprint(X, [0, 1]), fingerprint(as_rows, [0, 1])
    assert a == b and a["rows"] == 2 and a["columns"] == ["f0", "f1", "__label__"]
    assert fingerprint(X)["sha256"] != a["sha256"]  # the label is part of the data
    X2 = X.copy()
    X2[1, 1] = 4.6
    assert fingerprint(X2, [0, 1])["sha256"] != a["sha256"]


def test_code_reference_reads_commit_and_dirty_flag(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    assert code_reference(tmp_path) is None  # not a repository
    git("init", "-q")
    (tmp_path / "train.py").write_text("print(1)\n")
    git("add", ".")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "x")
    ref = code_reference(tmp_path)
    assert ref is not None and len(ref["git_commit"]) == 40 and ref["dirty"] is False
    (tmp_path / "train.py").write_text("print(2)\n")
    assert code_reference(tmp_path)["dirty"] is True  # type: ignore[index]


@pytest.mark.parametrize(
    "lineage, field",
    [
        ({"bogus": 1}, "lineage.bogus"),
        ({"training_data": {"sha256": "x", "rows": 1}}, "lineage.training_data.sha256"),
        ({"training_data": {"sha256": "a" * 64, "rows": -1}}, "lineage.training_data.rows"),
        ({"code": {"dirty": True}}, "lineage.code.git_commit"),
        ({"metrics": {"auc": True}}, "lineage.metrics"),
        ({"parent_version": 0}, "lineage.parent_version"),
    ],
)
def test_bad_lineage_names_the_field(lineage: dict, field: str) -> None:
    with pytest.raises(ValidationFailed) as exc:
        check_lineage(lineage)
    assert exc.value.details[0]["field"] == field
