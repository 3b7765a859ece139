"""Tokens, principals and grants against the store, on SQLite and PostgreSQL.

Issue, resolve, expire, revoke, rotate with overlap, disable, revoke a grant; only the
SHA-256 is stored; last-used times are flushed; every change writes its audit event.
"""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError

from slipway.access.authz import Permission
from slipway.access.principals import PrincipalService, bootstrap_admin
from slipway.access.tokens import TokenService, has_tokens
from slipway.audit import Actor
from slipway.errors import Conflict, NotFound, Unavailable, ValidationFailed
from slipway.ids import utcnow
from slipway.store import transaction
from slipway.store.tables import audit_events, tokens

ADMIN = Actor("root", "tok-root", "req-1")


@pytest.fixture
def svc(engine: Engine) -> TokenService:
    return TokenService(engine)


@pytest.fixture
def people(engine: Engine) -> PrincipalService:
    ps = PrincipalService(engine)
    ps.create("alice", kind="user", actor=ADMIN)
    ps.grant("alice", "developer", actor=ADMIN)
    return ps


def events(engine: Engine, action: str | None = None) -> list[Any]:
    query = select(audit_events).order_by(audit_events.c.seq)
    if action:
        query = query.where(audit_events.c.action == action)
    with engine.connect() as conn:
        return list(conn.execute(query).all())


def resolve_now(svc: TokenService, token: str) -> Any:
    """Resolve against a fresh snapshot (as any worker would within refresh_s)."""
    svc.invalidate()
    return svc.resolve(token)


def set_expires(engine: Engine, token_id: str, when: Any) -> None:
    with transaction(engine) as conn:
        conn.execute(tokens.update().where(tokens.c.id == token_id).values(expires_at=when))


def test_issue_then_resolve(svc: TokenService, people: PrincipalService) -> None:
    secret, view = svc.issue(
        "alice", actor=ADMIN, name="ci", scopes=["model:read", "model:write"], rate_limit_rps=5
    )
    assert "token" not in view and secret not in str(view)
    info = svc.resolve(secret)
    assert info is not None
    assert info.id == view["id"] and info.principal == "alice"
    assert info.scopes == {"model:read", "model:write"}
    assert info.rate_limit_rps == 5 and info.max_concurrent is None
    principal = info.as_principal()
    assert principal.token_id == view["id"]
    assert principal.can(Permission.MODEL_WRITE, "iris")
    assert not principal.can(Permission.VERSION_REGISTER, "iris")  # narrowed by scopes
    # Lookalikes do not resolve: another valid-looking token, a typo, an empty string.
    other = svc.resolve(secret[:-7] + ("A" if secret[-7] != "A" else "B") + secret[-6:])
    assert other is None
    assert svc.resolve("") is None
    assert svc.resolve("slw_" + "a" * 38) is None
    assert [t["id"] for t in svc.list("alice")] == [view["id"]]
    assert svc.list("nobody") == []


def test_issue_refuses_bad_input(svc: TokenService, people: PrincipalService) -> None:
    with pytest.raises(NotFound):
        svc.issue("nobody", actor=ADMIN)
    with pytest.raises(ValidationFailed, match="scopes"):
        svc.issue("alice", actor=ADMIN, scopes=["model:read", "root"])
    with pytest.raises(ValidationFailed, match="expires_in_s"):
        svc.issue("alice", actor=ADMIN, expires_in_s=0)
    people.set_disabled("alice", True, actor=ADMIN)
    with pytest.raises(Conflict, match="disabled"):
        svc.issue("alice", actor=ADMIN)
    # None of the refusals left a token or a token.create event behind.
    assert svc.list() == []
    assert events(svc.engine, "token.create") == []


def test_only_sha256_is_stored(svc: TokenService, people: PrincipalService) -> None:
    secret, view = svc.issue("alice", actor=ADMIN)
    with svc.engine.connect() as conn:
        row = conn.execute(select(tokens).where(tokens.c.id == view["id"])).one()
        audit_rows = conn.execute(select(audit_events)).all()
    assert row.token_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    body = secret[4:]
    for value in (*row, *(v for r in audit_rows for v in r)):
        assert secret not in str(value) and body not in str(value)


def test_expiry(svc: TokenService, people: PrincipalService) -> None:
    short, short_view = svc.issue("alice", actor=ADMIN, expires_in_s=0.3)
    edited, edited_view = svc.issue("alice", actor=ADMIN, expires_in_s=3600)
    assert resolve_now(svc, short) is not None
    assert resolve_now(svc, edited) is not None
    assert short_view["expires_at"] is not None
    set_expires(svc.engine, edited_view["id"], utcnow() - timedelta(seconds=1))
    time.sleep(0.35)
    assert resolve_now(svc, short) is None
    assert resolve_now(svc, edited) is None


