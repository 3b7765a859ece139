"""The pool of loaded versions this process serves: one :class:`Route` per endpoint.

Switching an endpoint is load-then-swap: every version of its new traffic plan is
loaded (hash re-checked) and only then does the new route replace the old one in a
single dict assignment. Requests already running hold a reference to the old
:class:`LoadedVersion` and finish on it; it is freed when the last of them returns (the
drain). A primary that fails to load never replaces anything.

Loaded models are shared by version: promoting a canary or rolling back to the previous
primary (kept loaded for that) swaps routes without loading anything, so it takes effect
at once even when the artifact store is down or the artifact gone.
"""

from __future__ import annotations

import atexit
import gc
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from operator import itemgetter
from typing import Any

import numpy as np

from slipway.artifacts.flavors import Predictor, get_flavor
from slipway.artifacts.store import ArtifactStore
from slipway.contracts.schema import Contract
from slipway.contracts.signature import Signature
from slipway.errors import ModelLoadFailed, NotFound, SlipwayError, Unavailable
from slipway.registry.versions import Version
from slipway.serving.calls import CallPace
from slipway.serving.limits import EndpointLimits
from slipway.serving.routing import Route

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
    # primary | canary | shadow | fallback: the part of the traffic plan it answers for.
    arm: str = "primary"
    # How long its model calls take: decides whether a call may run inline.
    pace: CallPace = field(default_factory=CallPace, compare=False, repr=False)

    def matrix(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """The model's input for rows the contract passed (and cleaned)."""
        values = self.row_values
        if values is None:
            return self.signature.matrix(rows, allow_null=True)
        # The values are already checked and typed: no second pass per value.
        return np.array(list(map(values, rows)), dtype=np.float64)

    @cached_property
    def row_values(self) -> Callable[[dict[str, Any]], tuple[Any, ...]] | None:
        """A row's values in the model's input order (one C call per row), when the
        rows can go straight into a float matrix (:attr:`numeric_inputs`)."""
        names = self.numeric_inputs
        if names is None:
            return None
        if len(names) == 1:  # itemgetter of one name answers the value, not a tuple
            return lambda row: (row[names[0]],)
        return itemgetter(*names)

    @cached_property
    def numeric_inputs(self) -> tuple[str, ...] | None:
        """The signature's fields, in order, when rows the contract passed can go straight
        into a float matrix: the contract has exactly the signature's fields and types
        each as the signature would accept it (a number, an int, a bool; null where the
        contract allows it becomes NaN). None: build it with ``Signature.matrix``."""
        fits = {"float": ("float", "int"), "int": ("int",), "bool": ("bool",)}
        rules = {rule.name: rule.type for rule in self.contract.inputs}
        fields = self.signature.inputs
        if len(rules) != len(fields) or not all(
            rules.get(f.name) in fits.get(f.type, ()) for f in fields
        ):
            return None
        return tuple(f.name for f in fields)


@dataclass(frozen=True)
class Plan:
    """An endpoint's traffic plan as stored, with its versions."""

    primary: Version
    canary: Version | None = None
    weight: float = 0.0
    routing: str = "random"
    shadows: tuple[Version, ...] = ()
    stopped: bool = False
    stop_reason: str = ""
    fallback: Version | None = None
    # The primary before this one, kept loaded so a rollback loads nothing.
    previous: Version | None = None
    # The endpoint's overrides of the server's serving limits.
    limits: EndpointLimits = EndpointLimits()


def freeze_long_lived() -> None:
    """Move every object alive now out of the cyclic garbage collector's sight.

    A full collection walks every tracked object. A server holds millions: the web
    framework, scikit-learn, SciPy and pandas, the loaded models. On the benchmark
    machine each full collection took 150-225 ms, about once every few seconds under
    load, and every request in flight waited behind it: the ~200 ms p99 at concurrency
    64. What is alive after start-up or a model load stays alive, so frozen it costs the
    collector nothing. Reference counting still frees frozen objects; only cycles among
    them would outlive their last use (a model is dropped on undeploy, and its cycles,
    if it has any, stay until the process ends).
    """
    gc.freeze()
    global _unfreeze_at_exit
    if _unfreeze_at_exit:
        # At exit, the final collection must see them again, or native extensions
        # (datasketches) report their objects as leaked.
        atexit.register(gc.unfreeze)
        _unfreeze_at_exit = False


_unfreeze_at_exit = True


class PredictorPool:
    def __init__(self, artifacts: ArtifactStore, trusted_modules: tuple[str, ...] = ()) -> None:
        self.artifacts = artifacts
        self.trusted_modules = trusted_modules
        self._routes: dict[str, Route] = {}
        # Loaded models by version id, shared by every route (and arm) that uses them.
        self._models: dict[str, tuple[Signature, Predictor]] = {}
        # Endpoints whose deployed generation could not be loaded here, with the reason.
        self.broken: dict[str, tuple[int, str]] = {}
        self._load_lock = threading.Lock()

    def _model(self, version: Version) -> tuple[Signature, Predictor]:
        cached = self._models.get(version.id)
        if cached is None:
            if version.status != "ready":
                raise ModelLoadFailed(
                    f"version {version.number} of {version.model!r} is {version.status}, not ready"
                )
            data = self.artifacts.read_verified(version.artifact_sha256, version.artifact_size)
            spec = version.load_spec(self.trusted_modules)
            predictor = get_flavor(version.flavor).load(data, spec)
            signature = Signature.from_dict(version.signature)
            _warm_up(version, signature, predictor)
            cached = self._models[version.id] = (signature, predictor)
            # A model, and the library its flavor imported, live as long as the version:
            # out of the cyclic collector's sight (see freeze_long_lived).
            freeze_long_lived()
        return cached

    def load(
        self,
        endpoint: str,
        version: Version,
        generation: int,
        contract_mode: str = "reject",
        arm: str = "primary",
    ) -> LoadedVersion:
        """Load ``version`` (hash re-checked; once per version); raises, never
        half-installs."""
        signature, predictor = self._model(version)
        return LoadedVersion(
            endpoint,
            generation,
            version,
            signature,
            predictor,
            version.data_contract,
            contract_mode,
            arm,
        )

    def build(self, endpoint: str, plan: Plan, generation: int, contract_mode: str) -> Route:
        """Load every version of ``plan``. The primary must load; a canary, shadow or
        fallback that cannot is left out (logged) so the primary keeps serving."""

        def optional(version: Version | None, arm: str) -> LoadedVersion | None:
            if version is None:
                return None
            try:
                return self.load(endpoint, version, generation, contract_mode, arm)
            except SlipwayError as exc:
                log.error(
                    "endpoint %s: %s version %s of %s failed to load and is left out: %s",
                    endpoint,
                    arm,
                    version.number,
                    version.model,
                    exc.message,
                )
                return None

        primary = self.load(endpoint, plan.primary, generation, contract_mode)
        shadows = tuple(s for v in plan.shadows if (s := optional(v, "shadow")) is not None)
        route = Route(
            endpoint,
            generation,
            primary,
            canary=optional(plan.canary, "canary"),
            weight=plan.weight,
            routing=plan.routing,
            shadows=shadows,
            stopped=plan.stopped,
            stop_reason=plan.stop_reason,
            fallback=optional(plan.fallback, "fallback"),
            limits=plan.limits,
        )
        if plan.previous is not None:
            optional(plan.previous, "previous")  # warm for a rollback; not routed
        return route

    def install(self, route: Route) -> None:
        with self._load_lock:
            current = self._routes.get(route.endpoint)
            if current is not None and current.generation > route.generation:
                return  # a newer deployment won the race
            self._routes[route.endpoint] = route
            self.broken.pop(route.endpoint, None)

    def ensure(self, endpoint: str, plan: Plan, generation: int, contract_mode: str) -> None:
        """Serve ``plan`` on ``endpoint`` unless already at this generation.

        A failure is logged and recorded in :attr:`broken`; the current route (if any)
        keeps serving.
        """
        current = self._routes.get(endpoint)
        if current is not None and current.generation >= generation:
            return
        if self.broken.get(endpoint, (0, ""))[0] == generation:
            return  # already failed at this generation; wait for a new deployment
        try:
            self.install(self.build(endpoint, plan, generation, contract_mode))
        except SlipwayError as exc:
            self.broken[endpoint] = (generation, exc.message)
            log.error(
                "endpoint %s: version %s of %s failed to load: %s",
                endpoint,
                plan.primary.number,
                plan.primary.model,
                exc.message,
            )

    def evict(self, keep: set[str]) -> None:
        """Free loaded models no route uses and ``keep`` (version ids) does not name."""
        with self._load_lock:
            used = {v.version.id for r in self._routes.values() for v in r.versions()}
            for version_id in set(self._models) - used - keep:
                del self._models[version_id]

    def route(self, endpoint: str) -> Route:
        route = self._routes.get(endpoint)
        if route is None:
            if endpoint in self.broken:
                raise Unavailable(f"endpoint {endpoint!r} has no loadable version")
            raise NotFound(f"endpoint {endpoint!r} not found")
        return route

    def get(self, endpoint: str) -> LoadedVersion:
        """The endpoint's primary (what its metadata describes)."""
        return self.route(endpoint).primary

    def generation(self, endpoint: str) -> int:
        route = self._routes.get(endpoint)
        return route.generation if route is not None else 0

    def names(self) -> list[str]:
        return sorted(self._routes)

    def all_ready(self, expected: set[str]) -> bool:
        return expected <= set(self._routes)


def _warm_up(version: Version, signature: Signature, predictor: Predictor) -> None:
    """Answer the version's example rows once before it takes traffic: a model's first
    calls are slow (lazy imports, allocations), and a canary's first callers — and its
    latency analysis — should not pay for that."""
    if not version.example_rows:
        return
    try:
        predictor.predict(signature.matrix(version.example_rows, allow_null=True))
    except Exception as exc:  # noqa: BLE001 - the smoke test passed; serving will tell
        log.warning(
            "version %s of %s failed its warm-up call: %s", version.number, version.model, exc
        )
