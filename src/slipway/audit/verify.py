"""``audit verify``: recompute the chain, check every signed checkpoint against it.

What each check catches (an attacker with write access to the database):

    edit one event                 its recomputed hash differs from the stored one
    delete an event                a gap in seq (or, renumbered, a broken prev_hash link)
    insert an event                a duplicate seq or a broken prev_hash link
    swap two events                both hashes and links break at the first of them
    edit, then rewrite the chain   consistent chain, but it disagrees with a checkpoint
    truncate before a checkpoint   the checkpoint counts more events than exist
    truncate after the last one    undetectable by design: reported as the unverified tail

``first_bad_seq`` is the first event the verifier cannot vouch for. For a rewritten
chain that is the event after the last checkpoint that still matched: the edit lies
somewhere between it and the checkpoint that did not.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, Engine, func, select

from slipway.audit.chain import GENESIS, event_hash
from slipway.audit.checkpoints import (
    PUBLIC_KEY_FILE,
    Checkpoint,
    checkpoint_files,
    key_id,
    load_public_key,
    read_checkpoint,
    signature_valid,
)
from slipway.store.engine import backend_name
from slipway.store.tables import audit_events, audit_head

PAGE = 1000


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    events: int
    first_bad_seq: int | None
    reason: str
    checkpoints_checked: int  # checkpoint files examined (good or bad)
    verified_up_to: int  # events covered by a signed checkpoint that matched
    unverified_tail: int  # events after that: consistent, but no signature vouches for them

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify(engine: Engine, audit_dir: Path, *, public_key: Path | None = None) -> VerifyReport:
    """Check the whole audit log in ``engine`` against the checkpoints in ``audit_dir``.

    ``public_key`` defaults to ``audit_dir/signing.pub``; pass a copy kept elsewhere to
    rule out a replaced key pair. Reads events in pages, so memory stays flat.
    """
    problems: list[str] = []
    checkpoints = _load_checkpoints(audit_dir, public_key, problems)
    files_checked = len(checkpoint_files(audit_dir))
    by_count = {c.count: (path, c) for path, c in checkpoints}

    bad: tuple[int, str] | None = None  # (seq, reason) of the first broken event
    last_matched = 0  # highest checkpoint count the chain agreed with
    seq, running = 0, GENESIS
    if 0 in by_count and by_count[0][1].head_hash != GENESIS:
        problems.append(f"checkpoint {by_count[0][0].name}: an empty log must end in GENESIS")
    with _snapshot(engine) as conn:
        total = int(conn.execute(select(func.count()).select_from(audit_events)).scalar_one())
        head = conn.execute(
            select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
        ).one_or_none()
        after: int | None = None
        while bad is None:
            query = select(audit_events).order_by(audit_events.c.seq).limit(PAGE)
            # Keyset paging on seq; ">=" after a page, so a duplicated seq is still seen.
            if after is not None:
                query = query.where(audit_events.c.seq >= after).offset(1)
            rows = [dict(r) for r in conn.execute(query).mappings()]
            if not rows:
                break
            for event in rows:
                bad = _check_event(event, seq, running)
                if bad is not None:
                    break
                seq, running = int(event["seq"]), str(event["hash"])
                if seq in by_count:
                    path, checkpoint = by_count[seq]
                    if checkpoint.head_hash != running:
                        bad = (
                            last_matched + 1,
                            f"events 1..{seq} do not match the signed checkpoint {path.name} "
                            f"(the chain was rewritten after seq {last_matched})",
                        )
                        break
                    last_matched = seq
            after = int(rows[-1]["seq"])
            if len(rows) < PAGE:
                break

    if bad is None:
        beyond = [(p, c) for p, c in checkpoints if c.count > seq]
        if beyond:
            path, checkpoint = beyond[0]
            bad = (
                seq + 1,
                f"checkpoint {path.name} covers {checkpoint.count} events but the log ends at "
                f"seq {seq} (events were deleted)",
            )
    if bad is None:
        head_problem = _check_head(head, seq, running)
        if head_problem is not None:
            bad = head_problem
    if bad is not None:
        problems.insert(0, f"event {bad[0]}: {bad[1]}")
    if not checkpoints and not problems and total:
        problems_note = "no checkpoints yet: the whole log is an unverified tail"
    else:
        problems_note = ""
    verified = min(last_matched, bad[0] - 1) if bad else last_matched
    return VerifyReport(
        ok=not problems,
        events=total,
        first_bad_seq=bad[0] if bad else None,
        reason="; ".join(problems) or problems_note or "ok",
        checkpoints_checked=files_checked,
        verified_up_to=verified,
        unverified_tail=max(total - verified, 0),
    )


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """One read transaction that sees one state of the log, even while appends go on
    (SQLite's read transactions already do; PostgreSQL needs REPEATABLE READ)."""
    with engine.connect() as plain:
        conn = plain
        if backend_name(engine) == "postgresql":
            conn = plain.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


def _check_event(event: dict[str, Any], seq: int, running: str) -> tuple[int, str] | None:
    """Whether ``event`` follows the event at ``seq`` whose hash is ``running``."""
    got = int(event["seq"])
    if got <= seq:
        return got, f"seq {got} appears twice (an event was inserted)"
    if got != seq + 1:
        return seq + 1, f"seq {seq + 1} is missing (an event was deleted)"
    if event["prev_hash"] != running:
        return got, f"prev_hash does not link to event {seq} (events removed, inserted or moved)"
    if event_hash(running, event) != event["hash"]:
        return got, "hash does not match the event's contents (the event was changed)"
    return None


def _check_head(head: Any, seq: int, running: str) -> tuple[int, str] | None:
    if head is None:
        return seq + 1, "the audit_head row is missing"
    if int(head.seq) > seq:
        return seq + 1, f"audit head is at seq {head.seq} but the log ends at {seq} (deleted)"
    if int(head.seq) < seq:
        return int(head.seq) + 1, f"events after the head (seq {head.seq}) were added"
    if head.hash != running:
        return seq, "audit head hash does not match the last event"
    return None


def _load_checkpoints(
    audit_dir: Path, public_key: Path | None, problems: list[str]
) -> list[tuple[Path, Checkpoint]]:
    """The checkpoints whose signatures hold; every other one is a problem."""
    files = checkpoint_files(audit_dir)
    if not files:
        return []
    key_path = public_key or audit_dir / PUBLIC_KEY_FILE
    try:
        key: Ed25519PublicKey | None = load_public_key(key_path)
    except (OSError, ValueError) as exc:
        problems.append(f"cannot check {len(files)} checkpoint(s): {key_path.name}: {exc}")
        key = None
    good: list[tuple[Path, Checkpoint]] = []
    for path in files:
        try:
            checkpoint = read_checkpoint(path)
        except ValueError as exc:
            problems.append(f"checkpoint {path.name}: {exc}")
            continue
        if key is None:
            continue
        if checkpoint.key_id != key_id(key) or not signature_valid(checkpoint, key):
            problems.append(f"checkpoint {path.name}: bad signature")
            continue
        good.append((path, checkpoint))
    return good
