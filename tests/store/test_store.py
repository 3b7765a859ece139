"""Behaviour of the store and the services on it, identical on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, func, select

from slipway.access.principals import bootstrap_admin
from slipway.access.tokens import TokenService
from slipway.artifacts.store import ArtifactStore
from slipway.audit import Actor
from slipway.errors import Conflict, NotFound, Unavailable, ValidationFailed
from slipway.registry.models import ModelService
from slipway.registry.versions import VersionService
from slipway.serving.endpoints import EndpointService
from slipway.serving.records import RecordWriter
from slipway.store import transaction, upgrade
from slipway.store.tables import metadata, prediction_records, tokens
from tests.store.conftest import a_record

OPS = Actor("ops")


def test_migrations_create_exactly_the_declared_schema(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_migrations_are_idempotent(engine: Engine) -> None:
    upgrade(engine)
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tokens)).scalar_one() == 0


def test_model_lifecycle(models: ModelService) -> None:
    created = models.create(
        name="churn",
        owner="risk-team",
        actor=Actor("admin"),
        risk_tier="high",
        tags=["b", "a", "a"],
        runbook_url="https://x/rb",
    )
    assert created.status == "active" and created.tags == ["a", "b"]
    assert created.created_at is not None and created.created_at.tzinfo is not None
    got = models.get("churn")
    assert got.owner == "risk-team" and got.risk_tier == "high"
    assert got.created_at is not None and got.created_at.utcoffset() == UTC.utcoffset(None)
    updated = models.update("churn", actor=Actor("admin"), description="why", status="deprecated")
    assert updated.description == "why" and updated.status == "deprecated"
    retired = models.retire("churn", actor=Actor("admin"))
    assert retired.status == "retired"
    assert models.get("churn").status == "retired"  # nothing is deleted
    with pytest.raises(Conflict):
        models.update("churn", actor=Actor("admin"), description="again")


def test_model_names_are_unique_and_validated(models: ModelService) -> None:
    models.create(name="m1", owner="o", actor=Actor("admin"))
    with pytest.raises(Conflict):
        models.create(name="m1", owner="o", actor=Actor("admin"))
    with pytest.raises(ValidationFailed) as bad:
        models.create(name="Bad Name", owner="o", actor=Actor("admin"))
    assert bad.value.details[0]["field"] == "name"
    with pytest.raises(ValidationFailed) as no_owner:
        models.create(name="m2", owner=" ", actor=Actor("admin"))
    assert no_owner.value.details[0]["field"] == "owner"
    with pytest.raises(ValidationFailed):
        models.create(name="m3", owner="o", actor=Actor("admin"), risk_tier="extreme")
    with pytest.raises(NotFound):
        models.get("nope")


def test_model_filters(models: ModelService) -> None:
    models.create(name="fraud-a", owner="team-x", actor=Actor("admin"), tags=["fraud"])
    models.create(name="fraud-b", owner="team-y", actor=Actor("admin"), tags=["fraud", "eu"])
    models.create(name="churn", owner="team-x", actor=Actor("admin"))
    models.retire("churn", actor=Actor("admin"))
    assert [m.name for m in models.list()] == ["churn", "fraud-a", "fraud-b"]
    assert [m.name for m in models.list(name="fraud")] == ["fraud-a", "fraud-b"]
    assert [m.name for m in models.list(tag="eu")] == ["fraud-b"]
    assert [m.name for m in models.list(owner="team-x")] == ["churn", "fraud-a"]
    assert [m.name for m in models.list(status="retired")] == ["churn"]
    assert models.list(name="%") == []  # LIKE wildcards are escaped


def _register(versions: VersionService, artifacts: ArtifactStore, iris: tuple, **kw: object):
    data, signature, rows = iris
    info = artifacts.put_bytes(data)
    return versions.register(
        "iris",
        artifact_sha256=info.sha256,
        flavor="sklearn",
        signature=signature,
        example_rows=rows,
        actor=Actor("dev"),
        **kw,
    )


def test_versions_are_numbered_per_model_and_keep_lineage(
    models: ModelService, versions: VersionService, artifacts: ArtifactStore, iris_skops: tuple
) -> None:
    models.create(name="iris", owner="o", actor=Actor("admin"))
    lineage = {
        "training_data": {"sha256": "a" * 64, "rows": 150, "columns": ["a", "b"]},
        "code": {"git_commit": "abc123", "dirty": True},
        "parameters": {"C": 1.0},
        "metrics": {"accuracy": 0.97},
        "evaluation_data": {"sha256": "b" * 64, "rows": 30, "columns": ["a", "b"]},
    }
    v1 = _register(versions, artifacts, iris_skops, lineage=lineage)
    v2 = _register(versions, artifacts, iris_skops, lineage={"parent_version": 1})
    assert (v1.number, v2.number) == (1, 2)
    assert v1.status == "registered" and v1.created_by == "dev"
    assert v1.lineage["metrics"] == {"accuracy": 0.97} and v1.lineage["code"]["dirty"] is True
    assert v1.library_versions["scikit-learn"]
    assert v1.artifact_sha256 == v2.artifact_sha256  # content-addressed: stored once
    ready = versions.set_status(v1, "ready", actor=OPS)
    assert ready.status == "ready"
    failed = versions.set_status(v2, "failed", "smoke test: boom", actor=OPS)
    assert versions.get("iris", 2).status_reason == "smoke test: boom"
    assert versions.get_by_id(failed.id).number == 2
    assert [v.number for v in versions.list("iris", status="ready")] == [1]
    with pytest.raises(NotFound):
        _register(versions, artifacts, iris_skops, lineage={"parent_version": 9})
    with pytest.raises(ValidationFailed):
        _register(versions, artifacts, iris_skops, lineage={"metrics": {"acc": "high"}})


def test_version_registration_validates_inputs(
    models: ModelService, versions: VersionService, artifacts: ArtifactStore, iris_skops: tuple
) -> None:
    models.create(name="iris", owner="o", actor=Actor("admin"))
    data, signature, rows = iris_skops
    sha = artifacts.put_bytes(data).sha256
    with pytest.raises(ValidationFailed) as no_rows:
        versions.register(
            "iris",
            artifact_sha256=sha,
            flavor="sklearn",
            signature=signature,
            example_rows=[],
            actor=Actor("dev"),
        )
    assert no_rows.value.details[0]["field"] == "example_rows"
    with pytest.raises(ValidationFailed) as bad_row:
        versions.register(
            "iris",
            artifact_sha256=sha,
            flavor="sklearn",
            signature=signature,
            example_rows=[{"a": 1.0}],
            actor=Actor("dev"),
        )
    assert bad_row.value.details[0]["field"] == "b"
    with pytest.raises(ValidationFailed) as bad_flavor:
        versions.register(
            "iris",
            artifact_sha256=sha,
            flavor="tensorflow",
            signature=signature,
            example_rows=rows,
            actor=Actor("dev"),
        )
    assert bad_flavor.value.details[0]["field"] == "flavor"
    with pytest.raises(NotFound):
        versions.register(
            "iris",
            artifact_sha256="c" * 64,
            flavor="sklearn",
            signature=signature,
            example_rows=rows,
            actor=Actor("dev"),
        )
    models.retire("iris", actor=Actor("admin"))
    with pytest.raises(Conflict):
        versions.register(
            "iris",
            artifact_sha256=sha,
            flavor="sklearn",
            signature=signature,
            example_rows=rows,
            actor=Actor("dev"),
        )


def test_concurrent_registrations_get_distinct_numbers(
    models: ModelService, versions: VersionService, artifacts: ArtifactStore, iris_skops: tuple
) -> None:
    models.create(name="iris", owner="o", actor=Actor("admin"))
    numbers: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            numbers.append(_register(versions, artifacts, iris_skops).number)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(numbers) == [1, 2, 3, 4, 5, 6]


def test_deploy_switches_versions_and_remembers_the_previous_one(
    models: ModelService,
    versions: VersionService,
    endpoints: EndpointService,
    artifacts: ArtifactStore,
    iris_skops: tuple,
) -> None:
    models.create(name="iris", owner="o", actor=Actor("admin"))
    v1 = versions.set_status(_register(versions, artifacts, iris_skops), "ready", actor=OPS)
    v2 = _register(versions, artifacts, iris_skops)
    with pytest.raises(Conflict):  # registered, not yet ready
        endpoints.deploy("iris-prod", model="iris", version=2, actor=Actor("ops"))
    first = endpoints.deploy("iris-prod", model="iris", version=1, actor=Actor("ops"))
    assert (first.version, first.previous_version, first.generation) == (1, None, 1)
    versions.set_status(v2, "ready", actor=OPS)
    second = endpoints.deploy("iris-prod", model="iris", version=2, actor=Actor("ops"))
    assert (second.version, second.previous_version, second.generation) == (2, 1, 2)
    assert endpoints.pool.get("iris-prod").version.id == versions.get("iris", 2).id
    assert [e.name for e in endpoints.list()] == ["iris-prod"]
    assert v1.number == 1
    with pytest.raises(NotFound):
        endpoints.get("nope")


def test_a_second_process_follows_deployments_by_sync(
    engine: Engine,
    models: ModelService,
    versions: VersionService,
    endpoints: EndpointService,
    artifacts: ArtifactStore,
    iris_skops: tuple,
) -> None:
    from slipway.serving.pool import PredictorPool

    models.create(name="iris", owner="o", actor=Actor("admin"))
    versions.set_status(_register(versions, artifacts, iris_skops), "ready", actor=OPS)
    versions.set_status(_register(versions, artifacts, iris_skops), "ready", actor=OPS)
    other = EndpointService(engine, versions, PredictorPool(artifacts))  # another worker
    endpoints.deploy("e", model="iris", version=1, actor=Actor("ops"))
    other.sync()
    assert other.pool.get("e").version.number == 1
    endpoints.deploy("e", model="iris", version=2, actor=Actor("ops"))
    other.sync()
    assert other.pool.get("e").version.number == 2


def test_record_writer_commits_every_record_in_groups(engine: Engine) -> None:
    asyncio.run(_commits_every_record(engine))


async def _commits_every_record(engine: Engine) -> None:
    from slipway.ids import new_id, utcnow

    writer = RecordWriter(engine, batch_max=64, flush_ms=5)
    await writer.start()
    ids = [new_id() for _ in range(300)]
    await asyncio.gather(*(writer.write(a_record(i)) for i in ids))
    await writer.stop()
    with engine.connect() as conn:
        stored = set(conn.execute(select(prediction_records.c.id)).scalars())
    assert stored == set(ids)
    assert writer.committed == 300
    assert utcnow().tzinfo is not None


def test_record_writer_reports_a_failed_commit(engine: Engine) -> None:
    asyncio.run(_reports_failed_commit(engine))


async def _reports_failed_commit(engine: Engine) -> None:
    from slipway.ids import new_id

    writer = RecordWriter(engine, batch_max=8, flush_ms=1)
    await writer.start()
    rid = new_id()
    await writer.write(a_record(rid))
    with pytest.raises(Unavailable):  # duplicate primary key: the commit fails
        await writer.write(a_record(rid))
    await writer.stop()


def test_tokens_resolve_by_hash_and_stop_when_revoked(engine: Engine) -> None:
    secret = bootstrap_admin(engine)
    service = TokenService(engine, refresh_s=0)
    resolved = service.resolve(secret)
    assert resolved is not None and resolved.principal == "admin"
    assert service.resolve(secret[:-1] + ("x" if secret[-1] != "x" else "y")) is None
    with engine.connect() as conn:
        stored = conn.execute(select(tokens.c.token_sha256)).scalar_one()
    assert secret not in stored
    from slipway.ids import utcnow

    with transaction(engine) as conn:
        conn.execute(tokens.update().values(revoked_at=utcnow()))
    assert service.resolve(secret) is None


def test_retirement_is_final(models: ModelService) -> None:
    models.create(name="old", owner="o", actor=Actor("admin"))
    models.retire("old", actor=Actor("admin"))
    with pytest.raises(Conflict):
        models.update("old", actor=Actor("admin"), status="active")
    assert models.retire("old", actor=Actor("admin")).status == "retired"  # idempotent


def test_every_control_action_is_audited_in_its_own_transaction(
    engine: Engine,
    models: ModelService,
    versions: VersionService,
    endpoints: EndpointService,
    artifacts: ArtifactStore,
    iris_skops: tuple,
    tmp_path: Path,
) -> None:
    from slipway.audit.verify import verify
    from slipway.store.tables import audit_events

    admin = Actor("alice", "tok1", "req1")
    models.create(name="iris", owner="o", actor=admin)
    with pytest.raises(Conflict):  # the failed change leaves no event behind
        models.create(name="iris", owner="o", actor=admin)
    v = _register(versions, artifacts, iris_skops)
    versions.set_status(v, "ready", actor=OPS)
    endpoints.deploy("e", model="iris", version=1, actor=OPS)
    models.update("iris", actor=admin, description="d")
    with engine.connect() as conn:
        rows = conn.execute(select(audit_events).order_by(audit_events.c.seq)).all()
    assert [(r.action, r.target) for r in rows] == [
        ("model.create", "iris"),
        ("version.register", "iris/1"),
        ("version.ready", "iris/1"),
        ("endpoint.deploy", "e"),
        ("model.update", "iris"),
    ]
    first = rows[0]
    assert (first.actor, first.token_id, first.request_id) == ("alice", "tok1", "req1")
    assert rows[-1].before["description"] == "" and rows[-1].after["description"] == "d"
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    report = verify(engine, tmp_path / "no-checkpoints-yet")
    assert report.ok and report.events == 5 and report.unverified_tail == 5


def test_commits_are_durable_on_every_backend(engine: Engine) -> None:
    """A prediction is acknowledged only after its record's commit reached the disk."""
    from sqlalchemy import text

    with engine.connect() as conn:
        if engine.url.get_backend_name() == "sqlite":
            # PRAGMA synchronous: 2 = FULL (fsync the WAL on every commit).
            assert conn.execute(text("PRAGMA synchronous")).scalar_one() == 2
            assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        else:
            assert conn.execute(text("SHOW synchronous_commit")).scalar_one() == "on"
