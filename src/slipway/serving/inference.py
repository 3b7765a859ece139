"""One inference: rows in, contract checked, predictions out, durable records in between.

Both HTTP routes (Open Inference Protocol and the plain JSON route) decode their own
format into rows and call :meth:`InferenceService.predict`:

1. every row is checked against the version's data contract, before the model and
   before any batching, so one bad row never fails others;
2. refused rows are quarantined — in ``reject`` mode the whole request then gets 422,
   in ``partial`` mode the valid rows go on;
3. the model runs on the valid rows; its answer is checked against the output rules
   and withheld (500 ``output_contract_violation``, counted) if it breaks them;
4. the prediction record and the quarantined rows are committed together, in the
   group commit, before anything is answered.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from slipway.artifacts.flavors import ModelOutput
from slipway.contracts.check import check_outputs, check_rows
from slipway.contracts.quarantine import Sealer, quarantine_rows
from slipway.contracts.schema import Contract
from slipway.errors import (
    ContractViolation,
    OutputContractViolation,
    PredictionFailed,
    SlipwayError,
)
from slipway.ids import new_id, utcnow
from slipway.metrics import CONTRACT_VIOLATIONS, OUTPUT_CONTRACT_VIOLATIONS, prediction_meters
from slipway.monitoring.windows import WindowRecorder
from slipway.serving.admission import Admission
from slipway.serving.batching import Answer, Batcher
from slipway.serving.calls import ModelCalls
from slipway.serving.limits import ServingLimits
from slipway.serving.mirrors import Mirrors
from slipway.serving.pool import LoadedVersion, PredictorPool
from slipway.serving.records import RecordWriter
from slipway.serving.routing import Route


@dataclass(frozen=True)
class InferenceResult:
    record_id: str
    loaded: LoadedVersion
    output: ModelOutput
    latency_ms: float
    # Original positions of the predicted rows in the request.
    row_index: list[int]
    # Refused rows (partial mode): position -> {"errors": [...], "quarantine_id": ...}.
    refused: dict[int, dict[str, Any]] = field(default_factory=dict)
    # The predicted rows as the contract cleaned them (what shadows are given).
    inputs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def version(self) -> int:
        return self.loaded.version.number

    @property
    def model(self) -> str:
        return self.loaded.version.model

    def prediction_ids(self) -> list[str]:
        return [f"{self.record_id}-{i}" for i in self.row_index]


def to_plain(values: np.ndarray) -> list[Any]:
    """numpy values to JSON-ready Python values (tolist converts scalars natively)."""
    return values.tolist()  # type: ignore[no-any-return]


class InferenceService:
    def __init__(
        self,
        pool: PredictorPool,
        writer: RecordWriter,
        sealer: Sealer,
        threads: int = 4,
        windows: WindowRecorder | None = None,
        admission: Admission | None = None,
        batch_max_rows: int = 0,
        batch_wait_ms: float = 0.0,
        request_timeout_s: float = 30.0,
        inline_call_ms: float = 0.0,
    ) -> None:
        self.pool = pool
        self.writer = writer
        self.sealer = sealer
        self.windows = windows or WindowRecorder()
        self.admission = admission or Admission()
        # The server's limits; an endpoint's route may override each of them.
        self.defaults = ServingLimits(
            max_inflight=self.admission.max_inflight,
            max_queue=self.admission.max_queue,
            request_timeout_s=request_timeout_s,
            batch_max_rows=batch_max_rows,
            batch_wait_ms=batch_wait_ms,
        )
        # endpoint -> (route generation, its limits over the server's): merged once per
        # route, not per request.
        self._limits: dict[str, tuple[int, ServingLimits]] = {}
        # (endpoint, version id) -> (generation, batcher of that version)
        self._batchers: dict[tuple[str, str], tuple[int, Batcher]] = {}
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="predict")
        self.calls = ModelCalls(self._executor, inline_call_ms, alone=self.admission.alone)
        self.mirrors = Mirrors(writer, self.windows)

    def limits(self, endpoint: str) -> ServingLimits:
        """The limits ``endpoint`` is served with here (the server's when it has no
        route in this process)."""
        try:
            route = self.pool.route(endpoint)
        except SlipwayError:
            return self.defaults
        return self._limits_of(route)

    def _limits_of(self, route: Route) -> ServingLimits:
        cached = self._limits.get(route.endpoint)
        if cached is not None and cached[0] == route.generation:
            return cached[1]
        limits = route.limits.over(self.defaults)
        self._limits[route.endpoint] = (route.generation, limits)
        return limits

    def shutdown(self) -> None:
        self.mirrors.shutdown()
        self._executor.shutdown(wait=True)

    async def predict(
        self,
        endpoint: str,
        rows: list[Any],
        *,
        caller: str,
        route: str,
        request_id: str = "",
        mode: str | None = None,
        quarantine: bool = True,
        deadline: float | None = None,
        routing_key: str | None = None,
    ) -> InferenceResult:
        """``mode`` overrides the endpoint's contract mode (V2 always rejects; replay is
        partial); ``quarantine=False`` (replay) reports refused rows without storing
        them again; ``deadline`` (``time.monotonic()``): not started after it (504);
        without one, the endpoint's request timeout from now.
        Beyond the endpoint's in-flight and queue bounds the request is refused (503).
        The traffic plan picks the version (``routing_key`` for sticky canaries); the
        shadows get a copy once the answer is recorded."""
        plan = self.pool.route(endpoint)
        limits = self._limits_of(plan)
        if deadline is None:
            deadline = time.monotonic() + limits.request_timeout_s
        loaded = plan.pick(routing_key)
        async with self.admission.slot(
            endpoint, deadline, max_inflight=limits.max_inflight, max_queue=limits.max_queue
        ):
            result = await self._predict(
                loaded, rows, caller, route, request_id, mode, quarantine, limits
            )
        self.mirrors.after(plan, result)
        return result

    async def _predict(
        self,
        loaded: LoadedVersion,
        rows: list[Any],
        caller: str,
        route: str,
        request_id: str,
        mode: str | None,
        quarantine: bool,
        limits: ServingLimits,
    ) -> InferenceResult:
        endpoint = loaded.endpoint
        version = loaded.version
        started = time.perf_counter()
        checked = check_rows(loaded.contract, rows)
        held: list[dict[str, Any]] = []
        refused: dict[int, dict[str, Any]] = {}
        if checked.errors:
            quarantined = quarantine_rows(
                self.sealer,
                loaded.contract,
                rows,
                checked.errors,
                request_id=request_id,
                endpoint=endpoint,
                model=version.model,
                version=version.number,
                version_id=version.id,
                caller=caller,
                route=route,
            )
            for errors in checked.errors.values():
                for error in errors:
                    CONTRACT_VIOLATIONS.labels(
                        endpoint=endpoint,
                        version=str(version.number),
                        field=str(error["field"]),
                    ).inc()
            refused = {
                q["row_index"]: {"errors": q["reasons"], "quarantine_id": q["id"]}
                for q in quarantined
            }
            held = quarantined if quarantine else []
            if (mode or loaded.contract_mode) != "partial" or not checked.valid:
                await self.writer.write(None, held)
                self._observe(loaded, None, None, None, len(checked.errors), "contract_violation")
                raise _violation(checked.errors, refused, len(rows))
        X = loaded.matrix(checked.rows)
        try:
            output, verified = await self._call_model(loaded, X, limits)
        except SlipwayError:
            raise
        except Exception as exc:
            # The model itself raised: report it without internals (the log has them).
            elapsed_ms = (time.perf_counter() - started) * 1000
            self._observe(loaded, None, None, elapsed_ms, len(checked.errors), "error")
            raise PredictionFailed(
                f"model {version.model!r} v{version.number} failed to predict: {type(exc).__name__}"
            ) from exc
        latency_ms = (time.perf_counter() - started) * 1000
        result = InferenceResult(
            new_id(), loaded, output, latency_ms, checked.valid, refused, checked.rows
        )
        problems = (
            []
            if verified
            else check_outputs(loaded.contract, output.predictions, output.probabilities)
        )
        outputs: dict[str, Any] = {"predictions": to_plain(output.predictions)}
        if output.probabilities is not None:
            outputs["probabilities"] = to_plain(output.probabilities)
            outputs["classes"] = output.classes
        if len(checked.valid) != len(rows):
            outputs["row_index"] = checked.valid
        record = {
            "id": result.record_id,
            "created_at": utcnow(),
            "endpoint": endpoint,
            "model": version.model,
            "version": version.number,
            "version_id": version.id,
            "caller": caller,
            "route": route,
            "rows": len(checked.valid),
            "inputs": checked.rows,
            "outputs": outputs,
            "latency_ms": latency_ms,
            "outcome": "output_contract_violation" if problems else "ok",
            "arm": loaded.arm,
            "mirror_of": None,
        }
        await self.writer.write(record, held)
        self._observe(
            loaded,
            X,
            output,
            latency_ms,
            len(checked.errors),
            "output_contract_violation" if problems else "ok",
        )
        if problems:
            OUTPUT_CONTRACT_VIOLATIONS.labels(endpoint=endpoint, version=str(version.number)).inc()
            raise OutputContractViolation(
                f"the model's answer broke its output contract and was withheld: "
                f"{'; '.join(problems)}"
            )
        return result

    async def _call_model(
        self, loaded: LoadedVersion, X: np.ndarray, limits: ServingLimits
    ) -> Answer:
        """Run the model: merged with concurrent requests to the same version when
        micro-batching is on for the endpoint and the predictor is vectorized. Also says
        whether the answer is already known to pass the output rules (a batch's was
        checked as a whole)."""
        if limits.batch_max_rows <= 0 or not getattr(loaded.predictor, "batchable", True):
            return await self.calls.run(loaded.predictor, loaded.pace, X), False
        key = (loaded.endpoint, loaded.version.id)
        current = self._batchers.get(key)
        # A change of the endpoint's limits bumps its generation: a new batcher takes them.
        if current is None or current[0] != loaded.generation:
            batcher = Batcher(
                partial(self.calls.run, loaded.predictor, loaded.pace, batched=True),
                max_rows=limits.batch_max_rows,
                max_wait_ms=limits.batch_wait_ms,
                verify=partial(_passes_output_rules, loaded.contract),
            )
            current = self._batchers[key] = (loaded.generation, batcher)
        return await current[1].predict(X)

    def _observe(
        self,
        loaded: LoadedVersion,
        X: np.ndarray | None,
        output: ModelOutput | None,
        latency_ms: float | None,
        violations: int,
        outcome: str,
    ) -> None:
        """Count the request in the live window and in the Prometheus metrics."""
        error = outcome in ("error", "output_contract_violation")
        self.windows.observe(
            loaded, X, output, latency_ms=latency_ms, violations=violations, error=error
        )
        requests, rows, latency = prediction_meters(
            loaded.endpoint, str(loaded.version.number), outcome
        )
        requests.inc()
        if X is not None:
            rows.inc(len(X))
        if latency_ms is not None:
            latency.observe(latency_ms / 1000)


def _passes_output_rules(contract: Contract, output: ModelOutput) -> bool:
    return not check_outputs(contract, output.predictions, output.probabilities)


def _violation(
    errors: dict[int, list[dict[str, Any]]], refused: dict[int, dict[str, Any]], total: int
) -> ContractViolation:
    details = [
        {
            "row": i,
            "field": e["field"],
            "reason": e["reason"],
            "quarantine_id": refused[i]["quarantine_id"],
        }
        for i, row_errors in sorted(errors.items())
        for e in row_errors
    ]
    first = details[0]
    message = (
        f"{len(errors)} of {total} rows break the data contract and were quarantined; "
        f"first: inputs[{first['row']}].{first['field']}: {first['reason']}"
    )
    return ContractViolation(message, details=details)
