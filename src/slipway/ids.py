"""Opaque ids: 32 hex characters, time-ordered so indexes stay append-friendly."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime


def new_id() -> str:
    """13 hex digits of microseconds since the epoch, then 19 random hex digits."""
    # os.urandom is what secrets.token_hex reads, without its layers (one per request).
    return f"{time.time_ns() // 1000:013x}{os.urandom(10).hex()[:19]}"


def utcnow() -> datetime:
    return datetime.now(UTC)
