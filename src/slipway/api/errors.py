"""The one JSON error shape, and the handlers that produce it.

    {"error": {"code": "...", "message": "...", "details": [...]}, "request_id": "..."}

No stack trace, path or SQL ever reaches a response: unexpected exceptions are logged
with the request id and answered with a generic ``internal`` error.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.responses import Response

from slipway.errors import DeadlineExceeded, Overloaded, RateLimited, SlipwayError, Unavailable
from slipway.store.engine import store_unavailable

log = logging.getLogger("slipway.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_field",
    429: "rate_limited",
    503: "unavailable",
}


def request_id_of(scope_or_request: Any) -> str:
    scope = getattr(scope_or_request, "scope", scope_or_request)
    return str(scope.get("state", {}).get("request_id", ""))


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    request_id: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = {
        "error": {"code": code, "message": message, "details": details or []},
        "request_id": request_id,
    }
    return Response(
        msgspec.json.encode(body),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _validation_details(exc: RequestValidationError) -> tuple[int, str, str, list[dict[str, Any]]]:
    details = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return 400, "bad_request", "request body is not valid JSON", []
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        details.append({"field": ".".join(loc) or None, "reason": str(err.get("msg", ""))})
    first = details[0] if details else {"field": None, "reason": "invalid request"}
    message = f"{first['field']}: {first['reason']}" if first["field"] else str(first["reason"])
    return 422, "invalid_field", message, details


def slipway_error_response(request_id: str, exc: SlipwayError) -> Response:
    """A SlipwayError in the one error shape, with the headers its status calls for."""
    # Shed requests are expected under load and counted (slipway_shed_total); a log
    # line with a traceback for each would cost more than refusing them.
    if isinstance(exc, Unavailable) and not isinstance(exc, Overloaded):
        # Not ready, draining, the store out of reach: a condition, not a bug, and one
        # that repeats for every request while it lasts; the cause is logged where seen.
        log.warning("request %s: %s", request_id, exc.message)
    elif exc.status >= 500 and not isinstance(exc, Overloaded | DeadlineExceeded):
        log.error("request %s failed: %s", request_id, exc.message, exc_info=exc.__cause__ or exc)
    headers = {"Retry-After": "1"} if exc.status == 503 else None
    if exc.status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(exc.retry_after)}
    return error_response(
        exc.status,
        exc.code,
        exc.message,
        request_id=request_id,
        details=exc.details,
        headers=headers,
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SlipwayError)
    async def _slipway(request: Request, exc: SlipwayError) -> Response:
        return slipway_error_response(request_id_of(request), exc)

    @app.exception_handler(DataError)
    async def _unstorable(request: Request, exc: DataError) -> Response:
        # The database refused a value the API let through (PostgreSQL text cannot hold
        # NUL characters, numbers out of the column's range): the caller's input is at
        # fault, so 422 — and the driver's message, which quotes SQL, stays in the log.
        log.info("request %s: value refused by the store: %s", request_id_of(request), exc.orig)
        return error_response(
            422,
            "invalid_field",
            "a value in the request cannot be stored (for example a NUL character)",
            request_id=request_id_of(request),
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        status, code, message, details = _validation_details(exc)
        return error_response(
            status, code, message, request_id=request_id_of(request), details=details
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        # FastAPI turns any error while reading a body into a generic 400; a chunked body
        # past the size cap must still answer 413, so answer with the cause when it is ours.
        if isinstance(exc.__cause__, SlipwayError):
            return await _slipway(request, exc.__cause__)
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}"
        return error_response(
            exc.status_code,
            code,
            message,
            request_id=request_id_of(request),
            headers=dict(exc.headers) if exc.headers else None,
        )

    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)
    async def _store_error(request: Request, exc: Exception) -> Response:
        if not store_unavailable(exc):
            raise exc  # a bug, not an outage: on to the generic 500 below
        return store_unavailable_error(request_id_of(request), exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("request %s failed", request_id_of(request), exc_info=exc)
        return internal_error(request_id_of(request))


def store_unavailable_error(request_id: str, exc: BaseException) -> Response:
    """The store is out of reach (down, locked past the busy timeout, connection lost):
    a state a retry may get past, so 503 with Retry-After, not a 500. One log line per
    request rather than a traceback each, since an outage fails every request."""
    cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    log.warning("request %s: store unavailable: %s", request_id, cause[0] if cause else "")
    return error_response(
        503,
        "unavailable",
        "the store is unavailable; retry later",
        request_id=request_id,
        headers={"Retry-After": "1"},
    )


def unexpected_error(request_id: str, exc: BaseException) -> Response:
    """The answer to an exception no handler took (the inference fast path catches its
    own): 503 when the store is out of reach, else a generic 500, logged."""
    if store_unavailable(exc):
        return store_unavailable_error(request_id, exc)
    log.error("request %s failed", request_id, exc_info=exc)
    return internal_error(request_id)


def internal_error(request_id: str) -> Response:
    """The answer to an unexpected exception: generic, with nothing from the exception."""
    return error_response(
        500, "internal", "internal error; see the server log", request_id=request_id
    )
