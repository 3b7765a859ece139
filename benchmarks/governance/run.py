"""What governance costs, in process on the real services and a fresh SQLite store:
deploys without and with an 8-check policy (the gate), the policy dry run, and a
retention purge of 100,000 expired prediction records out of 200,000.

    .venv/bin/python benchmarks/governance/run.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from slipway.audit import Actor
from slipway.ids import new_id, utcnow
from slipway.runtime import Runtime
from slipway.settings import Settings
from slipway.store.tables import prediction_records

# The test suite's pyfunc example model: a tiny artifact, so the figures are the gate's.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "artifacts"))

ADMIN, DEV, APPROVER = Actor("admin"), Actor("dana"), Actor("avery")
SIGNATURE = {"inputs": [{"name": "x", "type": "float"}], "classes": [0, 1]}
ARTIFACT = json.dumps({"class": "pyfunc_example:FaultyModel", "init": {}}).encode()
POLICY = """
applies_to: {endpoints: ["e"]}
checks:
  - {type: metadata, require: [owner, oncall, runbook_url, intended_use]}
  - {id: floor, type: metric, metric: auc, op: ">=", value: 0.8, per_slice: true}
  - {id: rel, type: metric, metric: auc, op: ">=", relative_to: current, delta: -0.01}
  - {type: baseline, metrics: {auc: ">="}}
  - {type: no_breaking_change}
  - {type: artifact, allow_code: true}
  - {type: evaluation_age, max_days: 30}
  - {type: approvals, by_risk_tier: {medium: {count: 1, role: approver}}}
"""
RECORDS = 200_000


def approved_version(rt: Runtime, sha: str) -> int:
    """A ready version with an evaluation record and an approval: it passes POLICY."""
    v = rt.versions.register(
        "m",
        artifact_sha256=sha,
        flavor="pyfunc",
        signature=SIGNATURE,
        example_rows=[{"x": 1.0}],
        actor=DEV,
    )
    rt.versions.set_status(v, "ready", actor=DEV)
    rt.evaluations.record(
        "m",
        v.number,
        actor=DEV,
        metrics={"auc": 0.9},
        slices={"eu": {"auc": 0.88}},
        baseline={"auc": 0.6},
    )
    request = rt.approvals.request("m", v.number, actor=DEV)
    rt.approvals.decide(
        request.id, approve=True, rationale="bench", actor=APPROVER, roles=["approver"]
    )
    return v.number


def ms_per_deploy(rt: Runtime, numbers: list[int]) -> float:
    started = time.perf_counter()
    for n in numbers:
        rt.endpoints.deploy("e", model="m", version=n, actor=ADMIN)
    return (time.perf_counter() - started) / len(numbers) * 1000


def gate(rt: Runtime) -> None:
    rt.models.create(
        name="m",
        owner="ml",
        oncall="#oncall",
        runbook_url="https://runbooks.example/m",
        intended_use="benchmark",
        actor=ADMIN,
    )
    sha = rt.artifacts.put_bytes(ARTIFACT).sha256
    numbers = [approved_version(rt, sha) for _ in range(41)]
    rt.endpoints.deploy("e", model="m", version=numbers[0], actor=ADMIN)
    plain = ms_per_deploy(rt, numbers[1:21])
    rt.policies.put("prod", POLICY, actor=ADMIN)
    gated = ms_per_deploy(rt, numbers[21:41])
    started = time.perf_counter()
    for _ in range(50):
        assert rt.policies.evaluate("m", numbers[5], endpoint="e", action="deploy").allowed
    dry_run = (time.perf_counter() - started) / 50 * 1000
    print(
        f"deploy: {plain:.1f} ms without a policy, {gated:.1f} ms with an 8-check policy; "
        f"policy dry run {dry_run:.1f} ms"
    )


def purge(rt: Runtime) -> None:
    now = utcnow()
    old, young = now - timedelta(days=200), now - timedelta(days=1)
    rows: list[dict[str, Any]] = [
        {
            "id": new_id(),
            "created_at": old if i % 2 else young,
            "endpoint": "e",
            "model": "m",
            "version": 1,
            "version_id": "v",
            "caller": "c",
            "route": "plain",
            "rows": 1,
            "inputs": {"x": [1.0]},
            "outputs": {"predictions": [1]},
            "latency_ms": 1.0,
            "outcome": "ok",
            "arm": "primary",
            "mirror_of": None,
        }
        for i in range(RECORDS)
    ]
    with rt.engine.begin() as conn:
        for start in range(0, len(rows), 10_000):
            conn.execute(prediction_records.insert(), rows[start : start + 10_000])
    started = time.perf_counter()
    rt.retention.plan(now)
    planned = time.perf_counter() - started
    started = time.perf_counter()
    done = rt.retention.purge(now)
    took = time.perf_counter() - started
    print(
        f"retention (medium tier, 183 days): dry run {planned:.2f} s; purged "
        f"{done['totals']['prediction_records']:,} of {RECORDS:,} records in {took:.2f} s, "
        f"one audit event (seq {done['audit_event']['seq']})"
    )


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="slipway-bench-governance-"))
    settings = Settings({"home": str(home), "pyfunc_trusted_modules": "pyfunc_example"}, environ={})
    rt = Runtime.from_settings(settings)
    try:
        gate(rt)
        purge(rt)
    finally:
        rt.close()


if __name__ == "__main__":
    main()
