"""Unit tests of the authorization decision, the token shape check and the rate limiter.

Fast and store-free: roles x permissions, global / model / endpoint grants, collection
routes (no target), token scopes, the checksum, and the token bucket.
"""

from __future__ import annotations

import time

import pytest

from slipway.access.authz import (
    ROLE_PERMISSIONS,
    ROLES,
    TARGET_KIND,
    Grant,
    Permission,
    Principal,
    authorize,
    permissions_of,
)
from slipway.access.ratelimit import RateLimiter
from slipway.access.tokens import PREFIX, TOKEN_LEN, new_token_string, token_looks_valid
from slipway.errors import Forbidden, RateLimited

P = Permission
VIEWER = {
    P.MODEL_READ,
    P.ENDPOINT_READ,
    P.PREDICTION_READ,
    P.METRICS_READ,
    P.QUARANTINE_READ,
    P.MONITOR_READ,
    P.POLICY_READ,
}
# The declared policy, written out independently of authz.py so a change there shows here.
EXPECTED = {
    "viewer": VIEWER,
    "developer": VIEWER
    | {P.MODEL_WRITE, P.VERSION_REGISTER, P.APPROVAL_REQUEST, P.TESTSCORE_ATTEST},
    "approver": VIEWER | {P.APPROVAL_DECIDE, P.TESTSCORE_ATTEST},
    "operator": VIEWER
    | {
        P.ENDPOINT_DEPLOY,
        P.QUARANTINE_REPLAY,
        P.MONITOR_WRITE,
        P.FEEDBACK_WRITE,
        P.APPROVAL_REQUEST,
    },
    "reviewer": VIEWER | {P.PREDICTION_OVERRIDE, P.FEEDBACK_WRITE},
    "predictor": {P.PREDICT, P.FEEDBACK_WRITE},
    "admin": set(Permission),
}
# What a scoped grant may reach on a route that names no object (lists, artifact upload).
COLLECTION_OK = {
    P.MODEL_READ,
    P.ENDPOINT_READ,
    P.PREDICTION_READ,
    P.VERSION_REGISTER,
    P.QUARANTINE_READ,
    P.MONITOR_READ,
    P.MONITOR_WRITE,
    P.APPROVAL_DECIDE,
    P.PREDICTION_OVERRIDE,
}


def who(*grants: Grant, scopes: frozenset[str] = frozenset()) -> Principal:
    return Principal("alice", "tok1", tuple(grants), scopes)


# -- roles and grants -------------------------------------------------------------------


def test_roles_are_exactly_the_declared_policy() -> None:
    assert set(ROLES) == set(EXPECTED)
    for role, perms in EXPECTED.items():
        assert set(ROLE_PERMISSIONS[role]) == perms, role
    assert permissions_of(["viewer", "predictor"]) == VIEWER | {P.PREDICT, P.FEEDBACK_WRITE}
    assert permissions_of([]) == frozenset()
    # Every permission declares what kind of object it targets.
    assert set(TARGET_KIND) == set(Permission)


@pytest.mark.parametrize("role", sorted(EXPECTED))
@pytest.mark.parametrize("permission", list(Permission))
def test_global_grant_covers_exactly_its_role(role: str, permission: Permission) -> None:
    grant = Grant(role)
    allowed = permission in EXPECTED[role]
    for target in (None, "iris", "churn"):
        assert grant.covers(permission, target) is allowed, (role, permission, target)
        assert who(grant).can(permission, target) is allowed


@pytest.mark.parametrize("role", sorted(EXPECTED))
@pytest.mark.parametrize("permission", list(Permission))
@pytest.mark.parametrize("scope_kind", ["model", "endpoint"])
def test_scoped_grant(role: str, permission: Permission, scope_kind: str) -> None:
    grant = Grant(role, scope_kind, "iris")
    in_role = permission in EXPECTED[role]
    kind_matches = TARGET_KIND[permission] == scope_kind
    # On its own object: the role's permissions whose target kind is the scope's kind.
    assert grant.covers(permission, "iris") is (in_role and kind_matches)
    # On any other object: nothing.
    assert grant.covers(permission, "churn") is False
    assert grant.covers(permission, "iris2") is False
    assert grant.covers(permission, "IRIS") is False
    # Collection routes (no target): only the listed, read-ish permissions of its kind.
    expected_collection = in_role and kind_matches and permission in COLLECTION_OK
    assert grant.covers(permission, None) is expected_collection