def test_revoke(svc: TokenService, people: PrincipalService) -> None:
    secret, view = svc.issue("alice", actor=ADMIN)
    keep, _ = svc.issue("alice", actor=ADMIN)
    assert svc.resolve(secret) is not None
    after = svc.revoke(view["id"], actor=ADMIN, reason="leaked in a ticket")
    assert after["revoked_at"] is not None
    assert svc.resolve(secret) is None  # same process: immediately
    assert svc.resolve(keep) is not None
    # Revoking twice keeps the first time; unknown ids are 404.
    again = svc.revoke(view["id"], actor=ADMIN)
    assert again["revoked_at"] == after["revoked_at"]
    with pytest.raises(NotFound):
        svc.revoke("no-such-token", actor=ADMIN)
    [event, _] = events(svc.engine, "token.revoke")
    assert event.before["revoked_at"] is None and event.after["revoked_at"] is not None
    assert event.reason == "leaked in a ticket" and event.target == view["id"]


def test_revocation_reaches_another_worker_within_refresh(
    engine: Engine, people: PrincipalService
) -> None:
    """Two TokenServices on one store stand for two workers: the one that did not revoke
    stops accepting the token once its 1 s snapshot is refreshed."""
    worker_a, worker_b = TokenService(engine), TokenService(engine, refresh_s=0.5)
    secret, view = worker_a.issue("alice", actor=ADMIN)
    assert worker_b.resolve(secret) is not None
    revoked_at = time.monotonic()
    worker_a.revoke(view["id"], actor=ADMIN)
    assert worker_a.resolve(secret) is None
    while worker_b.resolve(secret) is not None:
        assert time.monotonic() - revoked_at < 0.5 + 0.5, "still accepted after refresh_s"
        time.sleep(0.02)


def test_rotate_overlap(svc: TokenService, people: PrincipalService) -> None:
    old, old_view = svc.issue(
        "alice", actor=ADMIN, name="ci", scopes=["model:read"], max_concurrent=3
    )
    new, new_view = svc.rotate(old_view["id"], actor=ADMIN, overlap_s=3600)
    assert new != old
    assert new_view["rotated_from"] == old_view["id"]
    assert new_view["scopes"] == ["model:read"] and new_view["max_concurrent"] == 3
    assert new_view["name"] == "ci" and new_view["expires_at"] is None
    # During the overlap both work.
    assert resolve_now(svc, old) is not None
    assert resolve_now(svc, new) is not None
    # The overlap ends: the old one stops, the new one keeps working.
    set_expires(svc.engine, old_view["id"], utcnow() - timedelta(seconds=1))
    assert resolve_now(svc, old) is None
    assert resolve_now(svc, new) is not None
    [event] = events(svc.engine, "token.rotate")
    assert event.target == old_view["id"] and event.after["replaced_by"] == new_view["id"]
    assert old not in str(event.after) and new not in str(event.after)


def test_rotate_without_overlap_and_never_extends(
    svc: TokenService, people: PrincipalService
) -> None:
    old, old_view = svc.issue("alice", actor=ADMIN)
    new, _ = svc.rotate(old_view["id"], actor=ADMIN, overlap_s=0)
    assert resolve_now(svc, old) is None
    assert resolve_now(svc, new) is not None
    # A rotation never pushes an earlier expiry later.
    soon, soon_view = svc.issue("alice", actor=ADMIN, expires_in_s=60)
    svc.rotate(soon_view["id"], actor=ADMIN, overlap_s=86400)
    [row] = [t for t in svc.list() if t["id"] == soon_view["id"]]
    assert row["expires_at"] == soon_view["expires_at"]
    # Revoked tokens cannot be rotated back to life; bad overlaps are refused.
    revoked, revoked_view = svc.issue("alice", actor=ADMIN)
    svc.revoke(revoked_view["id"], actor=ADMIN)
    with pytest.raises(Conflict):
        svc.rotate(revoked_view["id"], actor=ADMIN)
    with pytest.raises(ValidationFailed):
        svc.rotate(soon_view["id"], actor=ADMIN, overlap_s=-1)
    with pytest.raises(NotFound):
        svc.rotate("nope", actor=ADMIN)


def test_disabled_principal_tokens_stop(
    svc: TokenService, people: PrincipalService, engine: Engine
) -> None:
    people.create("bob", kind="user", actor=ADMIN)
    bob, _ = svc.issue("bob", actor=ADMIN)
    alice, _ = svc.issue("alice", actor=ADMIN)
    people.set_disabled("bob", True, actor=ADMIN)
    assert resolve_now(svc, bob) is None
    assert resolve_now(svc, alice) is not None
    people.set_disabled("bob", False, actor=ADMIN)
    assert resolve_now(svc, bob) is not None
    with pytest.raises(Conflict, match="yourself"):
        people.set_disabled("root", True, actor=Actor("root"))
    [disable] = events(engine, "principal.disable")
    [enable] = events(engine, "principal.enable")
    assert disable.before["disabled"] is False and disable.after["disabled"] is True
    assert enable.before["disabled"] is True and enable.after["disabled"] is False


