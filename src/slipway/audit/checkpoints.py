"""Signed checkpoints of the audit chain, kept outside the store.

The hash chain alone proves only that the events agree with each other: someone who can
write to the database can edit an event and then recompute every later hash and the
head, and the chain is consistent again. A checkpoint closes that hole. Every N events or
T seconds the head (count, head hash, time) is signed with an Ed25519 key that lives in
the audit directory, not in the store, and written there as one small JSON file::

    audit_dir/signing.key                      PEM PKCS8, mode 0600 (dir 0700)
    audit_dir/signing.pub                      PEM
    audit_dir/checkpoints/000000001000.json    {"count", "head_hash", "time", "key_id",
                                                "signature"}

Rewriting the whole chain in the database cannot also forge a signature over the old
head, so ``audit verify`` finds the recomputed chain disagreeing with a checkpoint. The
protection is as strong as the separation: keep the audit directory (or at least a copy
of ``signing.pub`` and the checkpoint files) where the database's writers cannot reach.

A checkpoint is forward-only: before signing, the events since the previous checkpoint
are re-checked against it, so each signature extends an already verified prefix and a
chain that was tampered with is never signed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Engine, select

from slipway.audit.chain import GENESIS, canonical_json, event_hash
from slipway.errors import Conflict
from slipway.store.tables import audit_events, audit_head

log = logging.getLogger(__name__)

PRIVATE_KEY_FILE = "signing.key"
PUBLIC_KEY_FILE = "signing.pub"
CHECKPOINT_DIR = "checkpoints"
_PAGE = 1000


class ChainBroken(Conflict):
    """The events since the last checkpoint do not link up: refusing to sign them."""

    code = "audit_chain_broken"


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement: the chain's first ``count`` events end in ``head_hash``."""

    count: int
    head_hash: str
    time: str  # UTC, ISO 8601
    key_id: str
    signature: str  # base64 Ed25519 over canonical_json(signed_body())

    def signed_body(self) -> dict[str, Any]:
        return {"count": self.count, "head_hash": self.head_hash, "time": self.time}

    def to_dict(self) -> dict[str, Any]:
        return {**self.signed_body(), "key_id": self.key_id, "signature": self.signature}

    @property
    def timestamp(self) -> datetime:
        return _parse_time(self.time)

    @classmethod
    def from_dict(cls, data: Any) -> Checkpoint:
        """Parse a checkpoint file's content; ValueError names what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        missing = {"count", "head_hash", "time", "key_id", "signature"} - set(data)
        if missing:
            raise ValueError(f"missing {', '.join(sorted(missing))}")
        count = data["count"]
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValueError("count is not a non-negative integer")
        fields = {k: data[k] for k in ("head_hash", "time", "key_id", "signature")}
        for key, value in fields.items():
            if not isinstance(value, str):
                raise ValueError(f"{key} is not a string")
        _parse_time(fields["time"])
        return cls(count=count, **fields)


def checkpoint_path(audit_dir: Path, count: int) -> Path:
    return audit_dir / CHECKPOINT_DIR / f"{count:012d}.json"


# -- keys -------------------------------------------------------------------------------


def ensure_signing_key(audit_dir: Path) -> None:
    """Create the Ed25519 signing key pair in ``audit_dir`` unless it is already there."""
    audit_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(audit_dir, 0o700)
    private_path = audit_dir / PRIVATE_KEY_FILE
    public_path = audit_dir / PUBLIC_KEY_FILE
    if private_path.exists():
        if not public_path.exists():
            public = load_private_key(audit_dir).public_key()
            _write_atomic(public_path, _public_pem(public), mode=0o644)
        return
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Exclusive: two processes starting at once must not each install their own key.
    if not _write_atomic(private_path, pem, mode=0o600, replace=False):
        key = load_private_key(audit_dir)
    if not public_path.exists():
        _write_atomic(public_path, _public_pem(key.public_key()), mode=0o644)


def load_private_key(audit_dir: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key((audit_dir / PRIVATE_KEY_FILE).read_bytes(), None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{audit_dir / PRIVATE_KEY_FILE} is not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key")
    return key


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# -- signing and checking -----------------------------------------------------------------


def sign(private_key: Ed25519PrivateKey, count: int, head_hash: str, time: datetime) -> Checkpoint:
    stamp = time.astimezone(UTC).isoformat()
    body = {"count": count, "head_hash": head_hash, "time": stamp}
    signature = private_key.sign(canonical_json(body))
    return Checkpoint(
        count=count,
        head_hash=head_hash,
        time=stamp,
        key_id=key_id(private_key.public_key()),
        signature=base64.b64encode(signature).decode("ascii"),
    )


def signature_valid(checkpoint: Checkpoint, public_key: Ed25519PublicKey) -> bool:
    try:
        signature = base64.b64decode(checkpoint.signature, validate=True)
        public_key.verify(signature, canonical_json(checkpoint.signed_body()))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def checkpoint_files(audit_dir: Path) -> list[Path]:
    """Every checkpoint file, oldest (smallest count) first."""
    folder = audit_dir / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == ".json" and p.is_file())


def read_checkpoint(path: Path) -> Checkpoint:
    """Parse one checkpoint file; ValueError says what is wrong with it."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ValueError(f"unreadable: {exc}") from None
    checkpoint = Checkpoint.from_dict(data)
    if path.name != checkpoint_path(path.parent.parent, checkpoint.count).name:
        raise ValueError(f"file name does not match its count {checkpoint.count}")
    return checkpoint


