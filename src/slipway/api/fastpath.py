"""The ASGI entry point: inference routes straight to their handlers, the rest to FastAPI.

FastAPI's router, dependency injection and per-request telemetry cost about as much CPU
as the whole bare endpoint (benchmarks/serving/RESULTS.md, py-spy). The two inference
routes are the hot path, so :class:`InferenceFastPath` matches them first and runs the
very same handlers (``routes/predict.py``, ``routes/v2.py``) with the same middleware,
the same authentication, authorization and rate limits (``auth.admitted``) and the same
error shape. FastAPI still declares them, so the OpenAPI schema (and the schemathesis
suite) covers them; every other path — control API, health, metrics — goes to FastAPI.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from slipway.access.authz import Permission
from slipway.api.auth import admitted
from slipway.api.errors import request_id_of, slipway_error_response, unexpected_error
from slipway.api.middleware import RequestContext
from slipway.errors import SlipwayError

Handler = Callable[..., Awaitable[Response]]
_SEGMENT = r"(?P<endpoint>[^/]+)"


class InferenceFastPath:
    def __init__(self, app: FastAPI, *, max_body_bytes: int) -> None:
        from slipway.api.routes import predict, v2

        self.app = app
        self.routes: list[tuple[re.Pattern[str], Handler]] = [
            (re.compile(rf"^/v1/endpoints/{_SEGMENT}/predict$"), predict.predict),
            (re.compile(rf"^/v2/models/{_SEGMENT}/infer$"), v2.infer),
        ]
        self.fast: ASGIApp = RequestContext(self._serve, max_body_bytes=max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            for pattern, handler in self.routes:
                match = pattern.match(scope["path"])
                if match:
                    scope["app"] = self.app
                    scope["path_params"] = match.groupdict()
                    scope["slipway.handler"] = handler
                    await self.fast(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        handler: Handler = scope["slipway.handler"]
        endpoint = scope["path_params"]["endpoint"]
        response: Any
        try:
            async with admitted(request, Permission.PREDICT) as principal:
                response = await handler(endpoint, request, principal)
        except SlipwayError as exc:
            response = slipway_error_response(request_id_of(request), exc)
        except Exception as exc:
            response = unexpected_error(request_id_of(request), exc)
        await response(scope, receive, send)
