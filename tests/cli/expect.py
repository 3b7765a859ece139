"""What a CLI result should look like, shared by every suite that runs the CLI."""

from __future__ import annotations

import json
import subprocess
from typing import Any


def assert_clean_failure(result: subprocess.CompletedProcess[str], code: str) -> str:
    """Non-zero exit, one line on stderr naming the error code, no traceback."""
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"({code})" in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(result.stdout)
