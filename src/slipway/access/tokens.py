"""API tokens: ``slw_`` + 32 random base62 characters (~190 bits) + a 6-character checksum.

The checksum (CRC-32 of the body, base62) lets a mistyped or truncated token be refused
without a database lookup, and lets secret scanners recognise leaked ones. A token is
shown once; only its SHA-256 is stored. Presented tokens are resolved from an in-memory
snapshot of live tokens, their principals and grants, rebuilt from the store at most
every ``refresh_s`` (1 s): a revocation, an expiry or a disabled principal takes effect
on every worker within a second. The final comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import threading
import time
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, Engine, select

from slipway.access.authz import Grant, Permission, Principal
from slipway.audit import Actor, append
from slipway.errors import Conflict, NotFound, Unavailable, ValidationFailed
from slipway.ids import new_id, utcnow
from slipway.store.engine import transaction
from slipway.store.tables import grants, principals, tokens

PREFIX = "slw_"
_ALPHABET = string.digits + string.ascii_letters
_BODY_LEN = 32
_CHECK_LEN = 6
TOKEN_LEN = len(PREFIX) + _BODY_LEN + _CHECK_LEN
_VALID_SCOPES = frozenset(p.value for p in Permission)


def _base62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(_ALPHABET[r])
    return "".join(reversed(out))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECK_LEN)


def _has_token_shape(token: str) -> bool:
    return len(token) == TOKEN_LEN and token.startswith(PREFIX)


def token_looks_valid(token: str) -> bool:
    """Shape and checksum only; no lookup."""
    if not _has_token_shape(token):
        return False
    body, check = token[len(PREFIX) : -_CHECK_LEN], token[-_CHECK_LEN:]
    # The alphabet is exactly the ASCII letters and digits.
    if not (body.isascii() and body.isalnum()):
        return False
    return hmac.compare_digest(_checksum(body), check)


def new_token_string() -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_BODY_LEN))
    return PREFIX + body + _checksum(body)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    """What the server knows about a live token (never the token itself)."""

    id: str
    principal: str
    sha256: str
    scopes: frozenset[str]
    grants: tuple[Grant, ...]
    rate_limit_rps: float | None
    max_concurrent: int | None
    expires_at: datetime | None = None

    @cached_property
    def _principal(self) -> Principal:
        return Principal(self.principal, self.id, self.grants, self.scopes)

    def as_principal(self) -> Principal:
        """The caller this token speaks for (made once per token snapshot, not per request)."""
        return self._principal


def token_view(row: Any, principal_name: str) -> dict[str, Any]:
    """A token as the API shows it: metadata only."""
    return {
        "id": row.id,
        "principal": principal_name,
        "name": row.name,
        "scopes": list(row.scopes or []),
        "expires_at": row.expires_at.isoformat() if row.expires_at else None,
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
        "last_used_at": row.last_used_at.isoformat() if row.last_used_at else None,
        "rotated_from": row.rotated_from,
        "rate_limit_rps": row.rate_limit_rps,
        "max_concurrent": row.max_concurrent,
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
    }


def check_scopes(scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - _VALID_SCOPES)
    if unknown:
        raise ValidationFailed.field(
            "scopes",
            f"unknown permission(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(_VALID_SCOPES))}",
        )
    return sorted(set(scopes))


def insert_token(
    conn: Connection,
    *,
    principal_id: str,
    principal_name: str,
    actor: Actor,
    name: str = "",
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
    rate_limit_rps: float | None = None,
    max_concurrent: int | None = None,
    rotated_from: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """Create a token in ``conn``'s transaction, audited; returns (secret, metadata)."""
    secret = new_token_string()
    row: dict[str, Any] = {
        "id": new_id(),
        "principal_id": principal_id,
        "name": name,
        "token_sha256": hash_token(secret),
        "scopes": check_scopes(scopes or []),
        "expires_at": expires_at,
        "revoked_at": None,
        "last_used_at": None,
        "rotated_from": rotated_from,
        "rate_limit_rps": rate_limit_rps,
        "max_concurrent": max_concurrent,
        "created_by": actor.name,
        "created_at": utcnow(),
    }
    conn.execute(tokens.insert().values(**row))
    view = token_view(SimpleNamespace(**row), principal_name)
    append(conn, actor, "token.create", target_kind="token", target=row["id"], after=view)
    return secret, view


