"""The quarantine: rows a contract refused, kept with their reasons, listable, replayable.

Each row is stored twice: as shown (fields marked ``pii`` replaced by a keyed hash, so
equal values stay recognisable without being readable) and sealed (the row as sent,
encrypted with Fernet) so that ``replay`` can resend it once the upstream is fixed or a
new version accepts it. The key is ``quarantine_key`` (one per deployment, shared by
replicas); without it sealed rows cannot be read.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import hmac
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from slipway.audit import Actor, append
from slipway.contracts.schema import Contract
from slipway.errors import NotFound, ValidationFailed
from slipway.ids import new_id, utcnow
from slipway.settings import Settings, resolve_secret
from slipway.store.engine import transaction
from slipway.store.tables import quarantine

STATUSES = ("open", "resolved")


def load_key(settings: Settings) -> bytes:
    """The 32-byte quarantine key: configured, or a file in $SLIPWAY_HOME made on first use."""
    if settings.quarantine_key:
        raw = resolve_secret(str(settings.quarantine_key))
        try:
            key = base64.urlsafe_b64decode(raw)
        except ValueError:
            key = b""
        if len(key) != 32:
            raise ValidationFailed.field(
                "SLIPWAY_QUARANTINE_KEY", "must name 32 bytes in URL-safe base64"
            )
        return key
    path = settings.home_path / "quarantine.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(base64.urlsafe_b64encode(os.urandom(32)))
    return base64.urlsafe_b64decode(Path(path).read_bytes().strip())


@dataclass(frozen=True)
class Sealer:
    key: bytes

    def mask(self, value: Any) -> str:
        digest = hmac.new(self._mask_key, json.dumps(value).encode(), hashlib.sha256)
        return "pii:" + digest.hexdigest()[:16]

    def seal(self, row: dict[str, Any]) -> str:
        from cryptography.fernet import Fernet

        return Fernet(base64.urlsafe_b64encode(self.key)).encrypt(json.dumps(row).encode()).decode()

    def unseal(self, token: str) -> dict[str, Any]:
        from cryptography.fernet import Fernet

        row: dict[str, Any] = json.loads(
            Fernet(base64.urlsafe_b64encode(self.key)).decrypt(token.encode())
        )
        return row

    @property
    def _mask_key(self) -> bytes:
        # A key of its own for masking, so hashes reveal nothing about the sealing key.
        return hashlib.sha256(b"slipway-pii-mask" + self.key).digest()

    def shown(self, row: Any, contract: Contract) -> Any:
        if not isinstance(row, dict):
            return row
        pii = set(contract.pii_fields)
        return {k: (self.mask(v) if k in pii and v is not None else v) for k, v in row.items()}


def quarantine_rows(
    sealer: Sealer,
    contract: Contract,
    rows: list[Any],
    errors: dict[int, list[dict[str, Any]]],
    *,
    request_id: str,
    endpoint: str,
    model: str,
    version: int,
    version_id: str,
    caller: str,
    route: str,
) -> list[dict[str, Any]]:
    """The quarantine records for the refused rows of one request (not yet stored)."""
    now = utcnow()
    return [
        {
            "id": new_id(),
            "created_at": now,
            "request_id": request_id,
            "row_index": i,
            "endpoint": endpoint,
            "model": model,
            "version": version,
            "version_id": version_id,
            "caller": caller,
            "route": route,
            "row": sealer.shown(rows[i], contract),
            "sealed": sealer.seal(rows[i] if isinstance(rows[i], dict) else {"_": rows[i]}),
            "reasons": reasons,
            "status": "open",
            "attempts": 0,
            "resolved_at": None,
            "resolved_by": None,
            "prediction_id": None,
        }
        for i, reasons in sorted(errors.items())
    ]


def view(row: Any) -> dict[str, Any]:
    data = dict(row._asdict())
    data.pop("sealed", None)
    for key in ("created_at", "resolved_at"):
        data[key] = data[key].isoformat() if data[key] else None
    return data


class QuarantineService:
    def __init__(self, engine: Engine, sealer: Sealer) -> None:
        self.engine = engine
        self.sealer = sealer

    def list(
        self, endpoint: str, *, status: str | None = None, limit: int = 100, after: str = ""
    ) -> dict[str, Any]:
        """One page of rows, with the endpoint's open and resolved counts."""
        with self.engine.connect() as conn:
            counts: dict[str, int] = dict(
                conn.execute(
                    select(quarantine.c.status, func.count())
                    .where(quarantine.c.endpoint == endpoint)
                    .group_by(quarantine.c.status)
                ).all()
            )
        return {
            "endpoint": endpoint,
            "open": int(counts.get("open", 0)),
            "resolved": int(counts.get("resolved", 0)),
            "rows": self._page(endpoint, status, limit, after),
        }

    def iter_all(self, endpoint: str, status: str | None = None) -> Iterator[dict[str, Any]]:
        after = ""
        while True:
            page = self._page(endpoint, status, 500, after)
            if not page:
                return
            yield from page
            after = page[-1]["id"]

    def _page(
        self, endpoint: str, status: str | None, limit: int, after: str
    ) -> builtins.list[dict[str, Any]]:
        if status is not None and status not in STATUSES:
            raise ValidationFailed.field("status", f"must be one of {', '.join(STATUSES)}")
        where = [quarantine.c.endpoint == endpoint, quarantine.c.id > after]
        if status:
            where.append(quarantine.c.status == status)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(quarantine).where(*where).order_by(quarantine.c.id).limit(limit)
            ).all()
        return [view(r) for r in rows]

    def get(self, quarantine_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(quarantine).where(quarantine.c.id == quarantine_id)).first()
        if row is None:
            raise NotFound(f"quarantined row {quarantine_id!r} not found")
        return view(row)

    def open_rows(
        self, endpoint: str, ids: builtins.list[str] | None, limit: int
    ) -> builtins.list[tuple[str, dict[str, Any]]]:
        """(id, original row) of open rows to replay, oldest first."""
        query = select(quarantine.c.id, quarantine.c.sealed).where(
            quarantine.c.endpoint == endpoint, quarantine.c.status == "open"
        )
        if ids:
            query = query.where(quarantine.c.id.in_(ids))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(quarantine.c.id).limit(limit)).all()
        return [(r.id, self.sealer.unseal(r.sealed)) for r in rows]

    def mark(
        self,
        outcomes: builtins.list[tuple[str, str | None, builtins.list[dict[str, Any]] | None]],
        *,
        actor: Actor,
        endpoint: str,
        version: int | None,
    ) -> int:
        """Record replay outcomes — (id, prediction id or None, new reasons or None) — and
        the audit event, in one transaction; returns how many rows were resolved."""
        now = utcnow()
        resolved = sum(1 for _, prediction_id, _ in outcomes if prediction_id)
        with transaction(self.engine) as conn:
            append(
                conn,
                actor,
                "quarantine.replay",
                target_kind="endpoint",
                target=endpoint,
                after={"replayed": len(outcomes), "resolved": resolved, "version": version},
            )
            for qid, prediction_id, reasons in outcomes:
                values: dict[str, Any] = {"attempts": quarantine.c.attempts + 1}
                if prediction_id is not None:
                    values.update(
                        status="resolved",
                        resolved_at=now,
                        resolved_by=actor.name,
                        prediction_id=prediction_id,
                    )
                elif reasons is not None:
                    values["reasons"] = reasons
                conn.execute(quarantine.update().where(quarantine.c.id == qid).values(**values))
        return resolved
