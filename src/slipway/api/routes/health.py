"""/healthz (the process is up) and /readyz (it can serve every deployed endpoint).

No authentication: load balancers and orchestrators call these.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from slipway.api.routes import errors
from slipway.api.routes.predict import json_response
from slipway.api.routes.v2 import _ready

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@router.get("/readyz", responses=errors(503))
async def readyz(request: Request) -> Response:
    ok = await run_in_threadpool(_ready, request)
    return json_response({"ready": ok}, status=200 if ok else 503)
