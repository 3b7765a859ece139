"""Which loaded version answers one request: the endpoint's traffic plan, loaded.

A :class:`Route` holds the primary, an optional canary with its weight (percent), the
shadows (they answer copies, never the caller), the stop switch and the endpoint's
serving limits. Picking is on the
serving path, so it is a few attribute reads and at most one hash.

Random routing deals from a shuffled deck of 1,000 cards holding exactly ``weight x 10``
canary cards: the choice per request is random, yet every 1,000 requests hold exactly the
canary's share (plain coin flips would stray by ±3% at 10,000 requests). Sticky routing
hashes the caller's routing key with the canary's version id, so one key always meets
the same version within a rollout and a new rollout deals keys afresh.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from slipway.errors import EndpointStopped
from slipway.serving.limits import EndpointLimits

if TYPE_CHECKING:  # the pool builds routes; it imports this module
    from slipway.serving.pool import LoadedVersion

DECK_SIZE = 1000
ROUTING_MODES = ("random", "sticky")


class Deck:
    """Canary or not, drawn without replacement from a shuffled deck of DECK_SIZE."""

    def __init__(self, weight: float, rng: random.Random | None = None) -> None:
        self.canary_cards = round(weight / 100 * DECK_SIZE)
        self._rng = rng or random.Random()
        self._cards: list[bool] = []

    def draw(self) -> bool:
        if not self._cards:
            self._cards = [True] * self.canary_cards + [False] * (DECK_SIZE - self.canary_cards)
            self._rng.shuffle(self._cards)
        return self._cards.pop()


def sticky_share(key: str, salt: str) -> float:
    """Where ``key`` falls in [0, 100), stable for one salt."""
    digest = hashlib.blake2b(key.encode(), digest_size=8, key=salt.encode()[:64]).digest()
    return int.from_bytes(digest, "big") / 2**64 * 100


@dataclass
class Route:
    endpoint: str
    generation: int
    primary: LoadedVersion
    canary: LoadedVersion | None = None
    weight: float = 0.0
    routing: str = "random"
    shadows: tuple[LoadedVersion, ...] = ()
    stopped: bool = False
    stop_reason: str = ""
    fallback: LoadedVersion | None = None
    # The endpoint's own serving limits (unset ones: the server's), read at sync so the
    # serving path never asks the store.
    limits: EndpointLimits = field(default_factory=EndpointLimits)
    deck: Deck = field(init=False)

    def __post_init__(self) -> None:
        self.deck = Deck(self.weight if self.canary is not None else 0.0)

    def pick(self, key: str | None = None) -> LoadedVersion:
        """The version that answers this request; a stopped endpoint without a fallback
        raises :class:`EndpointStopped` (503)."""
        if self.stopped:
            if self.fallback is None:
                why = f": {self.stop_reason}" if self.stop_reason else ""
                raise EndpointStopped(f"endpoint {self.endpoint!r} is stopped{why}")
            return self.fallback
        canary = self.canary
        if canary is None or self.weight <= 0:
            return self.primary
        if self.routing == "sticky" and key:
            hit = sticky_share(key, canary.version.id) < self.weight
        else:
            hit = self.deck.draw()
        return canary if hit else self.primary

    def versions(self) -> list[LoadedVersion]:
        """Every version this route can run, primary first."""
        out = [self.primary]
        out += [v for v in (self.canary, self.fallback) if v is not None]
        return out + list(self.shadows)
