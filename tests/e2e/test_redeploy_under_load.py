"""Acceptance: "Redeploying a new version during a 20-second load test gives no 5xx, and
the number of prediction records equals the number of 200 responses."
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

LOAD_SECONDS = 20.0
THREADS = 8
REDEPLOY_EVERY_S = 1.5


@dataclass
class WorkerResult:
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: list[str] = field(default_factory=list)
    prediction_ids: list[str] = field(default_factory=list)
    versions: Counter[int] = field(default_factory=Counter)
    bad_bodies: list[str] = field(default_factory=list)


def _load(
    url: str,
    token: str,
    rows: list[dict[str, float]],
    stop: threading.Event,
    out: WorkerResult,
    offset: int,
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    i = offset
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        while not stop.is_set():
            row = rows[i % len(rows)]
            i += 1
            try:
                r = http.post("/v1/endpoints/iris/predict", json={"inputs": [row]})
            except httpx.TransportError as exc:
                out.transport_errors.append(f"{type(exc).__name__}: {exc}")
                continue
            out.statuses[r.status_code] += 1
            if r.status_code == 200:
                body = r.json()
                pred = body["predictions"][0]
                if pred["version"] != body["version"]:
                    out.bad_bodies.append(r.text)
                out.prediction_ids.append(pred["id"])
                out.versions[body["version"]] += 1
            elif len(out.bad_bodies) < 5:
                out.bad_bodies.append(f"{r.status_code}: {r.text}")


def test_redeploy_during_load_loses_nothing(server: Any, iris: Any, e2e: Any) -> None:
    with server.client() as client:
        numbers = []
        for C in (1.0, 0.05):
            v = e2e.register_logreg(client, "iris", iris, e2e.train_logreg(iris, C=C))
            assert v["status"] == "ready", v
            numbers.append(v["number"])
        client.deploy("iris", model="iris", version=numbers[0])

        rows = e2e.rows_of(iris.X)
        stop = threading.Event()
        results = [WorkerResult() for _ in range(THREADS)]
        workers = [
            threading.Thread(
                target=_load,
                args=(server.url, server.token, rows, stop, results[t], t * 17),
                daemon=True,
            )
            for t in range(THREADS)
        ]
        for w in workers:
            w.start()

        deploys: list[int] = []
        deploy_failures: list[str] = []
        started = time.monotonic()
        k = 1
        try:
            while time.monotonic() - started < LOAD_SECONDS:
                time.sleep(REDEPLOY_EVERY_S)
                target = numbers[k % len(numbers)]
                k += 1
                try:
                    shown = client.deploy("iris", model="iris", version=target)
                except Exception as exc:  # noqa: BLE001 - collected and asserted below
                    deploy_failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                deploys.append(target)
                assert shown["version"] == target
                assert shown["serving_version"] == target
        finally:
            stop.set()
            for w in workers:
                w.join(timeout=60)
        assert not any(w.is_alive() for w in workers), "load threads did not stop"

        statuses: Counter[int] = Counter()
        versions: Counter[int] = Counter()
        transport_errors: list[str] = []
        ids: list[str] = []
        bad: list[str] = []
        for res in results:
            statuses.update(res.statuses)
            versions.update(res.versions)
            transport_errors += res.transport_errors
            ids += res.prediction_ids
            bad += res.bad_bodies
        summary = f"statuses={dict(statuses)} versions={dict(versions)} deploys={len(deploys)}"
        print(summary)  # with -s: the figures a release note reports

        assert not deploy_failures, deploy_failures
        assert len(deploys) >= LOAD_SECONDS / REDEPLOY_EVERY_S - 2, summary
        assert not transport_errors, (summary, transport_errors[:5])
        assert not [s for s in statuses if s >= 500], (summary, bad)
        assert set(statuses) == {200}, (summary, bad)
        assert not bad, bad
        ok = statuses[200]
        assert ok > 100 * THREADS // 8, summary  # the load was real
        # Every version that was deployed answered during the run.
        assert set(versions) == set(numbers), summary

        # One record per 200, and each returned id has its own record.
        assert client.list_predictions("iris")["total"] == ok, summary
        assert len(set(ids)) == ok
        stored = e2e.record_ids_in_store(server.home, "iris")
        assert {e2e.record_id(i) for i in ids} == stored
        for pid in ids[:: max(1, ok // 25)]:  # and the API finds them
            record = client.get_prediction(pid)
            assert record["endpoint"] == "iris"
            assert record["version"] in numbers
        final = client.get_endpoint("iris")
        assert final["version"] == deploys[-1]
        assert final["generation"] == len(deploys) + 1
