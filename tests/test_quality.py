"""ruff and mypy are part of the suite, so CI keeps the code clean, not just working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "args",
    [
        ["ruff", "check", "src", "tests"],
        ["ruff", "format", "--check", "src", "tests"],
        ["mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_tool_is_clean(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_slipway_stays_light() -> None:
    code = (
        "import sys, slipway; heavy = {'sklearn', 'onnxruntime', 'xgboost', 'lightgbm', "
        "'sqlalchemy', 'fastapi', 'numpy'} & set(sys.modules); print(sorted(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_only_calling_a_server_imports_httpx() -> None:
    """The server, the CLI and the sandbox never call a server of their own: httpx (about
    0.1-0.2 s of a process's start-up) loads with ``slipway.Client``, not before."""
    code = (
        "import sys, slipway, slipway.cli, slipway.api.app, slipway.artifacts._sandbox_main; "
        "print('httpx' in sys.modules); slipway.Client; print('httpx' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "True"]
