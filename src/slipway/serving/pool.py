"""The pool of loaded versions this process serves, one per endpoint.

Switching an endpoint is load-then-swap: the new version is loaded (hash re-checked) and
only then replaces the old one in a single dict assignment. Requests already running hold
a reference to the old :class:`LoadedVersion` and finish on it; it is freed when the last
of them returns (the drain). A version that fails to load never replaces anything.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from slipway.artifacts.flavors import Predictor, get_flavor
from slipway.artifacts.store import ArtifactStore
from slipway.contracts.schema import Contract
from slipway.contracts.signature import Signature
from slipway.errors import ModelLoadFailed, NotFound, SlipwayError, Unavailable
from slipway.registry.versions import Version

log = logging.getLogger("slipway.serving")


@dataclass(frozen=True)
class LoadedVersion:
    endpoint: str
    generation: int
    version: Version
    signature: Signature
    predictor: Predictor
    contract: Contract
    contract_mode: str = "reject"


class PredictorPool:
    def __init__(self, artifacts: ArtifactStore, trusted_modules: tuple[str, ...] = ()) -> None:
        self.artifacts = artifacts
        self.trusted_modules = trusted_modules
        self._serving: dict[str, LoadedVersion] = {}
        # Endpoints whose deployed generation could not be loaded here, with the reason.
        self.broken: dict[str, tuple[int, str]] = {}
        self._load_lock = threading.Lock()

    def load(
        self, endpoint: str, version: Version, generation: int, contract_mode: str = "reject"
    ) -> LoadedVersion:
        """Load ``version`` (hash re-checked); raises, never half-installs."""
        if version.status != "ready":
            raise ModelLoadFailed(
                f"version {version.number} of {version.model!r} is {version.status}, not ready"
            )
        data = self.artifacts.read_verified(version.artifact_sha256, version.artifact_size)
        predictor = get_flavor(version.flavor).load(data, version.load_spec(self.trusted_modules))
        return LoadedVersion(
            endpoint,
            generation,
            version,
            Signature.from_dict(version.signature),
            predictor,
            version.data_contract,
            contract_mode,
        )

    def install(self, loaded: LoadedVersion) -> None:
        with self._load_lock:
            current = self._serving.get(loaded.endpoint)
            if current is not None and current.generation > loaded.generation:
                return  # a newer deployment won the race
            self._serving[loaded.endpoint] = loaded
            self.broken.pop(loaded.endpoint, None)

    def ensure(
        self, endpoint: str, version: Version, generation: int, contract_mode: str = "reject"
    ) -> None:
        """Serve ``version`` on ``endpoint`` unless already at this generation.

        A failure is logged and recorded in :attr:`broken`; the current version (if any)
        keeps serving.
        """
        current = self._serving.get(endpoint)
        if current is not None and current.generation >= generation:
            return
        if self.broken.get(endpoint, (0, ""))[0] == generation:
            return  # already failed at this generation; wait for a new deployment
        try:
            self.install(self.load(endpoint, version, generation, contract_mode))
        except SlipwayError as exc:
            self.broken[endpoint] = (generation, exc.message)
            log.error(
                "endpoint %s: version %s of %s failed to load: %s",
                endpoint,
                version.number,
                version.model,
                exc.message,
            )

    def get(self, endpoint: str) -> LoadedVersion:
        loaded = self._serving.get(endpoint)
        if loaded is None:
            if endpoint in self.broken:
                raise Unavailable(f"endpoint {endpoint!r} has no loadable version")
            raise NotFound(f"endpoint {endpoint!r} not found")
        return loaded

    def names(self) -> list[str]:
        return sorted(self._serving)

    def all_ready(self, expected: set[str]) -> bool:
        return expected <= set(self._serving)