def test_model_scoped_developer_cannot_create_models() -> None:
    dev = who(Grant("developer", "model", "iris"))
    # POST /api/v1/models names no model in the path: MODEL_WRITE with target None.
    assert not dev.can(P.MODEL_WRITE, None)
    with pytest.raises(Forbidden, match="lacks model:write"):
        authorize(dev, P.MODEL_WRITE)
    # ... but it may change its own model, register versions on it and upload artifacts.
    assert dev.can(P.MODEL_WRITE, "iris")
    assert dev.can(P.VERSION_REGISTER, "iris")
    assert dev.can(P.VERSION_REGISTER, None)
    assert dev.can(P.MODEL_READ, None)  # list models
    assert not dev.can(P.MODEL_WRITE, "churn")
    assert not dev.can(P.VERSION_REGISTER, "churn")
    # A model scope never reaches endpoints, even one with the same name.
    assert not dev.can(P.ENDPOINT_READ, "iris")
    assert not dev.can(P.METRICS_READ, None)
    with pytest.raises(Forbidden, match="on model 'churn'"):
        authorize(dev, P.MODEL_WRITE, "churn")
    authorize(dev, P.MODEL_WRITE, "iris")  # no exception


def test_service_account_predictor_on_named_endpoint_only() -> None:
    svc = who(Grant("predictor", "endpoint", "iris-prod"))
    assert svc.can(P.PREDICT, "iris-prod")
    assert not svc.can(P.PREDICT, "iris-staging")
    assert not svc.can(P.PREDICT, None)  # predict is never a collection permission
    # The application that asked for a prediction may later send its ground truth.
    assert svc.can(P.FEEDBACK_WRITE, "iris-prod")
    assert not svc.can(P.FEEDBACK_WRITE, "iris-staging")
    for permission in set(Permission) - {P.PREDICT, P.FEEDBACK_WRITE}:
        for target in (None, "iris-prod"):
            assert not svc.can(permission, target), (permission, target)


def test_operator_endpoint_scope_and_global_union() -> None:
    op = who(Grant("operator", "endpoint", "prod"), Grant("viewer"))
    assert op.can(P.ENDPOINT_DEPLOY, "prod")
    assert not op.can(P.ENDPOINT_DEPLOY, "staging")
    assert not op.can(P.ENDPOINT_DEPLOY, None)
    assert op.can(P.ENDPOINT_READ, "staging")  # via the global viewer grant
    assert op.can(P.MODEL_READ, "anything")
    assert not op.can(P.MODEL_WRITE, "anything")


def test_no_grants_and_unknown_role_deny_everything() -> None:
    for principal in (who(), who(Grant("superuser")), who(Grant("ADMIN"))):
        for permission in Permission:
            assert not principal.can(permission, None)
            assert not principal.can(permission, "x")
            with pytest.raises(Forbidden):
                authorize(principal, permission, "x")


def test_unknown_scope_kind_denies() -> None:
    grant = Grant("admin", "tenant", "acme")
    for permission in Permission:
        assert not grant.covers(permission, "acme")
        assert not grant.covers(permission, None)


def test_token_scopes_narrow_never_widen() -> None:
    admin = Grant("admin")
    read_only = who(admin, scopes=frozenset({"model:read"}))
    assert read_only.can(P.MODEL_READ, "iris")
    for permission in set(Permission) - {P.MODEL_READ}:
        assert not read_only.can(permission, "iris"), permission
        assert not read_only.can(permission, None), permission
    # A scope the grants do not give adds nothing.
    viewer = who(Grant("viewer"), scopes=frozenset({"model:read", "model:write", "predict"}))
    assert viewer.can(P.MODEL_READ, "iris")
    assert not viewer.can(P.MODEL_WRITE, "iris")
    assert not viewer.can(P.PREDICT, "iris")
    # Scopes and a scoped grant combine: both must allow.
    scoped = who(Grant("developer", "model", "iris"), scopes=frozenset({"model:write"}))
    assert scoped.can(P.MODEL_WRITE, "iris")
    assert not scoped.can(P.MODEL_WRITE, "churn")
    assert not scoped.can(P.MODEL_READ, "iris")
    # No scopes at all: everything the grants allow.
    assert who(admin).can(P.PRINCIPAL_MANAGE)


# -- token shape and checksum -----------------------------------------------------------


def test_new_tokens_have_the_documented_shape() -> None:
    seen = set()
    for _ in range(200):
        token = new_token_string()
        assert len(token) == TOKEN_LEN == 42
        assert token.startswith(PREFIX) and token[4:].isalnum() and token.isascii()
        assert token_looks_valid(token)
        seen.add(token)
    assert len(seen) == 200


