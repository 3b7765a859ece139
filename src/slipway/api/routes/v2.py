"""The Open Inference Protocol (KServe/Triton/MLServer "V2") REST routes.

An endpoint appears as a V2 model. Inputs arrive either as one tensor of shape
``[rows, fields]`` (fields in signature order) or as one tensor per field named after it
(shape ``[rows]`` or ``[rows, 1]``). Outputs: ``predict`` (labels or values, ``[rows]``)
and, for classifiers, ``predict_proba`` (``[rows, classes]``, row-major).
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from slipway import __version__
from slipway.access.authz import Permission, Principal
from slipway.api.auth import require, runtime_of
from slipway.api.errors import request_id_of
from slipway.api.routes import PROTECTED, errors
from slipway.api.routes.predict import (
    MAX_ROWS,
    ROUTING_KEY_HEADER,
    deadline_of,
    decode,
    json_response,
)
from slipway.contracts.signature import Signature
from slipway.errors import Unavailable, ValidationFailed

router = APIRouter(prefix="/v2", tags=["open-inference-protocol"])

_NUMERIC = {
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
}
_FIELD_DATATYPE = {"float": "FP64", "int": "INT64", "bool": "BOOL", "string": "BYTES"}


class InferInput(msgspec.Struct):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]
    parameters: dict[str, Any] | None = None


class InferRequest(msgspec.Struct):
    inputs: list[InferInput]
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[dict[str, Any]] | None = None


def _datatype_of(values: np.ndarray) -> str:
    if values.dtype == np.bool_:
        return "BOOL"
    if np.issubdtype(values.dtype, np.integer):
        return "INT64"
    if np.issubdtype(values.dtype, np.floating):
        return "FP64"
    return "BYTES"


def _label_datatype(sig: Signature) -> str:
    """The datatype infer() gives the ``predict`` output (see :func:`_datatype_of`)."""
    if not sig.classes:
        return "FP64"
    return _datatype_of(np.asarray(sig.classes))


def _tensor(tensor: InferInput, where: str) -> np.ndarray:
    if tensor.datatype not in _NUMERIC | {"BYTES"}:
        raise ValidationFailed.field(f"{where}.datatype", f"unsupported {tensor.datatype!r}")
    if any(d < 0 for d in tensor.shape) or not tensor.shape:
        raise ValidationFailed.field(f"{where}.shape", "must be a list of non-negative sizes")
    try:
        arr = np.asarray(tensor.data, dtype=object).reshape(-1)
    except ValueError:
        raise ValidationFailed.field(f"{where}.data", "ragged nested lists") from None
    expected = int(np.prod(tensor.shape))
    if arr.size != expected:
        raise ValidationFailed.field(
            f"{where}.data", f"holds {arr.size} values but shape {tensor.shape} needs {expected}"
        )
    return arr.reshape(tensor.shape)


def rows_from_tensors(inputs: list[InferInput], sig: Signature) -> list[dict[str, Any]]:
    """Turn V2 input tensors into request rows keyed by field name."""
    names = sig.input_names
    if not inputs:
        raise ValidationFailed.field("inputs", "must hold at least one tensor")
    if len(inputs) == 1 and inputs[0].name not in names:
        arr = _tensor(inputs[0], "inputs[0]")
        if arr.ndim != 2 or arr.shape[1] != len(names):
            raise ValidationFailed.field(
                "inputs[0].shape",
                f"a single tensor must have shape [rows, {len(names)}] "
                f"(fields: {', '.join(names)})",
            )
        return [dict(zip(names, row, strict=True)) for row in arr.tolist()]
    columns: dict[str, list[Any]] = {}
    for i, tensor in enumerate(inputs):
        if tensor.name not in names:
            raise ValidationFailed.field(f"inputs[{i}].name", f"unknown field {tensor.name!r}")
        arr = _tensor(tensor, f"inputs[{i}]")
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise ValidationFailed.field(f"inputs[{i}].shape", "must be [rows] or [rows, 1]")
        columns[tensor.name] = arr.tolist()
    missing = [n for n in names if n not in columns]
    if missing:
        raise ValidationFailed.field("inputs", f"missing tensors for {', '.join(missing)}")
    lengths = {len(c) for c in columns.values()}
    if len(lengths) != 1:
        raise ValidationFailed.field("inputs", "all tensors must have the same number of rows")
    n = lengths.pop()
    return [{name: columns[name][r] for name in names} for r in range(n)]


@router.get("", responses=PROTECTED)
async def server_metadata(
    _: Principal = Depends(require(Permission.ENDPOINT_READ)),
) -> dict[str, Any]:
    return {"name": "slipway", "version": __version__, "extensions": []}


@router.get("/health/live")
async def live() -> dict[str, Any]:
    return {"live": True}


@router.get("/health/ready", responses=errors(503))
async def ready(request: Request) -> Response:
    ok = await run_in_threadpool(_ready, request)
    return json_response({"ready": ok}, status=200 if ok else 503)


def _ready(request: Request) -> bool:
    runtime = runtime_of(request)
    return not runtime.draining and runtime.pool.all_ready(runtime.endpoints.deployed_names())


@router.get("/models/{endpoint}", responses={**PROTECTED, **errors(404, 503)})
async def model_metadata(
    endpoint: str, request: Request, _: Principal = Depends(require(Permission.ENDPOINT_READ))
) -> dict[str, Any]:
    loaded = runtime_of(request).pool.get(endpoint)
    sig = loaded.signature
    outputs = [{"name": "predict", "datatype": _label_datatype(sig), "shape": [-1]}]
    if sig.classes is not None:
        outputs.append(
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(sig.classes)]}
        )
    return {
        "name": endpoint,
        "versions": [str(loaded.version.number)],
        "platform": f"slipway-{loaded.version.flavor}",
        "inputs": [
            {"name": f.name, "datatype": _FIELD_DATATYPE[f.type], "shape": [-1]} for f in sig.inputs
        ],
        "outputs": outputs,
        "parameters": {
            "model": loaded.version.model,
            "contract": loaded.contract.to_dict(),
            "contract_mode": loaded.contract_mode,
        },
    }


@router.get("/models/{endpoint}/ready", responses={**PROTECTED, **errors(503)})
async def model_ready(
    endpoint: str, request: Request, _: Principal = Depends(require(Permission.ENDPOINT_READ))
) -> Response:
    runtime = runtime_of(request)
    try:
        runtime.pool.get(endpoint)
    except Unavailable:
        return json_response({"name": endpoint, "ready": False}, status=503)
    return json_response({"name": endpoint, "ready": not runtime.draining})


@router.post("/models/{endpoint}/infer", responses={**PROTECTED, **errors(400, 404, 500, 503, 504)})
async def infer(
    endpoint: str, request: Request, principal: Principal = Depends(require(Permission.PREDICT))
) -> Response:
    runtime = runtime_of(request)
    payload: InferRequest = decode(await request.body(), InferRequest)
    loaded = runtime.pool.get(endpoint)
    rows = rows_from_tensors(payload.inputs, loaded.signature)
    if not rows or len(rows) > MAX_ROWS:
        raise ValidationFailed.field("inputs", f"must hold 1 to {MAX_ROWS} rows")
    # A V2 response is tensors with no slot for per-row errors: bad rows always fail the
    # whole request (and are quarantined), whatever the endpoint's contract mode.
    result = await runtime.inference.predict(
        endpoint,
        rows,
        caller=principal.token_id or principal.name,
        route="v2",
        request_id=request_id_of(request),
        mode="reject",
        deadline=deadline_of(request, endpoint),
        routing_key=request.headers.get(ROUTING_KEY_HEADER),
    )
    labels = result.output.predictions
    outputs: list[dict[str, Any]] = [
        {
            "name": "predict",
            "datatype": _datatype_of(labels),
            "shape": [len(labels)],
            "data": labels.tolist(),
        }
    ]
    proba = result.output.probabilities
    if proba is not None:
        outputs.append(
            {
                "name": "predict_proba",
                "datatype": "FP64",
                "shape": list(proba.shape),
                "data": proba.reshape(-1).tolist(),
            }
        )
    wanted = {o.get("name") for o in payload.outputs or []}
    if wanted:
        outputs = [o for o in outputs if o["name"] in wanted]
    body: dict[str, Any] = {
        "model_name": endpoint,
        "model_version": str(result.version),
        "id": payload.id if payload.id is not None else result.record_id,
        "parameters": {"prediction_ids": result.prediction_ids(), "model": result.model},
        "outputs": outputs,
    }
    return json_response(body)
