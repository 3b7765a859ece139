"""One inference: rows in, predictions out, a durable prediction record in between.

Both HTTP routes (Open Inference Protocol and the plain JSON route) decode their own
format into rows and call :meth:`InferenceService.predict`.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from slipway.artifacts.flavors import ModelOutput
from slipway.errors import PredictionFailed, SlipwayError
from slipway.ids import new_id, utcnow
from slipway.serving.pool import LoadedVersion, PredictorPool
from slipway.serving.records import RecordWriter


@dataclass(frozen=True)
class InferenceResult:
    record_id: str
    loaded: LoadedVersion
    output: ModelOutput
    latency_ms: float

    @property
    def version(self) -> int:
        return self.loaded.version.number

    @property
    def model(self) -> str:
        return self.loaded.version.model

    def prediction_ids(self) -> list[str]:
        return [f"{self.record_id}-{i}" for i in range(len(self.output.predictions))]


def to_plain(values: np.ndarray) -> list[Any]:
    """numpy values to JSON-ready Python values (tolist converts scalars natively)."""
    return values.tolist()  # type: ignore[no-any-return]


class InferenceService:
    def __init__(self, pool: PredictorPool, writer: RecordWriter, threads: int = 4) -> None:
        self.pool = pool
        self.writer = writer
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="predict")

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)

    async def predict(
        self, endpoint: str, rows: list[dict[str, Any]], *, caller: str, route: str
    ) -> InferenceResult:
        loaded = self.pool.get(endpoint)
        started = time.perf_counter()
        X = loaded.signature.matrix(rows)
        loop = asyncio.get_running_loop()
        try:
            output = await loop.run_in_executor(self._executor, loaded.predictor.predict, X)
        except SlipwayError:
            raise
        except Exception as exc:
            # The model itself raised: report it without internals (the log has them).
            raise PredictionFailed(
                f"model {loaded.version.model!r} v{loaded.version.number} failed to predict: "
                f"{type(exc).__name__}"
            ) from exc
        latency_ms = (time.perf_counter() - started) * 1000
        result = InferenceResult(new_id(), loaded, output, latency_ms)
        outputs: dict[str, Any] = {"predictions": to_plain(output.predictions)}
        if output.probabilities is not None:
            outputs["probabilities"] = to_plain(output.probabilities)
            outputs["classes"] = output.classes
        await self.writer.write(
            {
                "id": result.record_id,
                "created_at": utcnow(),
                "endpoint": endpoint,
                "model": loaded.version.model,
                "version": loaded.version.number,
                "version_id": loaded.version.id,
                "caller": caller,
                "route": route,
                "rows": len(rows),
                "inputs": rows,
                "outputs": outputs,
                "latency_ms": latency_ms,
                "outcome": "ok",
            }
        )
        return result
