"""Fixtures for the audit suite: a migrated store, and helpers that append events fast."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from slipway.audit import Actor, append
from slipway.store import open_engine, transaction, upgrade


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    eng = open_engine(f"sqlite:///{tmp_path / 'slipway.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


def append_events(engine: Engine, count: int, *, start: int = 0, batch: int = 500) -> None:
    """Append ``count`` varied events, ``batch`` per transaction."""
    done = 0
    while done < count:
        with transaction(engine) as conn:
            for _ in range(min(batch, count - done)):
                n = start + done
                append(
                    conn,
                    Actor(f"user{n % 7}", token_id=f"tok{n % 3}", request_id=f"req-{n}"),
                    ("model.update", "endpoint.deploy", "token.create")[n % 3],
                    target_kind="model",
                    target=f"model-{n % 11}",
                    before={"risk_tier": "low", "n": n},
                    after={"risk_tier": "high", "n": n, "tags": ["a", "ü"]},
                    reason=f"change {n}",
                )
                done += 1
