"""ASGI middleware: a request id on every request, and a cap on request body size.

Pure ASGI (no BaseHTTPMiddleware) so streaming uploads and the hot inference path pay
nothing beyond a dict lookup.
"""

from __future__ import annotations

import os
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slipway.api.errors import error_response, internal_error
from slipway.errors import PayloadTooLarge

REQUEST_ID_HEADER = b"x-request-id"
# Streaming uploads police their own (larger) limit while they stream.
UNCAPPED_PREFIXES = ("/api/v1/artifacts",)


class RequestContext:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or os.urandom(8).hex()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        # Deadlines count from arrival, not from when a handler got round to it.
        state["arrived"] = time.monotonic()

        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER, request_id.encode()))
                message["headers"] = headers
            await send(message)

        if not scope["path"].startswith(UNCAPPED_PREFIXES):
            length = _content_length(scope)
            if length is not None and length > self.max_body_bytes:
                response = error_response(
                    413,
                    "payload_too_large",
                    f"request body of {length} bytes exceeds the limit of "
                    f"{self.max_body_bytes} bytes",
                    request_id=request_id,
                )
                await response(scope, receive, send_with_id)
                return
            receive = _capped(receive, self.max_body_bytes)
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Unexpected errors are answered by ServerErrorMiddleware, which sits outside
            # this middleware and so would send the 500 without the x-request-id header.
            # Answer here instead; it still logs (and skips sending, as a response started).
            if not started:
                await internal_error(request_id)(scope, receive, send_with_id)
            raise


class BodyTooLarge(PayloadTooLarge):
    """Raised by a capped receive when a chunked body passes the limit."""


def _capped(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def capped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(f"request body exceeds the limit of {limit} bytes")
        return message

    return capped


def _incoming_request_id(scope: Scope) -> str | None:
    for key, value in scope.get("headers", []):
        if key == REQUEST_ID_HEADER:
            text: str = value.decode("latin-1")
            # Accept a caller's id only if it is short and plain (it lands in logs).
            if 0 < len(text) <= 64 and text.replace("-", "").isalnum():
                return text
    return None


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            decoded: str = value.decode("latin-1")
            return decoded
    return None
