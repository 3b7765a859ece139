"""Micro-batching: concurrent calls share one model call; each gets its own rows back."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import pytest

from slipway.artifacts.flavors import ModelOutput
from slipway.serving.batching import Batcher
from slipway.serving.calls import CallPace, ModelCalls


class Model:
    """Doubles its input; records the size of every call; can be told to fail."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    def predict(self, X: np.ndarray) -> ModelOutput:
        self.gate.wait(5)
        self.calls.append(len(X))
        if (X < 0).any():
            raise ValueError("negative input")
        proba = np.column_stack([X[:, 0], 1 - X[:, 0]])
        return ModelOutput(X[:, 0] * 2, proba, ["a", "b"])


def on_threads(
    model: Model, pool: ThreadPoolExecutor
) -> Callable[[np.ndarray], Awaitable[ModelOutput]]:
    """The model's calls as the server makes them, always on ``pool``'s threads."""
    return partial(ModelCalls(pool, inline_ms=0).run, model, CallPace())


def test_concurrent_requests_share_calls_and_get_their_own_rows() -> None:
    model = Model()

    async def scenario() -> list[ModelOutput]:
        with ThreadPoolExecutor(2) as pool:
            batcher = Batcher(on_threads(model, pool), max_rows=64)
            model.gate.clear()  # the first call blocks, so the others queue behind it
            first = asyncio.create_task(batcher.predict(np.array([[0.0]])))
            await asyncio.sleep(0.02)
            rest = [
                asyncio.create_task(batcher.predict(np.array([[i / 100], [i / 100 + 0.001]])))
                for i in range(1, 21)
            ]
            await asyncio.sleep(0.02)
            model.gate.set()
            return [(await first)[0], *[(await t)[0] for t in rest]]

    outputs = asyncio.run(scenario())
    assert model.calls == [1, 40]  # one lone call, then the 20 waiting requests together
    for i, out in enumerate(outputs[1:], start=1):
        assert out.predictions.tolist() == pytest.approx([i / 50, i / 50 + 0.002])
        assert out.probabilities is not None and out.probabilities.shape == (2, 2)
        assert out.classes == ["a", "b"]


def test_a_lone_request_runs_at_once_and_batches_respect_max_rows() -> None:
    model = Model()

    async def scenario() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(on_threads(model, pool), max_rows=5)
            await batcher.predict(np.ones((3, 1)) / 10)
            model.gate.clear()
            first = asyncio.create_task(batcher.predict(np.ones((1, 1)) / 10))
            await asyncio.sleep(0.02)
            waiting = [asyncio.create_task(batcher.predict(np.ones((2, 1)) / 10)) for _ in range(4)]
            await asyncio.sleep(0.02)
            model.gate.set()
            await asyncio.gather(first, *waiting)

    asyncio.run(scenario())
    assert model.calls[0] == 3 and max(model.calls) <= 5 and sum(model.calls) == 3 + 1 + 8


def test_a_model_error_fails_only_its_batch() -> None:
    model = Model()

    async def scenario() -> tuple[object, ...]:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(on_threads(model, pool), max_rows=64)
            bad = await asyncio.gather(batcher.predict(np.array([[-1.0]])), return_exceptions=True)
            good = await batcher.predict(np.array([[0.5]]))
            return (*bad, good)

    bad, good = asyncio.run(scenario())
    assert isinstance(bad, ValueError)
    assert isinstance(good, tuple) and good[0].predictions.tolist() == [1.0]
    assert good[1] is False  # no verify given: nothing is vouched for


def test_verify_runs_once_per_batch_and_a_failed_batch_vouches_for_nobody() -> None:
    model = Model()
    verified: list[int] = []

    def verify(output: ModelOutput) -> bool:
        verified.append(len(output.predictions))
        return bool((output.predictions < 1.5).all())  # an answer of 1.5 or more "breaks"

    async def scenario(values: list[float]) -> list[bool]:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(on_threads(model, pool), max_rows=64, verify=verify)
            model.gate.clear()
            first = asyncio.create_task(batcher.predict(np.array([[0.1]])))
            await asyncio.sleep(0.02)
            rest = [asyncio.create_task(batcher.predict(np.array([[v]]))) for v in values]
            await asyncio.sleep(0.02)
            model.gate.set()
            answers = [await first, *[await t for t in rest]]
            return [ok for _, ok in answers]

    assert asyncio.run(scenario([0.2, 0.3])) == [True, True, True]
    assert verified == [1, 2]  # the lone first call, then the two waiting ones together
    # One request whose answer breaks the rules: its whole batch is left to be checked
    # request by request, the lone call before it still passed.
    assert asyncio.run(scenario([0.2, 0.9])) == [True, False, False]
