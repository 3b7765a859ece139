"""Every error slipway raises on purpose, each with a stable code and an HTTP status.

Services raise these; only the edges translate them (``api/errors.py`` into the JSON
error shape, ``cli`` into a message and a non-zero exit).

    SlipwayError                     500 internal
    ├── InvalidRequest               400 bad_request        malformed body, unreadable JSON
    │   └── ValidationFailed         422 invalid_field      a named field has a bad value
    │       └── ContractViolation    422 contract_violation rows break the data contract
    ├── Unauthenticated              401 unauthenticated
    ├── Forbidden                    403 forbidden
    ├── NotFound                     404 not_found
    ├── Conflict                     409 conflict           duplicate name, wrong state
    │   └── PolicyBlocked            409 policy_blocked     a policy check failed (details: each)
    ├── PayloadTooLarge              413 payload_too_large
    ├── RateLimited                  429 rate_limited       with Retry-After
    ├── UnsafeArtifact               422 unsafe_artifact    pickle & co., external data
    ├── ArtifactIntegrityError       409 artifact_integrity hash mismatch on load
    ├── ModelLoadFailed              422 model_load_failed  flavor could not load the artifact
    ├── PredictionFailed             500 prediction_failed  the model raised on valid input
    ├── OutputContractViolation      500 output_contract_violation  an answer broke the rules
    ├── Unavailable                  503 unavailable        not ready, store down, draining
    │   └── Overloaded               503 overloaded         endpoint at capacity, with Retry-After
    └── DeadlineExceeded             504 deadline_exceeded  its deadline passed before its turn
"""

from __future__ import annotations

from typing import Any


class SlipwayError(Exception):
    """Base of every deliberate slipway error."""

    code = "internal"
    status = 500

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class InvalidRequest(SlipwayError):
    code = "bad_request"
    status = 400


class ValidationFailed(InvalidRequest):
    """A field has a bad value; ``details`` names each field and the reason."""

    code = "invalid_field"
    status = 422

    @classmethod
    def field(cls, name: str, reason: str) -> ValidationFailed:
        return cls(f"{name}: {reason}", details=[{"field": name, "reason": reason}])


class ContractViolation(ValidationFailed):
    """Rows broke the data contract; ``details`` has row, field and reason for each."""

    code = "contract_violation"
    status = 422


class Unauthenticated(SlipwayError):
    code = "unauthenticated"
    status = 401


class Forbidden(SlipwayError):
    code = "forbidden"
    status = 403


class NotFound(SlipwayError):
    code = "not_found"
    status = 404


class Conflict(SlipwayError):
    code = "conflict"
    status = 409


class PolicyBlocked(Conflict):
    """A governance policy refused a deploy, rollout start or promote; ``details`` holds
    every failed check as ``{"field": "<policy>.<check>", "reason": ...}``."""

    code = "policy_blocked"


class PayloadTooLarge(SlipwayError):
    code = "payload_too_large"
    status = 413


class RateLimited(SlipwayError):
    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after: int = 1, limit: str = "rps") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.limit = limit


class UnsafeArtifact(SlipwayError):
    code = "unsafe_artifact"
    status = 422


class ArtifactIntegrityError(SlipwayError):
    code = "artifact_integrity"
    status = 409


class ModelLoadFailed(SlipwayError):
    code = "model_load_failed"
    status = 422


class PredictionFailed(SlipwayError):
    code = "prediction_failed"
    status = 500


class OutputContractViolation(SlipwayError):
    """The model answered something its contract forbids; it is withheld and counted."""

    code = "output_contract_violation"
    status = 500


class Unavailable(SlipwayError):
    code = "unavailable"
    status = 503


class Overloaded(Unavailable):
    code = "overloaded"


class EndpointStopped(Unavailable):
    """The endpoint's stop switch is on and it declares no fallback version."""

    code = "endpoint_stopped"


class DeadlineExceeded(SlipwayError):
    code = "deadline_exceeded"
    status = 504
