"""Where a model call runs: on the event loop when it is short (and, for a micro-batch,
nothing else is running), else on a predict thread.

Handing a call to a thread and back is not free: the wake-ups and the GIL passing
between the event loop and the thread cost about 0.1-0.15 ms of CPU per call on the
benchmark machine (``benchmarks/serving/app_cost.py``), as much as half of a logistic
regression's whole call. So a call runs inline, on the event loop, when all of these hold:

- the predictor only computes (``compute_only``: the built-in flavors). A custom pyfunc
  model may wait on a network or a lock, which must never stall the event loop;
- this version's calls have been measured (``LEARN`` calls on a thread first);
- its measured CPU per call, scaled to this call's rows, is within the server's
  ``inline_call_ms`` (1 ms by default; 0 turns inlining off), which bounds how long one
  call may hold up every other request, health checks included;
- for a micro-batch (``batched``), its request is the only one the worker is running
  (``alone``). Under concurrent load the loop gathers the next batch while a thread
  runs this one, and there inline calls measured no gain or a small loss; with one
  client at a time the hand-off is pure cost. A call that is not micro-batched
  (batching off for the endpoint, or a flavor that does not vectorize) has no batch to
  gather, so it runs inline under load too, as a hand-written endpoint would: about
  1.1x the requests/s at 16 and 64 clients (ADR 0009).

Every call is timed by the CPU of the thread that ran it (``time.thread_time``), which,
unlike wall time, does not count waiting for the GIL on a busy server. A version whose
calls grow slower (bigger requests, a changed input mix) moves back to the threads by
itself: the estimate follows every call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor

import numpy as np

from slipway.artifacts.flavors import ModelOutput, Predictor
from slipway.metrics import MODEL_CALLS

# Made once: a labelled child costs a dict lookup and a lock on every call otherwise.
_INLINE, _THREAD = MODEL_CALLS.labels(where="inline"), MODEL_CALLS.labels(where="thread")


class CallPace:
    """How much CPU one version's model calls take: a moving average per call and of
    the rows per call, so a call of ``n`` rows can be estimated before it runs."""

    LEARN = 20  # calls timed (on a thread) before any may run inline
    WEIGHT = 0.1  # of the newest call in the moving averages

    def __init__(self) -> None:
        self.calls = 0
        self.ms = 0.0
        self.rows = 1.0

    def estimate_ms(self, rows: int) -> float | None:
        """The expected CPU of a call of ``rows`` rows; None until enough calls were
        timed. Conservative: calls never get cheaper per call with more rows."""
        if self.calls < self.LEARN:
            return None
        return self.ms * max(1.0, rows / self.rows)

    def timed(self, predict: Callable[[np.ndarray], ModelOutput], X: np.ndarray) -> ModelOutput:
        """Run ``predict`` on the current thread and learn from its CPU time."""
        started = time.thread_time()
        output = predict(X)
        self._learn((time.thread_time() - started) * 1000, len(X))
        return output

    def _learn(self, ms: float, rows: int) -> None:
        if self.calls == 0:
            self.ms, self.rows = ms, float(max(rows, 1))
        else:
            self.ms += self.WEIGHT * (ms - self.ms)
            self.rows += self.WEIGHT * (max(rows, 1) - self.rows)
        self.calls += 1


class ModelCalls:
    """Runs model calls inline or on ``executor``, as the module docstring says.
    ``alone`` tells whether the request making a call is the only one running (by
    default, always: for callers that serve one request at a time); only micro-batched
    calls ask it."""

    def __init__(
        self,
        executor: Executor,
        inline_ms: float = 0.0,
        alone: Callable[[], bool] = lambda: True,
    ) -> None:
        self.executor = executor
        self.inline_ms = inline_ms
        self.alone = alone
        self.inline = 0  # calls run on the event loop (for tests and the curious)

    async def run(
        self, predictor: Predictor, pace: CallPace, X: np.ndarray, *, batched: bool = False
    ) -> ModelOutput:
        if self.runs_inline(predictor, pace, len(X), batched=batched):
            self.inline += 1
            _INLINE.inc()
            return pace.timed(predictor.predict, X)
        _THREAD.inc()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, pace.timed, predictor.predict, X)

    def runs_inline(
        self, predictor: Predictor, pace: CallPace, rows: int, *, batched: bool = False
    ) -> bool:
        if self.inline_ms <= 0 or not getattr(predictor, "compute_only", False):
            return False
        if batched and not self.alone():
            return False
        estimate = pace.estimate_ms(rows)
        return estimate is not None and estimate <= self.inline_ms
