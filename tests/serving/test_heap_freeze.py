"""What a server holds for good is kept out of the cyclic collector's sight: a full
collection over the whole heap (framework, libraries, models) stalled every request in
flight for 150-225 ms on the benchmark machine (ADR 0009)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from slipway.api.app import create_app
from slipway.audit import Actor
from slipway.runtime import Runtime
from slipway.serving.pool import freeze_long_lived
from tests.conftest import pyfunc_runtime, ready_pyfunc_version

ADMIN = Actor("admin")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
SIGNATURE = {"inputs": [{"name": "x", "type": "float"}]}


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.syspath_prepend(str(ARTIFACTS))
    rt: Runtime = pyfunc_runtime(tmp_path / "home")
    rt.models.create(name="m", owner="ml-team", actor=ADMIN, runbook_url="https://rb")
    ready_pyfunc_version(
        rt, "m", "ThresholdModel", actor=ADMIN, signature=SIGNATURE, example_rows=[{"x": 1.0}]
    )
    yield rt
    rt.close()


def test_freezing_moves_what_is_alive_out_of_the_collectors_sight() -> None:
    held = [{"cycle": None} for _ in range(100)]
    for item in held:
        item["cycle"] = item  # cyclic, so the collector tracks it
    before = gc.get_freeze_count()
    freeze_long_lived()
    assert gc.get_freeze_count() >= before + len(held)
    assert not any(obj is held[0] for obj in gc.get_objects())


def test_loading_a_model_freezes_it(runtime: Runtime) -> None:
    gc.unfreeze()
    version = runtime.versions.get("m", 1)
    loaded = runtime.pool.load("e", version, generation=1)
    assert gc.get_freeze_count() > 0
    # The model object is among the frozen: it is not in any collectable generation.
    assert not any(obj is loaded.predictor for obj in gc.get_objects())


def test_the_server_freezes_its_heap_at_start_up(runtime: Runtime) -> None:
    async def frozen_while_serving() -> int:
        app = create_app(runtime=runtime)
        async with app.router.lifespan_context(app):
            return gc.get_freeze_count()

    gc.unfreeze()
    # The framework and the libraries at least: tens of thousands of objects.
    assert asyncio.run(frozen_while_serving()) > 10_000
