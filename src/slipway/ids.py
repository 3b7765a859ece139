"""Opaque ids: 32 hex characters, time-ordered so indexes stay append-friendly."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime


def new_id() -> str:
    """13 hex digits of microseconds since the epoch, then 19 random hex digits."""
    return f"{time.time_ns() // 1000:013x}{secrets.token_hex(10)[:19]}"


def utcnow() -> datetime:
    return datetime.now(UTC)
