"""/api/v1/artifacts: streaming, content-addressed upload of model bytes.

The body is the raw artifact (``application/octet-stream``); the answer is its SHA-256,
which a version registration then refers to. Uploading the same bytes twice is a no-op.
Pickles are refused here already, by content, before anything is stored.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from slipway.access.authz import Permission, Principal
from slipway.api.auth import require, runtime_of
from slipway.api.routes import PROTECTED
from slipway.artifacts.safety import refuse_pickle
from slipway.errors import PayloadTooLarge

router = APIRouter(prefix="/api/v1/artifacts", tags=["artifacts"], responses=PROTECTED)

# Enough of the head to recognise every pickle framing refuse_pickle looks for.
_SNIFF_BYTES = 1 << 20


# The body is read as a stream, not parsed by FastAPI: declare it for the OpenAPI schema.
_RAW_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.post("", status_code=201, openapi_extra=_RAW_BODY)
async def upload_artifact(
    request: Request, _: Principal = Depends(require(Permission.VERSION_REGISTER))
) -> dict[str, Any]:
    store = runtime_of(request).artifacts
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > store.max_bytes:
        raise PayloadTooLarge(
            f"artifact of {declared} bytes exceeds the upload limit of {store.max_bytes} bytes"
        )
    upload = store.begin_upload()
    head = bytearray()
    try:
        async for chunk in request.stream():
            if len(head) < _SNIFF_BYTES:
                head.extend(chunk[: _SNIFF_BYTES - len(head)])
            upload.write(chunk)
        # Registration re-checks the whole artifact through its flavor; this early check
        # keeps a pickle from ever being stored.
        refuse_pickle(bytes(head))
        info = await run_in_threadpool(upload.commit)
    except BaseException:
        upload.abort()
        raise
    return {"sha256": info.sha256, "size": info.size}
