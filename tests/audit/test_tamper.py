"""The acceptance test: tampering with a copy of a 10,000-event log is detected.

The log has signed checkpoints every 1,000 events up to 9,000, one at 9,500, and 500
events after it (the unverified tail). Each test tampers with its own copy of the
SQLite file and the audit directory, the way someone with write access to both could,
and checks what ``verify`` (and ``slipway audit verify``) reports.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from slipway.audit import GENESIS, event_hash
from slipway.audit.checkpoints import (
    Checkpoint,
    Checkpointer,
    checkpoint_files,
    checkpoint_path,
    ensure_signing_key,
    load_private_key,
    read_checkpoint,
    sign,
    write_checkpoint,
)
from slipway.audit.verify import VerifyReport, verify
from slipway.cli.audit import app as audit_cli
from slipway.store import open_engine, transaction, upgrade
from slipway.store.tables import audit_events, audit_head
from tests.audit.conftest import append_events

EVENTS = 10_000
LAST_CHECKPOINT = 9_500
TAIL = EVENTS - LAST_CHECKPOINT


@dataclass
class Log:
    db: Path
    audit_dir: Path

    @property
    def url(self) -> str:
        return f"sqlite:///{self.db}"

    def sql(self, *statements: str, params: tuple[object, ...] = ()) -> None:
        """Tamper as an attacker would: raw SQL on the file, no slipway code."""
        con = sqlite3.connect(self.db, isolation_level=None)
        try:
            con.execute("BEGIN")
            for statement in statements:
                con.execute(statement, params)
            con.execute("COMMIT")
        finally:
            con.close()

    def verify(self, **kwargs: object) -> VerifyReport:
        engine = open_engine(self.url)
        try:
            return verify(engine, self.audit_dir, **kwargs)  # type: ignore[arg-type]
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Log:
    base = tmp_path_factory.mktemp("tamper-original")
    log = Log(base / "slipway.db", base / "audit")
    engine = open_engine(log.url)
    upgrade(engine)
    ensure_signing_key(log.audit_dir)
    checkpointer = Checkpointer(engine, log.audit_dir, every_events=1000, every_s=1e9)
    for start in range(0, 9_000, 500):
        append_events(engine, 500, start=start)
        checkpointer.maybe_write()
    append_events(engine, 500, start=9_000)
    write_checkpoint(engine, log.audit_dir)
    append_events(engine, TAIL, start=LAST_CHECKPOINT)
    with engine.connect() as conn:
        # Fold the WAL into the main file, so copying the one file copies everything.
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    counts = [read_checkpoint(p).count for p in checkpoint_files(log.audit_dir)]
    assert counts == [*range(1000, 10_000, 1000), LAST_CHECKPOINT]
    return log


@pytest.fixture
def log(original: Log, tmp_path: Path) -> Iterator[Log]:
    copy = Log(tmp_path / "copy.db", tmp_path / "audit")
    shutil.copy(original.db, copy.db)
    for suffix in ("-wal", "-shm"):
        extra = original.db.with_name(original.db.name + suffix)
        if extra.exists():
            shutil.copy(extra, copy.db.with_name(copy.db.name + suffix))
    shutil.copytree(original.audit_dir, copy.audit_dir)
    yield copy


def _assert_bad(report: VerifyReport, seq: int, *words: str) -> None:
    assert not report.ok, report
    assert report.first_bad_seq == seq, report
    for word in words:
        assert word in report.reason, report


def test_untouched_copy_verifies_with_its_tail(log: Log) -> None:
    report = log.verify()
    assert report.ok, report
    assert report.events == EVENTS
    assert report.checkpoints_checked == 10
    assert report.verified_up_to == LAST_CHECKPOINT
    assert report.unverified_tail == TAIL
    assert report.first_bad_seq is None


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("after", json.dumps({"risk_tier": "low", "n": 4321, "tags": ["a", "ü"]})),
        ("actor", "someone-else"),
        ("reason", "nothing to see"),
        ("created_at", "2020-01-01 00:00:00.000000"),
    ],
)
def test_editing_an_event(log: Log, column: str, value: str) -> None:
    log.sql(f"UPDATE audit_events SET {column} = ? WHERE seq = 4321", params=(value,))
    _assert_bad(log.verify(), 4321, "changed")


def test_editing_an_event_in_the_tail(log: Log) -> None:
    log.sql("UPDATE audit_events SET actor = 'x' WHERE seq = 9700")
    _assert_bad(log.verify(), 9700)


def test_deleting_an_event(log: Log) -> None:
    log.sql("DELETE FROM audit_events WHERE seq = 4321")
    _assert_bad(log.verify(), 4321, "missing")


def test_deleting_an_event_and_renumbering(log: Log) -> None:
    log.sql(
        "DELETE FROM audit_events WHERE seq = 4321",
        "UPDATE audit_events SET seq = -(seq - 1) WHERE seq > 4321",
        "UPDATE audit_events SET seq = -seq WHERE seq < 0",
        "UPDATE audit_head SET seq = seq - 1",
    )
    _assert_bad(log.verify(), 4321, "prev_hash")


def test_inserting_an_event_with_a_correct_hash(log: Log) -> None:
    # Make room at 4321 by renumbering the rest, then insert an event that links to 4320.
    engine = open_engine(log.url)
    with engine.connect() as conn:
        prev = conn.execute(select(audit_events).where(audit_events.c.seq == 4320)).mappings()
        prev_event = dict(prev.one())
    engine.dispose()
    log.sql(
        "UPDATE audit_events SET seq = -(seq + 1) WHERE seq >= 4321",
        "UPDATE audit_events SET seq = -seq WHERE seq < 0",
        "UPDATE audit_head SET seq = seq + 1",
    )
    forged = {**prev_event, "seq": 4321, "id": "f" * 32, "actor": "mallory", "reason": "cover"}
    forged["prev_hash"] = prev_event["hash"]
    forged["hash"] = event_hash(prev_event["hash"], forged)
    engine = open_engine(log.url)
    with transaction(engine) as conn:
        conn.execute(audit_events.insert().values(**forged))
    engine.dispose()
    # The forged event itself is consistent; the one after it no longer links.
    _assert_bad(log.verify(), 4322)


def test_inserting_a_duplicate_seq(log: Log) -> None:
    # The primary key forbids a duplicate seq, so an attacker rebuilds the table without it.
    log.sql(
        "CREATE TABLE plain AS SELECT * FROM audit_events",
        "DROP TABLE audit_events",
        "ALTER TABLE plain RENAME TO audit_events",
        "INSERT INTO audit_events SELECT * FROM audit_events WHERE seq = 4321",
    )
    _assert_bad(log.verify(), 4321, "twice")


def test_swapping_two_events_contents(log: Log) -> None:
    # Swap what the events say; seq, links and hashes stay where they were.
    columns = ("actor", "action", "target", "before", "after", "reason", "request_id")
    sets = ", ".join(
        f"{c} = (SELECT {c} FROM audit_events o WHERE o.seq = 8000 + 5000 - audit_events.seq)"
        for c in columns
    )
    log.sql(f"UPDATE audit_events SET {sets} WHERE seq IN (5000, 8000)")
    _assert_bad(log.verify(), 5000, "changed")


def test_swapping_two_events_positions(log: Log) -> None:
    # Swap whole rows, hashes included, by swapping their seq numbers.
    log.sql(
        "UPDATE audit_events SET seq = -1 WHERE seq = 5000",
        "UPDATE audit_events SET seq = 5000 WHERE seq = 8000",
        "UPDATE audit_events SET seq = 8000 WHERE seq = -1",
    )
    _assert_bad(log.verify(), 5000, "prev_hash")


def test_rewriting_the_whole_chain_after_an_edit(log: Log) -> None:
    engine = open_engine(log.url)
    with transaction(engine) as conn:
        conn.execute(update(audit_events).where(audit_events.c.seq == 4321).values(actor="x"))
        running = conn.execute(select(audit_events.c.hash).where(audit_events.c.seq == 4320))
        prev_hash = running.scalar_one()
        rows = conn.execute(
            select(audit_events).where(audit_events.c.seq >= 4321).order_by(audit_events.c.seq)
        ).mappings()
        for row in list(rows):
            new_hash = event_hash(prev_hash, dict(row))
            conn.execute(
                update(audit_events)
                .where(audit_events.c.seq == row["seq"])
                .values(prev_hash=prev_hash, hash=new_hash)
            )
            prev_hash = new_hash
        conn.execute(update(audit_head).values(hash=prev_hash))
    engine.dispose()
    report = log.verify()
    # The chain itself is consistent again; the signed checkpoint at 5000 is not.
    _assert_bad(report, 4001, "000000005000.json", "rewritten")
    assert report.verified_up_to == 4000


def test_a_rewrite_in_the_unverified_tail_is_not_detectable(log: Log) -> None:
    """The documented limit: nothing signed covers the tail yet."""
    engine = open_engine(log.url)
    with transaction(engine) as conn:
        conn.execute(update(audit_events).where(audit_events.c.seq == 9900).values(actor="x"))
        prev_hash = conn.execute(
            select(audit_events.c.hash).where(audit_events.c.seq == 9899)
        ).scalar_one()
        for row in list(
            conn.execute(select(audit_events).where(audit_events.c.seq >= 9900)).mappings()
        ):
            new_hash = event_hash(prev_hash, dict(row))
            conn.execute(
                update(audit_events)
                .where(audit_events.c.seq == row["seq"])
                .values(prev_hash=prev_hash, hash=new_hash)
            )
            prev_hash = new_hash
        conn.execute(update(audit_head).values(hash=prev_hash))
    engine.dispose()
    report = log.verify()
    assert report.ok and report.unverified_tail == TAIL


def test_altering_a_checkpoint_file(log: Log) -> None:
    path = checkpoint_path(log.audit_dir, 5000)
    data = json.loads(path.read_text())
    data["head_hash"] = "a" * 64
    path.write_text(json.dumps(data))
    report = log.verify()
    assert not report.ok
    assert "000000005000.json: bad signature" in report.reason
    assert report.checkpoints_checked == 10
    assert report.first_bad_seq is None  # the events themselves are fine


def test_forging_a_checkpoint_with_another_key(log: Log, tmp_path: Path) -> None:
    other = tmp_path / "attacker"
    ensure_signing_key(other)
    forged = sign(
        load_private_key(other),
        9_800,
        "b" * 64,
        read_checkpoint(checkpoint_path(log.audit_dir, 9000)).timestamp,
    )
    checkpoint_path(log.audit_dir, 9_800).write_text(json.dumps(forged.to_dict()))
    report = log.verify()
    assert not report.ok
    assert "000000009800.json: bad signature" in report.reason


def test_replacing_the_key_pair_is_caught_by_a_pinned_public_key(log: Log, tmp_path: Path) -> None:
    pinned = tmp_path / "pinned.pub"
    shutil.copy(log.audit_dir / "signing.pub", pinned)
    # The attacker edits, rewrites the chain, and re-signs every checkpoint with a new key.
    engine = open_engine(log.url)
    with transaction(engine) as conn:
        conn.execute(update(audit_events).where(audit_events.c.seq == 10).values(actor="x"))
        prev_hash, heads = GENESIS, {}
        for row in list(conn.execute(select(audit_events).order_by("seq")).mappings()):
            new_hash = event_hash(prev_hash, dict(row))
            if row["hash"] != new_hash:
                conn.execute(
                    update(audit_events)
                    .where(audit_events.c.seq == row["seq"])
                    .values(prev_hash=prev_hash, hash=new_hash)
                )
            heads[row["seq"]], prev_hash = new_hash, new_hash
        conn.execute(update(audit_head).values(hash=prev_hash))
    engine.dispose()
    for name in ("signing.key", "signing.pub"):
        (log.audit_dir / name).unlink()
    ensure_signing_key(log.audit_dir)
    key = load_private_key(log.audit_dir)
    for path in checkpoint_files(log.audit_dir):
        old: Checkpoint = read_checkpoint(path)
        path.write_text(json.dumps(sign(key, old.count, heads[old.count], old.timestamp).to_dict()))
    assert log.verify().ok  # with the replaced key in place, everything agrees...
    report = log.verify(public_key=pinned)  # ...but not with the key kept elsewhere
    assert not report.ok and "bad signature" in report.reason


def test_truncating_the_tail_is_reported_as_unverified(log: Log) -> None:
    # A careful attacker also moves the head back, so the store is consistent.
    log.sql(
        "DELETE FROM audit_events WHERE seq > 9800",
        "UPDATE audit_head SET seq = 9800, hash = (SELECT hash FROM audit_events WHERE seq = 9800)",
    )
    report = log.verify()
    assert report.ok, report
    assert report.events == 9800
    assert report.verified_up_to == LAST_CHECKPOINT
    assert report.unverified_tail == 300


def test_truncating_without_moving_the_head(log: Log) -> None:
    log.sql("DELETE FROM audit_events WHERE seq > 9800")
    _assert_bad(log.verify(), 9801, "head")


def test_truncating_before_the_last_checkpoint(log: Log) -> None:
    log.sql(
        "DELETE FROM audit_events WHERE seq > 9200",
        "UPDATE audit_head SET seq = 9200, hash = (SELECT hash FROM audit_events WHERE seq = 9200)",
    )
    _assert_bad(log.verify(), 9201, "000000009500.json", "deleted")


def test_cli_verify_on_a_copy(log: Log) -> None:
    runner = CliRunner()
    args = ["verify", "--database-url", log.url, "--audit-dir", str(log.audit_dir)]
    ok = runner.invoke(audit_cli, args, env={"COLUMNS": "200"})
    assert ok.exit_code == 0, ok.output
    assert "ok" in ok.output and f"{TAIL} event(s) after the last checkpoint" in ok.output

    log.sql("UPDATE audit_events SET actor = 'x' WHERE seq = 1234")
    bad = runner.invoke(audit_cli, [*args, "--json"])
    assert bad.exit_code == 1, bad.output
    report = json.loads(bad.output)
    assert report["ok"] is False and report["first_bad_seq"] == 1234


def test_cli_verify_refuses_a_missing_store(tmp_path: Path) -> None:
    from slipway.errors import NotFound

    result = CliRunner().invoke(
        audit_cli, ["verify", "--database-url", f"sqlite:///{tmp_path / 'nope.db'}"]
    )
    assert isinstance(result.exception, NotFound)
    assert not (tmp_path / "nope.db").exists()
