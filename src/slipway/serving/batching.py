"""Adaptive micro-batching: concurrent requests to one version share one model call.

A scikit-learn ``predict_proba`` costs about the same for 64 rows as for one (most of
it is per-call overhead), so under load merging requests multiplies throughput. The
batcher is adaptive: a request that finds the model idle runs at once, alone — no added
latency at low load. Requests that arrive while a call is running wait for it and then
go together in the next call, up to ``max_rows`` rows; ``max_wait_ms`` (default 0) can
hold a call back a little to gather more.

Contracts are checked before a request joins a batch, so one bad row never fails
another request's rows; a model error fails only the batch it happened in. The output
rules are checked once over the whole batch's answer (``verify``): when it passes, so
does every request's share of it, and only a batch that fails is checked request by
request (so one bad answer withholds only its own request's).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from slipway.artifacts.flavors import ModelOutput

# A request's share of the batch's answer, and whether the whole answer passed verify.
Answer = tuple[ModelOutput, bool]


@dataclass
class _Waiting:
    X: np.ndarray
    done: asyncio.Future[Answer]


class Batcher:
    """One per loaded version: merges its concurrent calls."""

    def __init__(
        self,
        call: Callable[[np.ndarray], Awaitable[ModelOutput]],
        *,
        max_rows: int = 256,
        max_wait_ms: float = 0.0,
        verify: Callable[[ModelOutput], bool] | None = None,
    ) -> None:
        # Runs the model (``ModelCalls.run``: on a predict thread, or inline when short).
        self.call = call
        self.verify = verify
        self.max_rows = max_rows
        self.max_wait_s = max_wait_ms / 1000
        self._queue: list[_Waiting] = []
        self._running = False
        self.calls = 0  # model calls made (rows / calls = mean batch size)

    async def predict(self, X: np.ndarray) -> Answer:
        done: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(X, done))
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await done

    async def _drain(self) -> None:
        try:
            while self._queue:
                if self.max_wait_s and len(self._queue) == 1:
                    await asyncio.sleep(self.max_wait_s)
                batch = self._take()
                await self._run(batch)
        finally:
            self._running = False

    def _take(self) -> list[_Waiting]:
        batch: list[_Waiting] = []
        rows = 0
        while self._queue and (not batch or rows + len(self._queue[0].X) <= self.max_rows):
            item = self._queue.pop(0)
            batch.append(item)
            rows += len(item.X)
        return batch

    async def _run(self, batch: list[_Waiting]) -> None:
        X = batch[0].X if len(batch) == 1 else np.concatenate([w.X for w in batch])
        self.calls += 1
        try:
            output = await self.call(X)
            if len(output.predictions) != len(X):
                raise ValueError(f"the model answered {len(output.predictions)} rows for {len(X)}")
        except Exception as exc:  # the model raised: every request of this batch fails
            for w in batch:
                if not w.done.done():
                    w.done.set_exception(exc)
            return
        verified = self.verify is not None and self.verify(output)
        start = 0
        for w in batch:
            end = start + len(w.X)
            if not w.done.done():
                w.done.set_result((_slice(output, start, end), verified))
            start = end


def _slice(output: ModelOutput, start: int, end: int) -> ModelOutput:
    proba = output.probabilities
    return ModelOutput(
        output.predictions[start:end],
        proba[start:end] if proba is not None else None,
        output.classes,
    )
