"""Where model calls run: short calls of compute-only models on the event loop, the rest
on the predict threads."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from slipway.artifacts.flavors import ModelOutput
from slipway.serving.calls import CallPace, ModelCalls


class Model:
    """Burns ``cpu_ms_per_row`` of CPU per row (at least one row's worth) and records
    the thread of every call."""

    compute_only = True

    def __init__(self, cpu_ms_per_row: float = 0.0) -> None:
        self.cpu_ms_per_row = cpu_ms_per_row
        self.threads: list[int] = []

    def predict(self, X: np.ndarray) -> ModelOutput:
        self.threads.append(threading.get_ident())
        until = time.thread_time() + self.cpu_ms_per_row * max(len(X), 1) / 1000
        while time.thread_time() < until:
            pass
        return ModelOutput(X[:, 0], None, None)


class Waits(Model):
    """Not compute-only: it could be waiting on a network (a custom pyfunc model)."""

    compute_only = False


def run_calls(
    calls: ModelCalls, model: Model, pace: CallPace, rows: int, n: int, *, batched: bool = False
) -> list[bool]:
    """Make ``n`` calls of ``rows`` rows from an event loop; True where a call ran on the
    loop's own thread."""

    async def scenario() -> list[bool]:
        loop_thread = threading.get_ident()
        placed = []
        for _ in range(n):
            out = await calls.run(model, pace, np.ones((rows, 1)), batched=batched)
            assert len(out.predictions) == rows
            placed.append(model.threads[-1] == loop_thread)
        return placed

    return asyncio.run(scenario())


def test_a_short_call_runs_on_the_event_loop_once_its_pace_is_known() -> None:
    model, pace = Model(), CallPace()
    with ThreadPoolExecutor(2) as pool:
        calls = ModelCalls(pool, inline_ms=1.0)
        placed = run_calls(calls, model, pace, rows=1, n=CallPace.LEARN + 10)
    assert placed[: CallPace.LEARN] == [False] * CallPace.LEARN  # learning, on threads
    assert placed[CallPace.LEARN :] == [True] * 10
    assert calls.inline == 10
    assert pace.calls == CallPace.LEARN + 10 and pace.ms < 1.0


def test_a_call_over_the_budget_stays_on_a_thread() -> None:
    model, pace = Model(cpu_ms_per_row=3.0), CallPace()
    with ThreadPoolExecutor(2) as pool:
        placed = run_calls(ModelCalls(pool, inline_ms=1.0), model, pace, rows=1, n=25)
    assert not any(placed)
    assert pace.ms >= 2.5  # CPU measured on the thread, whatever else the machine does


def test_a_big_request_to_a_fast_model_is_estimated_by_its_rows() -> None:
    model, pace = Model(cpu_ms_per_row=0.05), CallPace()
    with ThreadPoolExecutor(2) as pool:
        calls = ModelCalls(pool, inline_ms=1.0)
        assert run_calls(calls, model, pace, rows=1, n=CallPace.LEARN + 1)[-1]
        # 1,000 rows at about 0.05 ms each: far over 1 ms, so a thread runs it.
        assert calls.runs_inline(model, pace, 1) and not calls.runs_inline(model, pace, 1000)
        assert run_calls(calls, model, pace, rows=1000, n=1) == [False]


def test_a_model_that_grows_slow_moves_back_to_the_threads() -> None:
    model, pace = Model(), CallPace()
    with ThreadPoolExecutor(2) as pool:
        calls = ModelCalls(pool, inline_ms=1.0)
        assert run_calls(calls, model, pace, rows=1, n=CallPace.LEARN + 1)[-1]
        model.cpu_ms_per_row = 20.0  # one inline call costs 20 ms: the estimate jumps
        assert run_calls(calls, model, pace, rows=1, n=2) == [True, False]


def test_a_short_batch_uses_a_thread_while_other_requests_are_running() -> None:
    """Under concurrent load the loop gathers the next batch while a thread runs the
    model: only a micro-batch whose request is alone runs inline."""
    model, pace = Model(), CallPace()
    others = [0]
    with ThreadPoolExecutor(2) as pool:
        calls = ModelCalls(pool, inline_ms=1.0, alone=lambda: others[0] == 0)
        assert run_calls(calls, model, pace, rows=1, n=CallPace.LEARN + 1, batched=True)[-1]
        others[0] = 3
        assert run_calls(calls, model, pace, rows=1, n=5, batched=True) == [False] * 5
        others[0] = 0
        assert run_calls(calls, model, pace, rows=1, n=1, batched=True) == [True]


def test_a_short_unbatched_call_runs_inline_under_load_too() -> None:
    """Without micro-batching there is no batch to gather: the hand-off is pure cost,
    whoever else is running; the other conditions still hold."""
    model, pace = Model(), CallPace()
    with ThreadPoolExecutor(2) as pool:
        calls = ModelCalls(pool, inline_ms=1.0, alone=lambda: False)
        placed = run_calls(calls, model, pace, rows=1, n=CallPace.LEARN + 5)
        assert placed == [False] * CallPace.LEARN + [True] * 5
        model.cpu_ms_per_row = 20.0  # over the budget: back to the threads
        assert run_calls(calls, model, pace, rows=1, n=2) == [True, False]


def test_models_that_may_wait_and_a_zero_budget_always_use_threads() -> None:
    with ThreadPoolExecutor(2) as pool:
        waits, pace = Waits(), CallPace()
        assert not any(run_calls(ModelCalls(pool, inline_ms=1.0), waits, pace, 1, 30))
        model, pace = Model(), CallPace()
        assert not any(run_calls(ModelCalls(pool, inline_ms=0), model, pace, 1, 30))


def test_the_built_in_flavors_are_compute_only_and_pyfunc_is_not() -> None:
    from slipway.artifacts.flavors.lightgbm import LightGBMPredictor
    from slipway.artifacts.flavors.onnx import OnnxPredictor
    from slipway.artifacts.flavors.pyfunc import PyfuncPredictor
    from slipway.artifacts.flavors.sklearn import SklearnPredictor
    from slipway.artifacts.flavors.xgboost import XGBoostPredictor

    for predictor in (SklearnPredictor, XGBoostPredictor, LightGBMPredictor, OnnxPredictor):
        assert predictor.compute_only is True
    assert getattr(PyfuncPredictor, "compute_only", False) is False
