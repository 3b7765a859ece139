"""Known-answer scenarios for monitoring, on the real services and a real store.

Drift: a synthetic stream in which three numeric features shift by 0.2 standard
deviations and one categorical feature changes its mix at a known minute. The
built-in feature-drift monitor, evaluated every half hour on its one-hour window, must
raise alerts for exactly those four features after the shift and none before; over ten
seeds at most one false alarm in total.

Calibration: predictions whose probabilities are made over-confident, labelled later
through feedback, raise the calibration monitor; calibrated ones do not.

Time is injected (the recorder's clock and the evaluation time), so two simulated hours
take a second, not two hours.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from slipway.audit import Actor
from slipway.ids import new_id
from slipway.registry.prepare import prepare
from slipway.runtime import Runtime
from slipway.serving.pool import LoadedVersion
from slipway.settings import Settings
from slipway.store.tables import prediction_records

ADMIN = Actor("admin")
NUMERIC = [f"f{i}" for i in range(6)]
CATEGORICAL = ["c0", "c1"]
DRIFTED = {"f0", "f1", "f2", "c0"}
MIX_BEFORE = {"red": 0.5, "green": 0.3, "blue": 0.2}
MIX_AFTER = {"red": 0.25, "green": 0.3, "blue": 0.45}
START = datetime(2026, 11, 2, tzinfo=UTC)
ROWS_PER_MINUTE = 100


def _frame(rng: np.random.Generator, n: int, *, shifted: bool) -> dict[str, np.ndarray]:
    data: dict[str, np.ndarray] = {}
    for name in NUMERIC:
        shift = 0.2 if shifted and name in DRIFTED else 0.0
        data[name] = rng.normal(shift, 1.0, n)
    mix = MIX_AFTER if shifted else MIX_BEFORE
    data["c0"] = rng.choice(list(mix), n, p=list(mix.values()))
    data["c1"] = rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1])
    return data


def _model(data: dict[str, np.ndarray]) -> tuple[Any, Any, np.ndarray]:
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = pd.DataFrame(data)
    y = np.where(frame["f0"] + frame["f3"] + (frame["c0"] == "red") > 0.5, "yes", "no")
    model = Pipeline(
        [
            (
                "columns",
                ColumnTransformer(
                    [
                        ("num", "passthrough", list(range(len(NUMERIC)))),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), [6, 7]),
                    ]
                ),
            ),
            ("clf", LogisticRegression(max_iter=500)),
        ]
    )
    model.fit(frame.to_numpy(dtype=object), y)
    return model, frame, y


@dataclass
class World:
    runtime: Runtime
    loaded: LoadedVersion

    def serve_minute(self, rng: np.random.Generator, minute: int, *, shifted: bool) -> None:
        """One minute of traffic (one request of ROWS_PER_MINUTE rows) at its time."""
        data = _frame(rng, ROWS_PER_MINUTE, shifted=shifted)
        X = np.column_stack([data[name] for name in NUMERIC + CATEGORICAL]).astype(object)
        for j in range(len(NUMERIC)):
            X[:, j] = X[:, j].astype(np.float64)
        output = self.loaded.predictor.predict(X)
        at = (START + timedelta(minutes=minute, seconds=30)).timestamp()
        self.runtime.windows.observe(self.loaded, X, output, latency_ms=2.0, now=at)

    def evaluate(self, minute: int) -> set[str]:
        """Flush the closed minutes, judge the monitors at ``minute``, apply the alerts;
        returns the features with a firing feature-drift alert."""
        rt = self.runtime
        now = START + timedelta(minutes=minute)
        rt.windows.flush(rt.engine, now=now.timestamp())
        rt.alerts.apply(rt.monitors.evaluate(now), now)
        return {
            a.subject
            for a in rt.alerts.list(endpoint="stream", state="firing")
            if a.metric == "feature_drift"
        }


def _deploy(tmp: Path, seed: int) -> World:
    rng = np.random.default_rng(seed)
    training = _frame(rng, 5000, shifted=False)
    model, frame, y = _model(training)
    runtime = Runtime.from_settings(Settings({"home": str(tmp / f"home-{seed}")}, environ={}))
    prepared = prepare(model, X_train=frame, y_train=y)
    assert prepared["profile"] is not None
    runtime.models.create(name="stream", owner="ml-team", actor=ADMIN, runbook_url="https://rb")
    info = runtime.artifacts.put_bytes(prepared.pop("artifact"))
    version = runtime.versions.register(
        "stream",
        artifact_sha256=info.sha256,
        actor=ADMIN,
        **{k: v for k, v in prepared.items() if k != "artifact"},
    )
    runtime.versions.set_status(version, "ready", actor=ADMIN)
    runtime.endpoints.deploy("stream", model="stream", version=version.number, actor=ADMIN)
    return World(runtime, runtime.pool.get("stream"))


@pytest.fixture
def deploy(tmp_path: Path) -> Iterator[Any]:
    made: list[World] = []

    def make(seed: int) -> World:
        world = _deploy(tmp_path, seed)
        made.append(world)
        return world

    yield make
    for world in made:
        world.runtime.close()


def test_drift_alerts_fire_for_exactly_the_shifted_features(deploy: Any) -> None:
    false_alarms: list[tuple[int, int, str]] = []
    for seed in range(10):
        world = deploy(seed)
        rng = np.random.default_rng(1000 + seed)
        shift_at, end = 150, 270
        for minute in range(end):
            world.serve_minute(rng, minute, shifted=minute >= shift_at)
            if minute % 30 == 0 and minute >= 60:
                firing = world.evaluate(minute)
                # Before the shift every alert is false; after it (once the hour window
                # holds only shifted traffic), only alerts outside DRIFTED are.
                wrong = firing if minute <= shift_at else firing - DRIFTED
                false_alarms += [(seed, minute, name) for name in wrong]
        firing = world.evaluate(end)
        assert DRIFTED <= firing, (seed, firing)
        false_alarms += [(seed, end, name) for name in firing - DRIFTED]
    assert len(false_alarms) <= 1, false_alarms


def test_drift_alert_carries_owner_runbook_and_evidence(deploy: Any) -> None:
    world = deploy(42)
    rng = np.random.default_rng(7)
    for minute in range(60):
        world.serve_minute(rng, minute, shifted=True)
    assert "f0" in world.evaluate(60)
    alert = next(
        a for a in world.runtime.alerts.list(endpoint="stream") if a.subject == "f0"
    ).to_dict()
    assert alert["model"] == "stream" and alert["version"] == 1
    evidence = alert["evidence"]
    assert evidence["value"] >= evidence["threshold"] == 0.1
    assert evidence["samples"] >= 500 and evidence["window_start"] < evidence["window_end"]
    delivered = world.runtime.alerts.get(alert["id"]).to_dict()
    payloads = [d["payload"] for d in delivered["deliveries"]]
    assert payloads and payloads[0]["owner"] == "ml-team"
    assert payloads[0]["runbook_url"] == "https://rb"


def _record(world: World, at: datetime, proba_yes: np.ndarray) -> list[str]:
    """Store one prediction record as the inference service writes it; its ids."""
    record_id = new_id()
    predictions = np.where(proba_yes >= 0.5, "yes", "no")
    with world.runtime.engine.begin() as conn:
        conn.execute(
            prediction_records.insert().values(
                id=record_id,
                created_at=at,
                endpoint="stream",
                model="stream",
                version=1,
                version_id=world.loaded.version.id,
                caller="test",
                route="plain",
                rows=len(proba_yes),
                inputs=[],
                outputs={
                    "predictions": predictions.tolist(),
                    "probabilities": np.column_stack([1 - proba_yes, proba_yes]).tolist(),
                    "classes": ["no", "yes"],
                },
                latency_ms=1.0,
                outcome="ok",
            )
        )
    return [f"{record_id}-{i}" for i in range(len(proba_yes))]


@pytest.mark.parametrize("overconfident", [False, True])
def test_calibration_monitor_sees_overconfident_probabilities(
    deploy: Any, overconfident: bool
) -> None:
    world = deploy(3)
    rng = np.random.default_rng(11)
    truth_p = rng.uniform(0.05, 0.95, 2000)
    labels = np.where(rng.uniform(size=2000) < truth_p, "yes", "no")
    shown = truth_p
    if overconfident:
        logit = np.log(truth_p / (1 - truth_p))
        shown = 1 / (1 + np.exp(-3 * logit))
    at = START + timedelta(hours=2)
    ids = _record(world, at, shown)
    report = world.runtime.feedback.submit(
        "stream",
        [{"prediction_id": i, "label": str(y)} for i, y in zip(ids, labels, strict=True)],
        actor=ADMIN,
    )
    assert report["accepted"] == 2000 and not report["unknown"] and not report["invalid"]
    evaluations = world.runtime.monitors.evaluate(at + timedelta(hours=1), endpoint="stream")
    calibration = next(e for e in evaluations if e.metric == "calibration_error")
    assert calibration.samples == 2000
    assert calibration.status == ("breach" if overconfident else "ok"), calibration
    assert calibration.evidence["reliability"]