def test_revoked_grant_takes_its_permissions(
    svc: TokenService, people: PrincipalService, engine: Engine
) -> None:
    people.create("carol", kind="user", actor=ADMIN)
    grant = people.grant("carol", "operator", actor=ADMIN, scope_kind="endpoint", scope_name="p")
    people.grant("carol", "viewer", actor=ADMIN)
    secret, _ = svc.issue("carol", actor=ADMIN)
    principal = resolve_now(svc, secret).as_principal()
    assert principal.can(Permission.ENDPOINT_DEPLOY, "p")
    people.revoke_grant(grant["id"], actor=ADMIN)
    principal = resolve_now(svc, secret).as_principal()
    assert not principal.can(Permission.ENDPOINT_DEPLOY, "p")
    assert principal.can(Permission.ENDPOINT_READ, "p")  # the other grant stays
    [event] = events(engine, "grant.revoke")
    assert event.before["revoked_at"] is None and event.after["revoked_at"] is not None
    with pytest.raises(NotFound):
        people.revoke_grant("nope", actor=ADMIN)


def test_service_accounts_least_privilege(people: PrincipalService) -> None:
    with pytest.raises(ValidationFailed, match="owner"):
        people.create("bot", kind="service", actor=ADMIN)
    people.create("bot", kind="service", owner="ml-team", actor=ADMIN)
    for role, kind, name in [
        ("predictor", "global", None),
        ("viewer", "endpoint", "prod"),
        ("admin", "global", None),
        ("predictor", "model", "iris"),
    ]:
        with pytest.raises(ValidationFailed):
            people.grant("bot", role, actor=ADMIN, scope_kind=kind, scope_name=name)
    people.grant("bot", "predictor", actor=ADMIN, scope_kind="endpoint", scope_name="prod")
    with pytest.raises(Conflict):
        people.create("bot", kind="user", actor=ADMIN)
    with pytest.raises(ValidationFailed):
        people.create("Bad Name!", kind="user", actor=ADMIN)
    with pytest.raises(ValidationFailed):
        people.grant("alice", "root", actor=ADMIN)
    with pytest.raises(ValidationFailed):
        people.grant("alice", "viewer", actor=ADMIN, scope_kind="model")
    with pytest.raises(ValidationFailed):
        people.grant("alice", "viewer", actor=ADMIN, scope_kind="global", scope_name="x")
    [grant] = people.get("bot")["grants"]
    assert (grant["role"], grant["scope_kind"], grant["scope_name"]) == (
        "predictor",
        "endpoint",
        "prod",
    )


def test_last_used_written_by_flush(svc: TokenService, people: PrincipalService) -> None:
    used, used_view = svc.issue("alice", actor=ADMIN)
    idle, idle_view = svc.issue("alice", actor=ADMIN)
    assert svc.flush_last_used() == 0
    for _ in range(50):
        svc.resolve(used)
    svc.resolve("slw_not-a-token")
    assert {t["id"]: t["last_used_at"] for t in svc.list()} == {
        used_view["id"]: None,
        idle_view["id"]: None,
    }
    before = utcnow().replace(microsecond=0)
    assert svc.flush_last_used() == 1  # one write per token per flush, not per request
    by_id = {t["id"]: t["last_used_at"] for t in svc.list()}
    assert by_id[idle_view["id"]] is None
    assert by_id[used_view["id"]] is not None
    assert by_id[used_view["id"]] >= before.isoformat()[:19]
    assert svc.flush_last_used() == 0
    # last_used_at is not a control action: no audit event for it.
    assert [e.action for e in events(svc.engine)] == [
        "principal.create",
        "grant.create",
        "token.create",
        "token.create",
    ]


