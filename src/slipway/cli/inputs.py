"""Reading rows for the CLI: CSV or JSON files (or ``-`` for stdin)."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

from slipway.errors import InvalidRequest


def _scalar(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return text


def read_rows(path: str) -> list[dict[str, Any]]:
    """Rows from a CSV (header + values) or JSON file: a list of objects or
    ``{"inputs": [...]}``."""
    text = sys.stdin.read() if path == "-" else _read(path)
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
        if isinstance(data, dict):
            data = data.get("inputs")
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise InvalidRequest(f'{path}: expected a list of objects or {{"inputs": [...]}}')
        return data
    reader = csv.DictReader(io.StringIO(text))
    rows = [{k: _scalar(v) for k, v in row.items()} for row in reader]
    if not rows:
        raise InvalidRequest(f"{path}: no rows")
    return rows


def _read(path: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise InvalidRequest(f"{path}: no such file")
    return p.read_text()