def _typos(token: str, position: int) -> list[str]:
    """Every other base62 character at ``position`` (a one-character mistake)."""
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [token[:position] + c + token[position + 1 :] for c in alphabet if c != token[position]]


def test_checksum_catches_every_one_character_typo() -> None:
    for _ in range(5):
        token = new_token_string()
        for position in range(len(PREFIX), TOKEN_LEN):
            for typo in _typos(token, position):
                assert not token_looks_valid(typo), (position, typo)


def test_checksum_catches_swapped_neighbours() -> None:
    token = new_token_string()
    for i in range(len(PREFIX), TOKEN_LEN - 1):
        if token[i] != token[i + 1]:
            swapped = token[:i] + token[i + 1] + token[i] + token[i + 2 :]
            assert not token_looks_valid(swapped), i


def test_wrong_prefix_length_or_characters_refused() -> None:
    token = new_token_string()
    body = token[len(PREFIX) :]
    bad = [
        "",
        "slw_",
        token[:-1],
        token + "a",
        token[1:],
        "xyz_" + body,
        "SLW_" + body,
        "slw-" + body,
        "ghp_" + body,
        " " + token[:-1],
        token[:-1] + " ",
        token[:10] + "-" + token[11:],
        token[:10] + "é" + token[11:],
        token.replace(PREFIX, "", 1) + "abcd",  # right length, no prefix
    ]
    for value in bad:
        assert not token_looks_valid(value), value


# -- rate limiter -----------------------------------------------------------------------


def test_rps_bucket_admits_a_burst_then_429_with_retry_after() -> None:
    limiter = RateLimiter()
    leases = [limiter.acquire("t1", 5, None) for _ in range(5)]
    for lease in leases:
        lease.release()
    with pytest.raises(RateLimited) as caught:
        limiter.acquire("t1", 5, None)
    assert caught.value.status == 429 and caught.value.code == "rate_limited"
    assert caught.value.limit == "rps"
    assert isinstance(caught.value.retry_after, int) and caught.value.retry_after >= 1
    # Buckets are per key.
    limiter.acquire("t2", 5, None).release()
    # The bucket refills at the rate: one token after 1/5 s.
    time.sleep(0.25)
    limiter.acquire("t1", 5, None).release()


def test_slow_rate_gives_a_longer_retry_after() -> None:
    limiter = RateLimiter()
    limiter.acquire("t", 0.2, None).release()  # burst of 1
    with pytest.raises(RateLimited) as caught:
        limiter.acquire("t", 0.2, None)
    # One request per 5 s: wait close to 5 s, rounded up to whole seconds.
    assert 4 <= caught.value.retry_after <= 5


def test_concurrency_limit_and_idempotent_release() -> None:
    limiter = RateLimiter()
    first = limiter.acquire("t", None, 2)
    second = limiter.acquire("t", None, 2)
    with pytest.raises(RateLimited) as caught:
        limiter.acquire("t", None, 2)
    assert caught.value.limit == "concurrency" and caught.value.retry_after >= 1
    # Releasing one lease twice frees one slot, not two.
    first.release()
    first.release()
    third = limiter.acquire("t", None, 2)
    with pytest.raises(RateLimited):
        limiter.acquire("t", None, 2)
    second.release()
    third.release()
    third.release()
    leases = [limiter.acquire("t", None, 2) for _ in range(2)]
    with pytest.raises(RateLimited):
        limiter.acquire("t", None, 2)
    for lease in leases:
        lease.release()


def test_refused_requests_take_no_slot_and_no_token() -> None:
    limiter = RateLimiter()
    held = limiter.acquire("t", 100, 1)
    for _ in range(20):
        with pytest.raises(RateLimited):
            limiter.acquire("t", 100, 1)
    held.release()
    # The 20 refusals spent nothing: the slot is free and the bucket is nearly full.
    leases = []
    for _ in range(50):
        lease = limiter.acquire("t", 100, 1)
        lease.release()
        leases.append(lease)


def test_defaults_apply_when_a_token_sets_none() -> None:
    unlimited = RateLimiter()
    for _ in range(1000):
        unlimited.acquire("t", None, None)  # never released: no limit, nothing counted
    limited = RateLimiter(default_rps=0, default_concurrent=1)
    held = limited.acquire("t", None, None)
    with pytest.raises(RateLimited):
        limited.acquire("t", None, None)
    held.release()
    # A token's own limit wins over the default.
    a = limited.acquire("u", None, 3)
    b = limited.acquire("u", None, 3)
    a.release()
    b.release()