def test_every_change_writes_its_audit_event(
    svc: TokenService, people: PrincipalService, engine: Engine
) -> None:
    secret, view = svc.issue("alice", actor=ADMIN, name="laptop")
    _, new_view = svc.rotate(view["id"], actor=ADMIN, overlap_s=10)
    svc.revoke(new_view["id"], actor=ADMIN, reason="done")
    people.create("svc-a", kind="service", owner="ops", actor=ADMIN)
    grant = people.grant("svc-a", "predictor", actor=ADMIN, scope_kind="endpoint", scope_name="e")
    people.revoke_grant(grant["id"], actor=ADMIN)
    people.set_disabled("svc-a", True, actor=ADMIN)
    people.set_disabled("svc-a", False, actor=ADMIN)
    rows = events(engine)
    assert [(e.action, e.target) for e in rows] == [
        ("principal.create", "alice"),
        ("grant.create", "alice"),
        ("token.create", view["id"]),
        ("token.create", new_view["id"]),
        ("token.rotate", view["id"]),
        ("token.revoke", new_view["id"]),
        ("principal.create", "svc-a"),
        ("grant.create", "svc-a"),
        ("grant.revoke", "svc-a"),
        ("principal.disable", "svc-a"),
        ("principal.enable", "svc-a"),
    ]
    for event in rows:
        assert (event.actor, event.token_id, event.request_id) == ("root", "tok-root", "req-1")
    assert [e.seq for e in rows] == list(range(1, len(rows) + 1))
    for event in rows:
        assert secret not in str(event) and secret[4:] not in str(event)


def test_bootstrap_admin_in_one_audited_transaction(engine: Engine) -> None:
    assert not has_tokens(engine)
    secret = bootstrap_admin(engine)
    assert has_tokens(engine)
    info = TokenService(engine).resolve(secret)
    assert info is not None and info.principal == "admin"
    principal = info.as_principal()
    assert all(principal.can(p) for p in Permission)
    assert [(e.action, e.actor) for e in events(engine)] == [
        ("principal.create", "system"),
        ("grant.create", "system"),
        ("token.create", "system"),
    ]
    with pytest.raises(Conflict):
        bootstrap_admin(engine)  # a second run changes nothing
    assert len(events(engine)) == 3


def test_revoke_during_a_snapshot_refresh_is_not_lost(
    engine: Engine, people: PrincipalService
) -> None:
    """A snapshot read before a revocation must not be taken as fresh after it.

    A request refreshes the snapshot; its read sees the token still live, and before the
    snapshot is published the token is revoked in this process (which invalidates).
    The next request must not trust that stale snapshot for another refresh_s."""
    import threading

    from sqlalchemy import event

    svc = TokenService(engine, refresh_s=5.0)
    secret, view = svc.issue("alice", actor=ADMIN)
    read_done, revoked = threading.Event(), threading.Event()

    def after_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if threading.current_thread() is reader and "FROM tokens" in statement:
            read_done.set()
            revoked.wait(5)

    event.listen(engine, "after_cursor_execute", after_execute)
    try:
        reader = threading.Thread(target=resolve_now, args=(svc, secret))
        reader.start()
        assert read_done.wait(5)
        svc.revoke(view["id"], actor=ADMIN)
        revoked.set()
        reader.join(5)
    finally:
        event.remove(engine, "after_cursor_execute", after_execute)
    assert svc.resolve(secret) is None


def test_principal_changes_drop_the_token_snapshot_at_once(
    engine: Engine, svc: TokenService
) -> None:
    """The service that disables a principal or changes grants drops this worker's
    snapshot itself: no caller has to remember to, and no one-second wait."""
    people = PrincipalService(engine, svc)
    people.create("carol", kind="user", actor=ADMIN)
    grant = people.grant("carol", "viewer", actor=ADMIN)
    secret, _ = svc.issue("carol", actor=ADMIN)
    assert svc.resolve(secret) is not None  # snapshot loaded; refresh_s is 1 s
    people.set_disabled("carol", True, actor=ADMIN)
    assert svc.resolve(secret) is None
    people.set_disabled("carol", False, actor=ADMIN)
    assert svc.resolve(secret) is not None
    people.revoke_grant(grant["id"], actor=ADMIN)
    info = svc.resolve(secret)
    assert info is not None and not info.as_principal().can(Permission.MODEL_READ, "m")
    people.grant("carol", "viewer", actor=ADMIN)
    info = svc.resolve(secret)
    assert info is not None and info.as_principal().can(Permission.MODEL_READ, "m")


def test_a_store_outage_is_not_retried_on_every_request(
    engine: Engine, people: PrincipalService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the store is out of reach, one refresh attempt per refresh interval, not one
    per request (each would wait on a connect attempt on the event loop); afterwards
    tokens resolve again by themselves."""
    svc = TokenService(engine, refresh_s=0.3)
    secret, _ = svc.issue("alice", actor=ADMIN, name="ci")
    attempts: list[float] = []
    real_refresh = svc._refresh

    def down() -> None:
        attempts.append(time.monotonic())
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(svc, "_refresh", down)
    svc.invalidate()
    with pytest.raises(OperationalError):
        svc.resolve(secret)
    for _ in range(50):
        with pytest.raises(Unavailable):
            svc.resolve(secret)
    assert len(attempts) == 1
    monkeypatch.setattr(svc, "_refresh", real_refresh)
    time.sleep(0.35)
    info = svc.resolve(secret)
    assert info is not None and info.principal == "alice"