class TokenService:
    def __init__(self, engine: Engine, refresh_s: float = 1.0) -> None:
        self.engine = engine
        self.refresh_s = refresh_s
        self._cache: dict[str, TokenInfo] = {}
        self._loaded_at = -1e9
        # Bumped by invalidate(): a refresh that began before a change is not fresh.
        self._generation = 0
        self._lock = threading.Lock()
        self._used: set[str] = set()
        # When the last refresh failed (the store out of reach): resolving refuses at
        # once until refresh_s has passed, instead of every request waiting on a
        # connect attempt on the event loop.
        self._failed_at = -1e9

    # -- resolving presented tokens -------------------------------------------------------
    def resolve(self, token: str) -> TokenInfo | None:
        # Shape only: the checksum needs no checking here, since every stored token has a
        # valid one, so a token with a wrong one cannot match a stored hash below.
        if not _has_token_shape(token):
            return None
        if time.monotonic() - self._loaded_at > self.refresh_s:
            with self._lock:
                if time.monotonic() - self._loaded_at > self.refresh_s:
                    if time.monotonic() - self._failed_at < self.refresh_s:
                        raise Unavailable("the token store cannot be read; retry shortly")
                    try:
                        self._refresh()
                    except Exception:
                        self._failed_at = time.monotonic()
                        raise
        digest = hash_token(token)
        info = self._cache.get(digest)
        # The lookup is keyed by a hash the caller cannot steer; the final decision is a
        # constant-time comparison, never a short-circuiting ==.
        if info is None or not hmac.compare_digest(info.sha256, digest):
            return None
        if info.expires_at is not None and info.expires_at <= utcnow():
            return None  # expiry is exact; only revocations wait for the next refresh
        self._used.add(info.id)
        return info

    def invalidate(self) -> None:
        """Drop the snapshot (after a change made in this process)."""
        self._generation += 1
        self._loaded_at = -1e9

    def _refresh(self) -> None:
        # The snapshot is as old as its read, not its publication: age it from the start,
        # and do not mark it fresh if a change invalidated it while it was being read.
        started, generation = time.monotonic(), self._generation
        now = utcnow()
        with self.engine.connect() as conn:
            live = conn.execute(
                select(tokens, principals.c.name.label("principal_name"))
                .join(principals, principals.c.id == tokens.c.principal_id)
                .where(tokens.c.revoked_at.is_(None), principals.c.disabled.is_(False))
            ).all()
            grant_rows = conn.execute(
                select(
                    grants.c.principal_id, grants.c.role, grants.c.scope_kind, grants.c.scope_name
                ).where(grants.c.revoked_at.is_(None))
            ).all()
        by_principal: dict[str, list[Grant]] = {}
        for g in grant_rows:
            by_principal.setdefault(g.principal_id, []).append(
                Grant(g.role, g.scope_kind, g.scope_name)
            )
        cache = {}
        for r in live:
            if r.expires_at is not None and r.expires_at <= now:
                continue
            cache[r.token_sha256] = TokenInfo(
                r.id,
                r.principal_name,
                r.token_sha256,
                frozenset(r.scopes or []),
                tuple(by_principal.get(r.principal_id, ())),
                r.rate_limit_rps,
                r.max_concurrent,
                r.expires_at,
            )
        self._cache = cache
        if generation == self._generation:
            self._loaded_at = started

    def flush_last_used(self) -> int:
        """Write last-used times, at most one write per token per flush (not per request)."""
        used, self._used = self._used, set()
        if not used:
            return 0
        with transaction(self.engine) as conn:
            conn.execute(
                tokens.update().where(tokens.c.id.in_(sorted(used))).values(last_used_at=utcnow())
            )
        return len(used)

    # -- managing tokens ------------------------------------------------------------------
    def issue(
        self,
        principal_name: str,
        *,
        actor: Actor,
        name: str = "",
        scopes: list[str] | None = None,
        expires_in_s: float | None = None,
        rate_limit_rps: float | None = None,
        max_concurrent: int | None = None,
    ) -> tuple[str, dict[str, Any]]:
        if expires_in_s is not None and expires_in_s <= 0:
            raise ValidationFailed.field("expires_in_s", "must be positive")
        expires_at = utcnow() + timedelta(seconds=expires_in_s) if expires_in_s else None
        with transaction(self.engine) as conn:
            principal = _principal_row(conn, principal_name)
            if principal.disabled:
                raise Conflict(f"principal {principal_name!r} is disabled")
            result = insert_token(
                conn,
                principal_id=principal.id,
                principal_name=principal_name,
                actor=actor,
                name=name,
                scopes=scopes,
                expires_at=expires_at,
                rate_limit_rps=rate_limit_rps,
                max_concurrent=max_concurrent,
            )
        self.invalidate()
        return result

    def list(self, principal_name: str | None = None) -> list[dict[str, Any]]:
        query = select(tokens, principals.c.name.label("principal_name")).join(
            principals, principals.c.id == tokens.c.principal_id
        )
        if principal_name:
            query = query.where(principals.c.name == principal_name)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(tokens.c.created_at)).all()
        return [token_view(r, r.principal_name) for r in rows]

    def revoke(self, token_id: str, *, actor: Actor, reason: str = "") -> dict[str, Any]:
        with transaction(self.engine) as conn:
            row, name = _token_row(conn, token_id)
            before = token_view(row, name)
            if row.revoked_at is None:
                conn.execute(
                    tokens.update().where(tokens.c.id == token_id).values(revoked_at=utcnow())
                )
            row, name = _token_row(conn, token_id)
            after = token_view(row, name)
            append(
                conn,
                actor,
                "token.revoke",
                target_kind="token",
                target=token_id,
                before=before,
                after=after,
                reason=reason,
            )
        self.invalidate()
        return after

    def rotate(
        self, token_id: str, *, actor: Actor, overlap_s: float = 3600.0
    ) -> tuple[str, dict[str, Any]]:
        """A new token with the same principal, scopes and limits; the old one keeps
        working for ``overlap_s`` seconds so callers can switch without downtime."""
        if overlap_s < 0:
            raise ValidationFailed.field("overlap_s", "must be zero or positive")
        with transaction(self.engine) as conn:
            old, name = _token_row(conn, token_id)
            if old.revoked_at is not None:
                raise Conflict(f"token {token_id} is revoked; issue a new one")
            ends = utcnow() + timedelta(seconds=overlap_s)
            if old.expires_at is None or old.expires_at > ends:
                conn.execute(tokens.update().where(tokens.c.id == token_id).values(expires_at=ends))
            secret, view = insert_token(
                conn,
                principal_id=old.principal_id,
                principal_name=name,
                actor=actor,
                name=old.name,
                scopes=list(old.scopes or []),
                expires_at=None,
                rate_limit_rps=old.rate_limit_rps,
                max_concurrent=old.max_concurrent,
                rotated_from=token_id,
            )
            append(
                conn,
                actor,
                "token.rotate",
                target_kind="token",
                target=token_id,
                after={"replaced_by": view["id"], "old_expires_at": ends.isoformat()},
            )
        self.invalidate()
        return secret, view


def _principal_row(conn: Connection, name: str) -> Any:
    row = conn.execute(select(principals).where(principals.c.name == name)).first()
    if row is None:
        raise NotFound(f"principal {name!r} not found")
    return row


def _token_row(conn: Connection, token_id: str) -> tuple[Any, str]:
    row = conn.execute(
        select(tokens, principals.c.name.label("principal_name"))
        .join(principals, principals.c.id == tokens.c.principal_id)
        .where(tokens.c.id == token_id)
    ).first()
    if row is None:
        raise NotFound(f"token {token_id!r} not found")
    return row, row.principal_name


def has_tokens(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(tokens.c.id).limit(1)).first() is not None
