"""Live windows: what one endpoint x version served in one time bucket, as sketches.

On the serving path :meth:`WindowRecorder.observe` only appends the request's rows to a
small buffer (folded into the sketches every ``fold_rows`` rows, vectorized), so the cost
per request is a few microseconds and memory per endpoint stays bounded whatever the
traffic. A housekeeping task calls :meth:`WindowRecorder.flush`, which writes each
closed bucket as one ``monitor_windows`` row; rows of the same bucket from several
workers are merged on read (:class:`WindowStore`). :meth:`WindowStore.rollup` merges old
minute rows into hours and old hours into days.

A bucket is read whole: a window ``[start, end)`` takes every row whose bucket starts in
it, so the edges are exact to the minute for recent data and to the hour (day) for data
already rolled up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine, delete, func, insert, select

from slipway.artifacts.flavors import ModelOutput
from slipway.ids import new_id, utcnow
from slipway.monitoring.profile import Profile, kinds_from_contract
from slipway.monitoring.sketches import ColumnSketch
from slipway.serving.pool import LoadedVersion
from slipway.store.engine import backend_name, transaction
from slipway.store.tables import monitor_windows

log = logging.getLogger("slipway.monitoring")

GRANULARITY_S = {"minute": 60, "hour": 3600, "day": 86400}
# How long rows stay at one granularity before they are merged into the next.
ROLLUP_AFTER = {"minute": timedelta(hours=6), "hour": timedelta(days=14)}
# Closed buckets kept in memory while the store cannot take them; older ones are dropped.
MAX_UNFLUSHED_BUCKETS = 240
# pg_advisory_xact_lock key that serializes rollups across workers and replicas.
_ROLLUP_LOCK = int.from_bytes(b"slw:rlup", "big") & (2**63 - 1)


@dataclass
class Window:
    """Counters and sketches of one endpoint x version over some time."""

    profile: Profile
    requests: int = 0
    rows: int = 0
    errors: int = 0  # requests the model or its output contract failed (5xx)
    violations: int = 0  # rows refused by the data contract
    nan_outputs: int = 0  # predicted rows with a NaN or infinite output
    latency: ColumnSketch = field(default_factory=ColumnSketch.numeric)  # ms per request
    # Rows this version answered that another version also answered (a shadow beside
    # the primary, the primary mirroring a canary): other version -> [compared, agreed].
    agreement: dict[int, list[int]] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> Window:
        return cls(Profile.empty({}))

    def merge(self, other: Window) -> None:
        self.profile.merge(other.profile)
        self.requests += other.requests
        self.rows += other.rows
        self.errors += other.errors
        self.violations += other.violations
        self.nan_outputs += other.nan_outputs
        self.latency.merge(other.latency)
        for version, (compared, agreed) in other.agreement.items():
            mine = self.agreement.setdefault(version, [0, 0])
            mine[0] += compared
            mine[1] += agreed

    def agreement_with(self, version: int) -> tuple[int, float | None]:
        """How many rows were compared with ``version`` and the share that agreed."""
        compared, agreed = self.agreement.get(version, (0, 0))
        return compared, (agreed / compared if compared else None)

    def rate(self, what: str) -> float | None:
        """errors per request, violations per offered row, NaN outputs per predicted row."""
        num, den = {
            "errors": (self.errors, self.requests),
            "violations": (self.violations, self.rows + self.violations),
            "nan_outputs": (self.nan_outputs, self.rows),
        }[what]
        return num / den if den else None

    def latency_ms(self, q: float) -> float | None:
        return float(self.latency.quantiles([q])[0]) if self.latency.count else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "rows": self.rows,
            "errors": self.errors,
            "violations": self.violations,
            "nan_outputs": self.nan_outputs,
            "latency": self.latency.to_dict(),
            "profile": self.profile.to_dict(),
            "agreement": {str(v): list(c) for v, c in self.agreement.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Window:
        return cls(
            profile=Profile.from_dict(data["profile"], "window.profile"),
            requests=int(data["requests"]),
            rows=int(data["rows"]),
            errors=int(data["errors"]),
            violations=int(data["violations"]),
            nan_outputs=int(data["nan_outputs"]),
            latency=ColumnSketch.from_dict(data["latency"], "window.latency"),
            # Rows written before agreement was counted have none.
            agreement={
                int(v): [int(c[0]), int(c[1])] for v, c in data.get("agreement", {}).items()
            },
        )


@dataclass
class _Open:
    """A bucket being filled: the window plus rows not yet folded into its sketches."""

    window: Window
    columns: tuple[tuple[int, str], ...]  # (matrix column, feature) of profiled features
    matrices: list[np.ndarray] = field(default_factory=list)
    predictions: list[np.ndarray] = field(default_factory=list)
    probabilities: list[np.ndarray] = field(default_factory=list)
    classes: Sequence[Any] | None = None
    latencies: list[float] = field(default_factory=list)
    pending: int = 0

    def fold(self) -> None:
        if self.matrices:
            X = np.concatenate(self.matrices)
            cols = {name: X[:, j] for j, name in self.columns}
            preds = np.concatenate(self.predictions) if self.predictions else None
            proba = np.concatenate(self.probabilities) if self.probabilities else None
            # Counted here, over everything folded at once, not per request: numpy's
            # per-call cost on a one-row answer is most of what the check costs.
            self.window.nan_outputs += _nonfinite_rows(preds, proba)
            self.window.profile.update(
                cols, predictions=preds, probabilities=proba, classes=self.classes
            )
        if self.latencies:
            self.window.latency.update(np.asarray(self.latencies, dtype=np.float64))
        self.matrices.clear()
        self.predictions.clear()
        self.probabilities.clear()
        self.latencies.clear()
        self.pending = 0


# endpoint, model, version number, version id, bucket start (epoch seconds), shadow
_Key = tuple[str, str, int, str, int, bool]


class WindowRecorder:
    """In-memory windows of this process, one per endpoint x version x bucket."""

    def __init__(self, *, bucket_s: int = 60, fold_rows: int = 1024) -> None:
        self.bucket_s = bucket_s
        self.fold_rows = fold_rows
        self._open: dict[_Key, _Open] = {}
        self._lock = threading.Lock()
        # Profiled columns per version id: the contract's fields minus PII ones.
        self._kinds: dict[str, tuple[dict[str, str], tuple[tuple[int, str], ...]]] = {}

    def observe(
        self,
        loaded: LoadedVersion,
        X: np.ndarray | None,
        output: ModelOutput | None,
        *,
        latency_ms: float | None,
        violations: int = 0,
        error: bool = False,
        now: float | None = None,
        shadow: bool = False,
    ) -> None:
        """Count one request: ``X`` the predicted rows (model input order), ``output``
        the model's answer (None when it failed), ``violations`` its refused rows;
        ``shadow``: a copy answered by a shadow (kept apart from what callers got)."""
        with self._lock:
            current = self._bucket(loaded, output, now, shadow)
            window = current.window
            window.requests += 1
            window.violations += violations
            if error:
                window.errors += 1
            if latency_ms is not None:
                current.latencies.append(latency_ms)
            if X is not None and output is not None and len(X):
                window.rows += len(X)
                current.matrices.append(X)
                current.predictions.append(np.asarray(output.predictions))
                if output.probabilities is not None:
                    current.probabilities.append(np.asarray(output.probabilities))
                current.classes = output.classes or loaded.signature.classes
                current.pending += len(X)
            if current.pending >= self.fold_rows or len(current.latencies) >= self.fold_rows:
                current.fold()

    def agree(
        self,
        loaded: LoadedVersion,
        other: int,
        compared: int,
        agreed: int,
        *,
        now: float | None = None,
        shadow: bool = False,
    ) -> None:
        """Count ``compared`` rows ``loaded`` answered that version ``other`` answered
        too, ``agreed`` of them alike."""
        if not compared:
            return
        with self._lock:
            counts = self._bucket(loaded, None, now, shadow).window.agreement
            mine = counts.setdefault(other, [0, 0])
            mine[0] += compared
            mine[1] += agreed

    def _bucket(
        self, loaded: LoadedVersion, output: ModelOutput | None, now: float | None, shadow: bool
    ) -> _Open:
        """The open bucket of ``loaded`` at ``now`` (created if new); hold the lock."""
        version = loaded.version
        bucket = int((time.time() if now is None else now) // self.bucket_s * self.bucket_s)
        key = (loaded.endpoint, version.model, version.number, version.id, bucket, shadow)
        current = self._open.get(key)
        if current is None:
            kinds, columns = self._columns(loaded)
            score = output is not None and output.probabilities is not None
            prediction = _prediction_kind(loaded, output)
            current = _Open(
                Window(Profile.empty(kinds, prediction=prediction, score=score)), columns
            )
            self._open[key] = current
        return current

    def _columns(self, loaded: LoadedVersion) -> tuple[dict[str, str], tuple[tuple[int, str], ...]]:
        cached = self._kinds.get(loaded.version.id)
        if cached is None:
            kinds = kinds_from_contract(loaded.contract)
            order = loaded.signature.input_names
            columns = tuple((j, name) for j, name in enumerate(order) if name in kinds)
            cached = self._kinds[loaded.version.id] = (kinds, columns)
        return cached

    def take(
        self,
        *,
        everything: bool = False,
        now: float | None = None,
        endpoints: Collection[str] = (),
    ) -> list[tuple[_Key, Window]]:
        """Remove and return closed buckets (all of them with ``everything``, and the
        open ones of ``endpoints`` too), folded."""
        cutoff = (time.time() if now is None else now) // self.bucket_s * self.bucket_s
        with self._lock:
            keys = [k for k in self._open if everything or k[4] < cutoff or k[0] in endpoints]
            taken = [(k, self._open.pop(k)) for k in keys]
        for _, bucket in taken:
            bucket.fold()
        return [(k, b.window) for k, b in taken]

    def flush(
        self,
        engine: Engine,
        *,
        everything: bool = False,
        now: float | None = None,
        endpoints: Collection[str] = (),
    ) -> int:
        """Write closed buckets (or all, or those of ``endpoints`` too: a rollout judges
        them within seconds) to the store; on failure keep them for next time. A bucket
        written while open gets another row later; rows of one bucket merge on read."""
        taken = self.take(everything=everything, now=now, endpoints=endpoints)
        if not taken:
            return 0
        created = utcnow()
        rows = [
            # Tests may use shorter buckets; they are still the finest granularity.
            _stored(endpoint, number, version_id, "minute", bucket, window, created, shadow)
            for (endpoint, _model, number, version_id, bucket, shadow), window in taken
        ]
        try:
            with transaction(engine) as conn:
                conn.execute(insert(monitor_windows), rows)
        except Exception:
            self._restore(taken)
            raise
        return len(rows)

    def _restore(self, taken: list[tuple[_Key, Window]]) -> None:
        with self._lock:
            for key, window in taken:
                current = self._open.get(key)
                if current is None:
                    self._open[key] = _Open(window, self._kinds_for(key))
                else:
                    current.window.merge(window)
            if len(self._open) > MAX_UNFLUSHED_BUCKETS:
                oldest = sorted(self._open, key=lambda k: k[4])
                dropped = oldest[: len(self._open) - MAX_UNFLUSHED_BUCKETS]
                for key in dropped:
                    del self._open[key]
                log.warning(
                    "store unavailable: dropped %d unflushed monitoring windows", len(dropped)
                )

    def _kinds_for(self, key: _Key) -> tuple[tuple[int, str], ...]:
        cached = self._kinds.get(key[3])
        return cached[1] if cached else ()

    def pending_buckets(self) -> int:
        return len(self._open)


def _stored(
    endpoint: str,
    number: int,
    version_id: str,
    granularity: str,
    bucket: int,
    window: Window,
    created: datetime,
    shadow: bool = False,
) -> dict[str, Any]:
    """One ``monitor_windows`` row: ``window`` of the bucket starting at epoch ``bucket``."""
    return {
        "id": new_id(),
        "endpoint": endpoint,
        "version": number,
        "version_id": version_id,
        "granularity": granularity,
        "bucket_start": datetime.fromtimestamp(bucket, UTC),
        "data": window.to_dict(),
        "created_at": created,
        "shadow": shadow,
    }


def _prediction_kind(loaded: LoadedVersion, output: ModelOutput | None) -> str | None:
    """Classifiers answer classes (as the reference profile records them), others
    numbers."""
    if output is None:
        return None
    if loaded.signature.classes is not None or output.predictions.dtype.kind in "OUSb":
        return "categorical"
    return "numeric"


def _nonfinite_rows(predictions: np.ndarray | None, probabilities: np.ndarray | None) -> int:
    """Rows whose prediction or any class probability is NaN or infinite."""
    if predictions is None:
        return 0
    bad = np.zeros(len(predictions), dtype=bool)
    if predictions.dtype.kind == "f":
        bad |= ~np.isfinite(predictions)
    if probabilities is not None and len(probabilities) == len(predictions):
        bad |= ~np.isfinite(np.asarray(probabilities, dtype=np.float64)).all(axis=1)
    return int(bad.sum())


class WindowStore:
    """Reads (merging) and rolls up the windows all workers flushed."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _rows(
        self, endpoint: str, start: datetime, end: datetime, version: int | None, shadow: bool
    ) -> list[Any]:
        query = select(
            monitor_windows.c.bucket_start,
            monitor_windows.c.granularity,
            monitor_windows.c.version,
            monitor_windows.c.data,
        ).where(
            monitor_windows.c.endpoint == endpoint,
            monitor_windows.c.bucket_start >= start,
            monitor_windows.c.bucket_start < end,
            monitor_windows.c.shadow == shadow,
        )
        if version is not None:
            query = query.where(monitor_windows.c.version == version)
        with self.engine.connect() as conn:
            return list(conn.execute(query.order_by(monitor_windows.c.bucket_start)))

    def read(
        self,
        endpoint: str,
        start: datetime,
        end: datetime,
        *,
        version: int | None = None,
        shadow: bool = False,
    ) -> Window:
        """Everything ``endpoint`` (one ``version`` of it) served in ``[start, end)``;
        with ``shadow``, what its shadows answered instead."""
        merged = Window.empty()
        for row in self._rows(endpoint, start, end, version, shadow):
            merged.merge(Window.from_dict(row.data))
        return merged

    def series(
        self,
        endpoint: str,
        start: datetime,
        end: datetime,
        *,
        version: int | None = None,
        shadow: bool = False,
    ) -> list[tuple[datetime, Window]]:
        """One merged window per stored bucket, oldest first (for plots over time)."""
        out: dict[datetime, Window] = {}
        for row in self._rows(endpoint, start, end, version, shadow):
            window = Window.from_dict(row.data)
            if row.bucket_start in out:
                out[row.bucket_start].merge(window)
            else:
                out[row.bucket_start] = window
        return sorted(out.items(), key=lambda item: item[0])

    def versions(
        self, endpoint: str, start: datetime, end: datetime, *, shadow: bool = False
    ) -> list[int]:
        query = (
            select(monitor_windows.c.version)
            .where(
                monitor_windows.c.endpoint == endpoint,
                monitor_windows.c.bucket_start >= start,
                monitor_windows.c.bucket_start < end,
                monitor_windows.c.shadow == shadow,
            )
            .distinct()
        )
        with self.engine.connect() as conn:
            return sorted(conn.execute(query).scalars())

    def rollup(self, now: datetime | None = None) -> int:
        """Merge minute rows older than 6 h into hours, hour rows older than 14 days into
        days; returns how many rows were merged away."""
        now = now or utcnow()
        merged = 0
        for fine, coarse in (("minute", "hour"), ("hour", "day")):
            merged += self._rollup(fine, coarse, now - ROLLUP_AFTER[fine])
        return merged

    def _rollup(self, fine: str, coarse: str, before: datetime) -> int:
        step = GRANULARITY_S[coarse]
        # Only whole coarse buckets: a bucket still receiving fine rows is left alone.
        limit = datetime.fromtimestamp(before.timestamp() // step * step, UTC)
        with transaction(self.engine) as conn:
            if backend_name(self.engine) == "postgresql":
                # Under READ COMMITTED two rollups at once would read the same fine rows
                # and both insert their merge: counted twice. SQLite's write lock (BEGIN
                # IMMEDIATE) already serializes them.
                conn.execute(select(func.pg_advisory_xact_lock(_ROLLUP_LOCK)))
            rows = list(
                conn.execute(
                    select(monitor_windows).where(
                        monitor_windows.c.granularity == fine,
                        monitor_windows.c.bucket_start < limit,
                    )
                )
            )
            if not rows:
                return 0
            groups: dict[tuple[str, int, str, int, bool], Window] = {}
            for row in rows:
                start = int(row.bucket_start.timestamp() // step * step)
                key = (row.endpoint, row.version, row.version_id, start, row.shadow)
                window = Window.from_dict(row.data)
                if key in groups:
                    groups[key].merge(window)
                else:
                    groups[key] = window
            conn.execute(
                delete(monitor_windows).where(monitor_windows.c.id.in_([r.id for r in rows]))
            )
            created = utcnow()
            conn.execute(
                insert(monitor_windows),
                [
                    _stored(endpoint, number, version_id, coarse, start, window, created, shadow)
                    for (endpoint, number, version_id, start, shadow), window in groups.items()
                ],
            )
        return len(rows) - len(groups)
