"""Copies of answered requests, run off the response path.

Two kinds, both after the caller's answer is recorded and never awaited by it:

- **shadow**: every shadow version of the endpoint answers a copy; its answer is recorded
  (``arm = shadow``, ``mirror_of`` the caller's record, inputs not stored twice) and
  counted in shadow windows, with how often it agreed with the version that answered;
- **mirror**: when the canary answered, the primary answers the same rows too, so the
  rollout analysis can measure how often the two agree on identical inputs.

They run on their own single thread, so a slow shadow cannot take the threads that serve
callers; at most ``max_pending`` copies wait, beyond that they are dropped and counted.
A shadow that raises is counted as an error in its window and its record; the caller
never sees it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from slipway.artifacts.flavors import ModelOutput
from slipway.contracts.check import check_rows
from slipway.ids import new_id, utcnow
from slipway.metrics import MIRRORED
from slipway.monitoring.windows import WindowRecorder
from slipway.serving.pool import LoadedVersion
from slipway.serving.records import RecordWriter
from slipway.serving.routing import Route

if TYPE_CHECKING:
    from slipway.serving.inference import InferenceResult

log = logging.getLogger("slipway.serving")


class Mirrors:
    def __init__(
        self, writer: RecordWriter, windows: WindowRecorder, *, max_pending: int = 64
    ) -> None:
        self.writer = writer
        self.windows = windows
        self.max_pending = max_pending
        self.pending = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow")
        self._tasks: set[asyncio.Task[None]] = set()

    def after(self, route: Route, result: InferenceResult) -> None:
        """Schedule the copies ``result`` calls for under ``route``."""
        jobs = [(shadow, True) for shadow in route.shadows]
        if result.loaded.arm == "canary":
            jobs.append((route.primary, False))
        for target, is_shadow in jobs:
            kind = "shadow" if is_shadow else "mirror"
            if self.pending >= self.max_pending:
                MIRRORED.labels(target.endpoint, str(target.version.number), kind, "dropped").inc()
                continue
            self.pending += 1
            task = asyncio.get_running_loop().create_task(self._run(target, result, is_shadow))
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.pending -= 1
        self._tasks.discard(task)

    async def drain(self) -> None:
        """Wait for the copies under way (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def _run(self, target: LoadedVersion, result: InferenceResult, is_shadow: bool) -> None:
        kind = "shadow" if is_shadow else "mirror"
        checked = check_rows(target.contract, result.inputs)
        X: np.ndarray | None = None
        output: ModelOutput | None = None
        latency_ms = 0.0
        try:
            if checked.errors:
                raise ValueError(f"{len(checked.errors)} rows break this version's contract")
            X = target.matrix(checked.rows)
            loop = asyncio.get_running_loop()
            output, latency_ms = await loop.run_in_executor(
                self._executor, _timed, target.predictor.predict, X
            )
        except Exception as exc:  # noqa: BLE001 - a copy's failure is counted, never raised
            log.debug("%s %s v%s failed: %s", kind, target.endpoint, target.version.number, exc)
        outcome = "ok" if output is not None else "error"
        MIRRORED.labels(target.endpoint, str(target.version.number), kind, outcome).inc()
        compared, agreed = _agreement(target, output, result.output)
        if not is_shadow:
            # The primary mirrored the canary: the count belongs to the canary's window.
            self.windows.agree(result.loaded, target.version.number, compared, agreed)
            return
        self.windows.observe(
            target,
            X,
            output,
            latency_ms=latency_ms if output is not None else None,
            violations=len(checked.errors),
            error=output is None,
            shadow=True,
        )
        self.windows.agree(target, result.version, compared, agreed, shadow=True)
        try:
            await self.writer.write(_record(target, result, output, latency_ms), [])
        except Exception:  # noqa: BLE001 - the store being down is logged by the writer
            log.debug("shadow record of %s not written", result.record_id)


def _timed(predict: Any, X: np.ndarray) -> tuple[ModelOutput, float]:
    started = time.perf_counter()
    output = predict(X)
    return output, (time.perf_counter() - started) * 1000


def _agreement(
    target: LoadedVersion, mine: ModelOutput | None, theirs: ModelOutput
) -> tuple[int, int]:
    """Rows compared and rows alike: classes only (regressors' numbers never agree
    exactly; their shift is judged on distributions instead)."""
    if mine is None or len(mine.predictions) != len(theirs.predictions):
        return 0, 0
    classified = target.signature.classes is not None or mine.predictions.dtype.kind != "f"
    if not classified:
        return 0, 0
    alike = sum(
        a == b for a, b in zip(mine.predictions.tolist(), theirs.predictions.tolist(), strict=True)
    )
    return len(mine.predictions), int(alike)


def _record(
    target: LoadedVersion,
    result: InferenceResult,
    output: ModelOutput | None,
    latency_ms: float,
) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    if output is not None:
        outputs["predictions"] = output.predictions.tolist()
        if output.probabilities is not None:
            outputs["probabilities"] = output.probabilities.tolist()
            outputs["classes"] = output.classes
    return {
        "id": new_id(),
        "created_at": utcnow(),
        "endpoint": target.endpoint,
        "model": target.version.model,
        "version": target.version.number,
        "version_id": target.version.id,
        "caller": "shadow",
        "route": "shadow",
        "rows": len(result.inputs),
        "inputs": [],
        "outputs": outputs,
        "latency_ms": latency_ms,
        "outcome": "ok" if output is not None else "error",
        "arm": "shadow",
        "mirror_of": result.record_id,
    }
