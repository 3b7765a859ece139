"""API tokens: ``slw_`` + 32 random base62 characters (~190 bits) + a 6-character checksum.

The checksum (CRC-32 of the body, base62) lets a mistyped or truncated token be refused
without a database lookup, and lets secret scanners recognise leaked ones. A token is
shown once; only its SHA-256 is stored. Presented tokens are looked up by hash in an
in-memory cache refreshed from the store every second (so a revocation reaches every
worker within a second), and compared with ``hmac.compare_digest``.
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

from sqlalchemy import Engine, select

from slipway.ids import new_id, utcnow
from slipway.store.engine import transaction
from slipway.store.tables import tokens

PREFIX = "slw_"
_ALPHABET = string.digits + string.ascii_letters
_BODY_LEN = 32
_CHECK_LEN = 6
TOKEN_LEN = len(PREFIX) + _BODY_LEN + _CHECK_LEN


def _base62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(_ALPHABET[r])
    return "".join(reversed(out))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECK_LEN)


def token_looks_valid(token: str) -> bool:
    """Shape and checksum only; no lookup."""
    if len(token) != TOKEN_LEN or not token.startswith(PREFIX):
        return False
    body, check = token[len(PREFIX) : -_CHECK_LEN], token[-_CHECK_LEN:]
    if any(c not in _ALPHABET for c in body):
        return False
    return hmac.compare_digest(_checksum(body), check)


def new_token_string() -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_BODY_LEN))
    return PREFIX + body + _checksum(body)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    id: str
    principal: str
    role: str
    sha256: str


def issue_token(engine: Engine, *, principal: str, role: str) -> tuple[str, TokenInfo]:
    """Create a token; returns the secret (to show once) and what is stored about it."""
    secret = new_token_string()
    digest = hash_token(secret)
    info = TokenInfo(id=new_id(), principal=principal, role=role, sha256=digest)
    with transaction(engine) as conn:
        conn.execute(
            tokens.insert().values(
                id=info.id,
                principal=principal,
                role=role,
                token_sha256=digest,
                created_at=utcnow(),
                revoked_at=None,
            )
        )
    return secret, info


def has_tokens(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(tokens.c.id).limit(1)).first() is not None


class TokenService:
    """Resolves presented tokens to who holds them, from a cache refreshed every second."""

    def __init__(self, engine: Engine, refresh_s: float = 1.0) -> None:
        self.engine = engine
        self.refresh_s = refresh_s
        self._cache: dict[str, TokenInfo] = {}
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(tokens.c.id, tokens.c.principal, tokens.c.role, tokens.c.token_sha256).where(
                    tokens.c.revoked_at.is_(None)
                )
            ).all()
        self._cache = {
            r.token_sha256: TokenInfo(r.id, r.principal, r.role, r.token_sha256) for r in rows
        }
        self._loaded_at = time.monotonic()

    def resolve(self, token: str) -> TokenInfo | None:
        if not token_looks_valid(token):
            return None
        if time.monotonic() - self._loaded_at > self.refresh_s:
            with self._lock:
                if time.monotonic() - self._loaded_at > self.refresh_s:
                    self._refresh()
        digest = hash_token(token)
        info = self._cache.get(digest)
        if info is None:
            return None
        # The lookup is keyed by a hash the caller cannot steer; the final decision is a
        # constant-time comparison, never a short-circuiting ==.
        return info if hmac.compare_digest(info.sha256, digest) else None
