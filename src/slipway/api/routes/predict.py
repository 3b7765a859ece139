"""POST /v1/endpoints/{endpoint}/predict — the plain JSON inference route.

{"inputs": [{"sepal_length": 5.1, ...}, ...]}
-> {"endpoint": "iris", "model": "iris", "version": 3,
    "predictions": [{"id": "...-0", "prediction": 0,
                     "probabilities": {"0": 0.97, "1": 0.02, "2": 0.01},
                     "version": 3}, ...]}
"""

from __future__ import annotations

import re
import time
from typing import Any

import msgspec
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from slipway.access.authz import Permission, Principal
from slipway.api.auth import require, runtime_of
from slipway.api.errors import request_id_of
from slipway.api.routes import PROTECTED, errors
from slipway.errors import InvalidRequest, ValidationFailed
from slipway.serving.limits import MAX_TIMEOUT_S

router = APIRouter(tags=["inference"], responses=PROTECTED)

MAX_ROWS = 10_000


class PredictRequest(msgspec.Struct, forbid_unknown_fields=True):
    inputs: list[dict[str, Any]]


def decode(body: bytes, kind: type[Any]) -> Any:
    """Decode and type-check a JSON body; 400 if unreadable, 422 naming the field."""
    if not body:
        raise InvalidRequest("request body is empty; expected JSON")
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        # Typed decoding can stop at a schema error before it reaches a syntax error;
        # only on this (cold) path, check whether the body is JSON at all.
        try:
            msgspec.json.decode(body)
        except msgspec.DecodeError:
            raise InvalidRequest("request body is not valid JSON") from None
        field, reason = _field_of(str(exc))
        raise ValidationFailed(
            f"{field}: {reason}" if field else reason, details=[{"field": field, "reason": reason}]
        ) from None
    except msgspec.DecodeError:
        raise InvalidRequest("request body is not valid JSON") from None


_AT_PATH = re.compile(r"^(?P<reason>.*) - at `\$\.?(?P<path>[^`]*)`$")
_NAMED_FIELD = re.compile(r"field `(?P<name>[^`]+)`")


def _field_of(message: str) -> tuple[str | None, str]:
    """msgspec's messages to (field path, reason):
    "Expected `array`, got `object` - at `$.inputs`" -> ("inputs", "Expected ...");
    "Object missing required field `inputs`" -> ("inputs", ...)."""
    at = _AT_PATH.match(message)
    if at:
        reason, path = at.group("reason"), at.group("path")
        named = _NAMED_FIELD.search(reason)
        if named:  # "Object contains unknown field `x` - at `$.inputs[0]`"
            path = f"{path}.{named.group('name')}" if path else named.group("name")
        return path or None, reason
    named = _NAMED_FIELD.search(message)
    return (named.group("name") if named else None), message


TIMEOUT_HEADER = "x-slipway-timeout-ms"
# With sticky routing, requests carrying the same key meet the same version of a canary.
ROUTING_KEY_HEADER = "x-slipway-routing-key"


def deadline_of(request: Request, endpoint: str) -> float:
    """When this request must have started (``time.monotonic()``): its arrival plus the
    endpoint's request timeout (its own or the server's), or the caller's
    ``X-Slipway-Timeout-Ms``."""
    timeout: float = runtime_of(request).inference.limits(endpoint).request_timeout_s
    asked = request.headers.get(TIMEOUT_HEADER)
    if asked is not None:
        try:
            timeout = min(float(asked) / 1000, MAX_TIMEOUT_S)
        except ValueError:
            timeout = -1.0
        if not timeout > 0:
            raise ValidationFailed.field(
                "X-Slipway-Timeout-Ms", "must be a positive number of milliseconds"
            )
    arrived = getattr(request.state, "arrived", None) or time.monotonic()
    return float(arrived) + timeout


def json_response(body: dict[str, Any], status: int = 200) -> Response:
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/json")


@router.post("/v1/endpoints/{endpoint}/predict", responses=errors(400, 404, 500, 503, 504))
async def predict(
    endpoint: str, request: Request, principal: Principal = Depends(require(Permission.PREDICT))
) -> Response:
    payload: PredictRequest = decode(await request.body(), PredictRequest)
    if not payload.inputs:
        raise ValidationFailed.field("inputs", "must hold at least one row")
    if len(payload.inputs) > MAX_ROWS:
        raise ValidationFailed.field("inputs", f"at most {MAX_ROWS} rows per request")
    result = await runtime_of(request).inference.predict(
        endpoint,
        payload.inputs,
        caller=principal.token_id or principal.name,
        route="plain",
        request_id=request_id_of(request),
        deadline=deadline_of(request, endpoint),
        routing_key=request.headers.get(ROUTING_KEY_HEADER),
    )
    output = result.output
    ids = result.prediction_ids()
    probabilities = output.probabilities.tolist() if output.probabilities is not None else None
    keys = (
        [str(c) for c in (output.classes or range(output.probabilities.shape[1]))]
        if output.probabilities is not None
        else []
    )
    answered: dict[int, dict[str, Any]] = {}
    for n, (row, pid, label) in enumerate(
        zip(result.row_index, ids, output.predictions.tolist(), strict=True)
    ):
        entry: dict[str, Any] = {"row": row, "id": pid, "prediction": label}
        if probabilities is not None:
            entry["probabilities"] = dict(zip(keys, probabilities[n], strict=True))
        entry["version"] = result.version
        answered[row] = entry
    for row, refused in result.refused.items():  # partial mode: kept in request order
        answered[row] = {
            "row": row,
            "errors": refused["errors"],
            "quarantine_id": refused["quarantine_id"],
        }
    return json_response(
        {
            "endpoint": endpoint,
            "model": result.model,
            "version": result.version,
            "predictions": [answered[i] for i in sorted(answered)],
            "refused": len(result.refused),
        }
    )
