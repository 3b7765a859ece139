"""Reading a data file into a pyarrow Table: CSV, Parquet, JSON Lines or a JSON array.

pyarrow is an extra (``pip install 'slipway[data]'``) and is imported only here, when a
file is read, so ``import slipway`` stays light.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slipway.errors import InvalidRequest, SlipwayError

SUFFIXES = (".csv", ".parquet", ".pq", ".json", ".jsonl", ".ndjson")

__all__ = ["read_table"]


def _pyarrow() -> Any:
    try:
        import pyarrow  # type: ignore[import-untyped]
    except ImportError:
        # Like flavors' missing_extra: the message is the fix. (errors.py has no
        # dedicated class for a missing extra outside model loading.)
        raise SlipwayError(
            "reading data files needs pyarrow: pip install 'slipway[data]'"
        ) from None
    return pyarrow


def read_table(path: str | Path) -> Any:
    """The file at ``path`` as a ``pyarrow.Table``; the format follows the suffix."""
    pa = _pyarrow()
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise InvalidRequest(f"{path}: unknown data format (use {', '.join(SUFFIXES)})")
    if not p.is_file():
        raise InvalidRequest(f"{path}: no such file")
    try:
        if suffix == ".csv":
            import pyarrow.csv  # type: ignore[import-untyped]

            return pyarrow.csv.read_csv(p)
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet  # type: ignore[import-untyped]

            return pyarrow.parquet.read_table(p)
        if suffix == ".json" and _starts_with_bracket(p):
            rows = json.loads(p.read_text(encoding="utf-8"))
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise ValueError("a JSON file must hold an array of objects")
            return pa.Table.from_pylist(rows)
        import pyarrow.json  # type: ignore[import-untyped]

        return pyarrow.json.read_json(p)
    except (OSError, ValueError, pa.ArrowException) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidRequest(f"{path}: cannot read as {suffix[1:]}: {reason}") from None


def _starts_with_bracket(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(4096).lstrip()
    return head.startswith(b"[")
