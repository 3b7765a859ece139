"""Signed checkpoints: the key pair, the schedule, the file format, idempotence."""

from __future__ import annotations

import base64
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine, update

from slipway.audit import canonical_json
from slipway.audit.checkpoints import (
    ChainBroken,
    Checkpointer,
    checkpoint_files,
    checkpoint_path,
    ensure_signing_key,
    key_id,
    load_private_key,
    load_public_key,
    read_checkpoint,
    write_checkpoint,
)
from slipway.audit.verify import verify
from slipway.store import transaction
from slipway.store.tables import audit_events
from tests.audit.conftest import append_events

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def test_signing_key_is_private_and_created_once(tmp_path: Path) -> None:
    audit_dir = tmp_path / "audit"
    ensure_signing_key(audit_dir)
    key_file, pub_file = audit_dir / "signing.key", audit_dir / "signing.pub"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(audit_dir.stat().st_mode) == 0o700
    assert key_file.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert pub_file.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    first = key_file.read_bytes()
    ensure_signing_key(audit_dir)
    assert key_file.read_bytes() == first
    assert key_id(load_public_key(pub_file)) == key_id(load_private_key(audit_dir).public_key())
    # A lost public key is re-derived from the private one, never a new pair.
    pub_file.unlink()
    ensure_signing_key(audit_dir)
    assert key_file.read_bytes() == first and pub_file.exists()


def test_checkpoint_file_is_signed_over_count_head_and_time(engine: Engine, tmp_path: Path) -> None:
    append_events(engine, 12)
    checkpoint = write_checkpoint(engine, tmp_path)
    path = checkpoint_path(tmp_path, 12)
    assert path.name == "000000000012.json"
    data = json.loads(path.read_text())
    assert set(data) == {"count", "head_hash", "time", "key_id", "signature"}
    assert data["count"] == 12 and data["head_hash"] == checkpoint.head_hash
    assert datetime.fromisoformat(data["time"]).utcoffset() == timedelta(0)
    public = load_public_key(tmp_path / "signing.pub")
    assert data["key_id"] == key_id(public) and len(data["key_id"]) == 16
    body = {"count": 12, "head_hash": data["head_hash"], "time": data["time"]}
    public.verify(base64.b64decode(data["signature"]), canonical_json(body))
    assert isinstance(public, Ed25519PublicKey)
    # No temp files left behind by the atomic write.
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == [path.name]
    report = verify(engine, tmp_path)
    assert report.ok and report.checkpoints_checked == 1
    assert (report.verified_up_to, report.unverified_tail) == (12, 0)


def test_schedule_by_event_count(sqlite_engine: Engine, tmp_path: Path) -> None:
    cp = Checkpointer(sqlite_engine, tmp_path, every_events=10, every_s=3600)
    assert cp.maybe_write(T0) is None  # nothing appended yet
    append_events(sqlite_engine, 4)
    first = cp.maybe_write(T0)  # over an hour after the checkpointer started
    assert first is not None and first.count == 4
    append_events(sqlite_engine, 9, start=4)
    assert cp.maybe_write(T0 + timedelta(seconds=1)) is None  # 9 < 10 and not 1 h yet
    append_events(sqlite_engine, 1, start=13)
    second = cp.maybe_write(T0 + timedelta(seconds=2))
    assert second is not None and second.count == 14
    assert [read_checkpoint(p).count for p in checkpoint_files(tmp_path)] == [4, 14]


def test_schedule_by_time_only_when_events_arrived(sqlite_engine: Engine, tmp_path: Path) -> None:
    append_events(sqlite_engine, 2)
    cp = Checkpointer(sqlite_engine, tmp_path, every_events=1000, every_s=60)
    assert cp.maybe_write() is None  # the clock starts when the checkpointer does
    assert cp.maybe_write(T0) is not None
    append_events(sqlite_engine, 3, start=2)
    assert cp.maybe_write(T0 + timedelta(seconds=59)) is None
    late = cp.maybe_write(T0 + timedelta(seconds=60))
    assert late is not None and late.count == 5
    # Time passing without new events writes nothing.
    assert cp.maybe_write(T0 + timedelta(hours=5)) is None


def test_a_restarted_checkpointer_picks_up_where_the_files_end(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    append_events(sqlite_engine, 5)
    Checkpointer(sqlite_engine, tmp_path, every_events=5).maybe_write(T0)
    restarted = Checkpointer(sqlite_engine, tmp_path, every_events=5, every_s=60)
    assert restarted.last is not None and restarted.last.count == 5
    assert restarted.maybe_write(T0 + timedelta(seconds=1)) is None


def test_writing_is_idempotent_per_count(sqlite_engine: Engine, tmp_path: Path) -> None:
    append_events(sqlite_engine, 3)
    first = write_checkpoint(sqlite_engine, tmp_path)
    content = checkpoint_path(tmp_path, 3).read_bytes()
    # A second replica (no state of its own) at the same head keeps the first file.
    again = Checkpointer(sqlite_engine, tmp_path).write(T0 + timedelta(days=1))
    assert again == first
    assert checkpoint_path(tmp_path, 3).read_bytes() == content
    assert len(checkpoint_files(tmp_path)) == 1


def test_refuses_to_sign_a_tampered_chain(sqlite_engine: Engine, tmp_path: Path) -> None:
    append_events(sqlite_engine, 10)
    write_checkpoint(sqlite_engine, tmp_path)
    append_events(sqlite_engine, 10, start=10)
    with transaction(sqlite_engine) as conn:
        conn.execute(update(audit_events).where(audit_events.c.seq == 15).values(reason="x"))
    with pytest.raises(ChainBroken, match="15"):
        write_checkpoint(sqlite_engine, tmp_path)
    assert len(checkpoint_files(tmp_path)) == 1


def test_empty_log_checkpoint_verifies(sqlite_engine: Engine, tmp_path: Path) -> None:
    checkpoint = write_checkpoint(sqlite_engine, tmp_path)
    assert checkpoint.count == 0
    assert verify(sqlite_engine, tmp_path).ok
