"""One routes module per resource; each parses, calls one service, formats the result.

``errors(...)`` documents, in the OpenAPI schema, the error answers a route can give —
all in the one error shape of ``api/errors.py``. Every router declares ``PROTECTED``
(what any authenticated route may answer); routes add what their service can raise.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    field: str | None = None
    reason: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail]


class ErrorResponse(BaseModel):
    """The one JSON error shape."""

    error: ErrorBody
    request_id: str


_WHY = {
    400: "The body is not readable JSON (or is empty where JSON is expected).",
    401: "Missing, invalid, expired or revoked bearer token.",
    403: "The caller's grants or token scopes do not include the route's permission.",
    404: "The named object does not exist.",
    409: "Conflicts with the current state (duplicate name, wrong status, revoked...).",
    413: "The request body exceeds the configured limit.",
    422: "A field, parameter or artifact is invalid; ``details`` names each field.",
    429: "The token's rate or concurrency limit is exceeded; see Retry-After.",
    500: "The model raised on valid input (prediction_failed).",
    503: "Not ready (endpoint not loaded, server draining, store down) or overloaded "
    "(the endpoint's queue is full); retry after Retry-After.",
    504: "The request's deadline passed before the model could run it.",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error ``codes``, each with the error shape."""
    return {code: {"model": ErrorResponse, "description": _WHY[code]} for code in codes}


# Bounds for numbers that reach the store or a datetime: past them a request would fail
# inside the database driver or ``timedelta`` (a 500) instead of answering 422.
MAX_INT32 = 2**31 - 1  # an Integer column (version numbers, limits)
MAX_INT64 = 2**63 - 1  # a BigInteger column (audit sequence numbers)
MAX_SECONDS = 100 * 365 * 86400  # a duration added to "now"

# Any authenticated route: no/bad token, no permission, body over the limit (checked
# before routing), invalid parameters, rate limited.
PROTECTED = errors(401, 403, 413, 422, 429)
