"""Per-token rate limits: requests per second (token bucket) and concurrent requests.

Limits live in each worker's memory: with N workers a token gets at most N times its
rate overall, which is the usual trade for never touching the store on the hot path.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from slipway.errors import RateLimited


@dataclass
class _Bucket:
    tokens: float
    stamp: float
    in_flight: int = 0


class Lease:
    """One admitted request; ``release`` when it finishes (idempotent)."""

    def __init__(self, limiter: RateLimiter | None, key: str) -> None:
        self._limiter, self._key = limiter, key

    def release(self) -> None:
        if self._limiter is not None:
            self._limiter._release(self._key)
            self._limiter = None


class RateLimiter:
    def __init__(self, default_rps: float = 0.0, default_concurrent: int = 0) -> None:
        self.default_rps = default_rps
        self.default_concurrent = default_concurrent
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str, rps: float | None, concurrent: int | None) -> Lease:
        """Admit one request for ``key`` or raise RateLimited with a Retry-After."""
        rate = rps if rps is not None else self.default_rps
        limit = concurrent if concurrent is not None else self.default_concurrent
        if rate <= 0 and limit <= 0:
            return Lease(None, key)
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(key)
            burst = max(1.0, rate)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(tokens=burst, stamp=now)
            if rate > 0:
                bucket.tokens = min(burst, bucket.tokens + (now - bucket.stamp) * rate)
                bucket.stamp = now
                if bucket.tokens < 1.0:
                    wait = (1.0 - bucket.tokens) / rate
                    raise RateLimited(
                        f"rate limit of {rate:g} requests/s exceeded",
                        retry_after=max(1, math.ceil(wait)),
                        limit="rps",
                    )
            if limit > 0 and bucket.in_flight >= limit:
                raise RateLimited(
                    f"limit of {limit} concurrent requests reached",
                    retry_after=1,
                    limit="concurrency",
                )
            if rate > 0:
                bucket.tokens -= 1.0
            bucket.in_flight += 1
        return Lease(self, key)

    def _release(self, key: str) -> None:
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is not None and bucket.in_flight > 0:
                bucket.in_flight -= 1
