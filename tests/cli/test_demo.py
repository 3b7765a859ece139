"""``slipway demo``: end to end on a fresh home, with real predictions, and again on the
same home (which registers v2)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

SPECIES = ("setosa", "versicolor", "virginica")


def _demo(home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    env.update({"SLIPWAY_HOME": str(home), "OMP_NUM_THREADS": "1", "COLUMNS": "200"})
    return subprocess.run(
        [sys.executable, "-m", "slipway", "demo"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_demo_runs_end_to_end_twice(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = _demo(home)
    output = first.stdout + first.stderr
    assert first.returncode == 0, output
    assert "Traceback" not in output
    assert "registered iris v1" in first.stdout
    assert any(species in first.stdout for species in SPECIES), first.stdout
    assert re.search(r"Open Inference Protocol answer: \['(setosa|versicolor|virginica)'\]", output)
    assert "Try it yourself" in first.stdout
    # Governance: the policy is checked (and passed) before the deploy; the score and
    # the generated card follow.
    assert "policy checks before deploying" in first.stdout
    assert "accuracy-floor" in first.stdout
    assert not re.search(r"│ fail +│", first.stdout), first.stdout
    assert "ML Test Score of iris" in first.stdout
    card = (home / "iris-v1-card.md").read_text()
    assert card.startswith("# Model card: iris v1") and "| accuracy |" in card
    # The curl line is printed whole, ready to copy.
    assert re.search(r"-d '\{\"inputs\": \[\{.*\}\]\}'", first.stdout), first.stdout
    token = (home / "token").read_text().strip()
    assert (home / "token").stat().st_mode & 0o777 == 0o600
    assert token not in output  # the token is referenced by file, never printed

    second = _demo(home)
    output = second.stdout + second.stderr
    assert second.returncode == 0, output
    assert "registered iris v2" in second.stdout
    assert any(species in second.stdout for species in SPECIES)
    assert (home / "token").read_text().strip() == token