def latest_checkpoint(audit_dir: Path) -> Checkpoint | None:
    """The newest readable checkpoint (the writer's own state; verify checks them all)."""
    for path in reversed(checkpoint_files(audit_dir)):
        try:
            return read_checkpoint(path)
        except ValueError:
            log.warning("skipping unreadable audit checkpoint %s", path.name)
    return None


# -- writing ------------------------------------------------------------------------------


class Checkpointer:
    """Writes a checkpoint every ``every_events`` events or ``every_s`` seconds.

    Call ``maybe_write()`` periodically (the server does, from its controller loop); it
    is cheap when there is nothing to do and safe to call from several replicas that
    share the audit directory (one file per count, created exclusively).
    """

    def __init__(
        self, engine: Engine, audit_dir: Path, every_events: int = 1000, every_s: float = 60.0
    ) -> None:
        if every_events < 1:
            raise ValueError("every_events must be at least 1")
        self.engine = engine
        self.audit_dir = audit_dir
        self.every_events = every_events
        self.every_s = every_s
        self._key: Ed25519PrivateKey | None = None
        self._last: Checkpoint | None = latest_checkpoint(audit_dir)
        # With no checkpoint yet, the clock starts now (not at the epoch), so the first
        # one follows the same schedule as every later one.
        self._started = datetime.now(UTC)

    @property
    def last(self) -> Checkpoint | None:
        return self._last

    def maybe_write(self, now: datetime | None = None) -> Checkpoint | None:
        """Write a checkpoint if one is due; return it, or None when none was due."""
        now = now or datetime.now(UTC)
        head_seq, _ = _read_head(self.engine)
        last_count = self._last.count if self._last else 0
        if head_seq <= last_count:
            return None
        due_by_count = head_seq - last_count >= self.every_events
        last_time = self._last.timestamp if self._last else self._started
        due_by_time = (now - last_time).total_seconds() >= self.every_s
        if not (due_by_count or due_by_time):
            return None
        return self.write(now)

    def write(self, now: datetime | None = None) -> Checkpoint:
        """Check the events since the last checkpoint, then sign and store the head."""
        now = now or datetime.now(UTC)
        if self._key is None:
            ensure_signing_key(self.audit_dir)
            self._key = load_private_key(self.audit_dir)
        # Another replica may have written newer checkpoints since we last looked.
        on_disk = latest_checkpoint(self.audit_dir)
        if on_disk and (self._last is None or on_disk.count > self._last.count):
            self._last = on_disk
        start = self._last or Checkpoint(0, GENESIS, "", "", "")
        head_seq, head_hash = _check_since(self.engine, start.count, start.head_hash)
        if self._last and head_seq == self._last.count:
            return self._last
        checkpoint = sign(self._key, head_seq, head_hash, now)
        path = checkpoint_path(self.audit_dir, head_seq)
        payload = json.dumps(checkpoint.to_dict(), indent=2, sort_keys=True).encode() + b"\n"
        if not _write_atomic(path, payload, mode=0o644, replace=False):
            checkpoint = read_checkpoint(path)  # idempotent: whoever wrote it first wins
        self._last = checkpoint
        log.info("audit checkpoint %s at seq %d", path.name, head_seq)
        return checkpoint


def write_checkpoint(engine: Engine, audit_dir: Path) -> Checkpoint:
    """Write a checkpoint of the current head now, whatever the schedule says."""
    return Checkpointer(engine, audit_dir).write()


def _read_head(engine: Engine) -> tuple[int, str]:
    with engine.connect() as conn:
        row = conn.execute(
            select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
        ).one()
    return int(row.seq), str(row.hash)


def _check_since(engine: Engine, start_seq: int, start_hash: str) -> tuple[int, str]:
    """Re-link the events after ``start_seq`` up to the head; return the head.

    Raises ChainBroken where an event does not follow from the previous one or the head
    disagrees with the last event, so a tampered chain is never signed.
    """
    with engine.connect() as conn, conn.begin():
        head = conn.execute(
            select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
        ).one()
        head_seq = int(head.seq)
        seq, running = start_seq, start_hash
        while seq < head_seq:
            rows = conn.execute(
                select(audit_events)
                .where(audit_events.c.seq > seq, audit_events.c.seq <= head_seq)
                .order_by(audit_events.c.seq)
                .limit(_PAGE)
            ).mappings()
            batch = 0
            for row in rows:
                batch += 1
                event = dict(row)
                if event["seq"] != seq + 1:
                    raise ChainBroken(f"audit event {seq + 1} is missing; not signing")
                if event["prev_hash"] != running or event_hash(running, event) != event["hash"]:
                    raise ChainBroken(f"audit event {seq + 1} does not verify; not signing")
                seq, running = event["seq"], event["hash"]
            if batch == 0:
                raise ChainBroken(f"audit head is at {head_seq} but events stop at {seq}")
        if seq != head_seq or running != head.hash:
            raise ChainBroken("audit head does not match the last event; not signing")
    return head_seq, running


def _write_atomic(path: Path, data: bytes, *, mode: int, replace: bool = True) -> bool:
    """Write temp, fsync, then rename (or link, when ``replace`` is False, so an existing
    file is kept); fsync the directory. Return False if the file existed and was kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("time has no time zone")
    return parsed.astimezone(UTC)
