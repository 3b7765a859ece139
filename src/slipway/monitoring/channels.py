"""Notification channels: where alerts go, and the kinds that send them.

A kind is a narrow protocol, ``send(channel, payload) -> SendResult``, registered through
the ``slipway.channels`` entry point group like the built-ins ``webhook``, ``slack`` and
``log``. A kind never raises on a network failure: it returns ``ok=False`` with a short
error that holds no secret. Webhook and Slack requests are signed when the channel has a
``secret_ref`` (``env:NAME`` or ``file:PATH``, resolved at send time)::

    X-Slipway-Timestamp: 1718000000
    X-Slipway-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Row, select
from sqlalchemy.exc import IntegrityError

from slipway.audit import Actor, append
from slipway.errors import Conflict, NotFound, ValidationFailed
from slipway.ids import new_id, utcnow
from slipway.plugins import Registry
from slipway.registry.models import check_slug
from slipway.settings import resolve_secret
from slipway.store.engine import transaction
from slipway.store.tables import channels

__all__ = [
    "LOG_CHANNEL",
    "SEVERITIES",
    "Channel",
    "ChannelConfig",
    "ChannelKind",
    "ChannelService",
    "LogChannel",
    "SendResult",
    "SlackChannel",
    "WebhookChannel",
    "available_kinds",
    "get_kind",
    "matching_channels",
    "sample_payload",
    "send",
    "severity_rank",
    "slack_message",
]

_GROUP = "slipway.channels"
SEVERITIES = ("info", "warning", "critical")
TIMEOUT_S = 5.0
log = logging.getLogger("slipway.alerts")


@dataclass(frozen=True)
class ChannelConfig:
    """What a kind needs to send: where to, and the reference of the signing secret."""

    name: str
    kind: str
    url: str = ""
    secret_ref: str = ""


# Every alert is also written to the server log, whatever channels exist.
LOG_CHANNEL = ChannelConfig(name="log", kind="log")


@dataclass(frozen=True)
class SendResult:
    ok: bool
    status: int | None = None
    error: str = ""


class ChannelKind(Protocol):
    def send(self, channel: ChannelConfig, payload: dict[str, Any]) -> SendResult: ...


def _shown_url(url: str) -> str:
    """Scheme and host only: webhook paths often carry a token (Slack's always do)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if not parts.hostname:
        return ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}/…"  # never user:password@


@dataclass(frozen=True)
class Channel:
    id: str
    name: str
    kind: str
    url: str = ""
    secret_ref: str = ""
    endpoints: list[str] = field(default_factory=list)
    min_severity: str = "info"
    enabled: bool = True
    created_by: str = ""
    created_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Row[Any]) -> Channel:
        return cls(**row._asdict())

    @property
    def config(self) -> ChannelConfig:
        return ChannelConfig(self.name, self.kind, self.url, self.secret_ref)

    def accepts(self, endpoint: str, severity: str) -> bool:
        """Whether an alert of ``severity`` on ``endpoint`` goes to this channel."""
        return (
            self.enabled
            and severity_rank(severity) >= severity_rank(self.min_severity)
            and (not self.endpoints or endpoint in self.endpoints)
        )

    def to_dict(self) -> dict[str, Any]:
        # The secret's reference stays out too: it says where the secret lives.
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "url": _shown_url(self.url),
            "has_secret": bool(self.secret_ref),
            "endpoints": list(self.endpoints),
            "min_severity": self.min_severity,
            "enabled": self.enabled,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


def severity_rank(severity: str) -> int:
    """0 for info, 1 for warning, 2 for critical; unknown severities rank as critical."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES) - 1


# --- the kind registry ---------------------------------------------------------------

_KINDS: Registry[ChannelKind] = Registry(_GROUP, "kind")
available_kinds = _KINDS.names
get_kind = _KINDS.get


def send(channel: ChannelConfig, payload: dict[str, Any]) -> SendResult:
    """Send with the channel's kind; any failure, even a plugin's bug, is a result."""
    try:
        return get_kind(channel.kind).send(channel, payload)
    except Exception as exc:  # noqa: BLE001 - a channel must never break the sender
        return SendResult(False, None, f"{channel.kind} channel failed: {type(exc).__name__}")


# --- built-in kinds ------------------------------------------------------------------


def _post_signed(channel: ChannelConfig, body: dict[str, Any]) -> SendResult:
    data = json.dumps(body, separators=(",", ":"), sort_keys=True, default=str).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "slipway-alerts"}
    if channel.secret_ref:
        try:
            secret = resolve_secret(channel.secret_ref)
        except OSError:
            secret = ""
        if not secret:
            return SendResult(False, None, "secret_ref could not be resolved (unset or unreadable)")
        timestamp = str(int(time.time()))
        digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + data, hashlib.sha256)
        headers["X-Slipway-Timestamp"] = timestamp
        headers["X-Slipway-Signature"] = f"sha256={digest.hexdigest()}"
    # Imported here: alerts are rare, and httpx is about 0.1-0.2 s of every server's start.
    import httpx

    try:
        response = httpx.post(channel.url, content=data, headers=headers, timeout=TIMEOUT_S)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        # Only the exception's type and text, with the URL cut out: Slack-style URLs
        # embed a token.
        text = str(exc).replace(channel.url, "<url>")[:200]
        return SendResult(False, None, f"{type(exc).__name__}: {text}".rstrip(": "))
    if 200 <= response.status_code < 300:
        return SendResult(True, response.status_code)
    return SendResult(False, response.status_code, f"HTTP {response.status_code}")


class WebhookChannel:
    """POST the alert payload as JSON."""

    def send(self, channel: ChannelConfig, payload: dict[str, Any]) -> SendResult:
        return _post_signed(channel, payload)


class SlackChannel:
    """POST a Slack message (incoming-webhook format) built from the alert payload."""

    def send(self, channel: ChannelConfig, payload: dict[str, Any]) -> SendResult:
        return _post_signed(channel, slack_message(payload))


class LogChannel:
    """One JSON line on the ``slipway.alerts`` logger; always succeeds."""

    def send(self, channel: ChannelConfig, payload: dict[str, Any]) -> SendResult:
        line = {k: v for k, v in payload.items() if k != "evidence"}
        level = logging.WARNING if payload.get("event") == "firing" else logging.INFO
        if payload.get("event") == "firing" and payload.get("severity") == "critical":
            level = logging.ERROR
        log.log(level, "alert %s", json.dumps(line, sort_keys=True, default=str))
        return SendResult(True)


def slack_message(payload: dict[str, Any]) -> dict[str, Any]:
    """A Slack body: ``text`` for notifications, ``blocks`` for the message itself."""
    event = payload.get("event", "firing")
    severity = str(payload.get("severity", "")).upper()
    icon = {"firing": ":rotating_light:", "resolved": ":white_check_mark:"}.get(event, ":bell:")
    subject = f"{payload.get('metric', '')}" + (
        f" of {payload['subject']}" if payload.get("subject") else ""
    )
    headline = f"{icon} [{severity}] {event}: {subject} on {payload.get('endpoint', '')}"
    runbook = payload.get("runbook_url") or ""
    fields = [
        ("Severity", severity.lower()),
        ("Endpoint", payload.get("endpoint", "")),
        ("Model", f"{payload.get('model', '')} v{payload.get('version', '')}"),
        ("Metric", subject),
        (
            "Value",
            f"{_fmt(payload.get('value'))} {payload.get('op', '')} "
            f"{_fmt(payload.get('threshold'))} (threshold)",
        ),
        ("Owner", payload.get("owner") or "-"),
        ("On-call", payload.get("oncall") or "-"),
        ("Runbook", f"<{runbook}|runbook>" if runbook else "-"),
    ]
    return {
        "text": f"{headline}: {payload.get('summary', '')}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": headline[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": payload.get("summary", "")}},
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in fields],
            },
        ],
    }


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# --- the service ---------------------------------------------------------------------

_URL = re.compile(r"^https?://[^\s/]+", re.IGNORECASE)
_NEEDS_URL = ("webhook", "slack")


def matching_channels(conn: Connection, endpoint: str, severity: str) -> list[Channel]:
    """Configured channels that take alerts of ``severity`` on ``endpoint``, by name."""
    rows = conn.execute(select(channels).order_by(channels.c.name))
    return [c for c in (Channel.from_row(r) for r in rows) if c.accepts(endpoint, severity)]


class ChannelService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(
        self,
        name: str,
        kind: str,
        *,
        url: str = "",
        secret_ref: str = "",
        endpoints: Sequence[str] = (),
        min_severity: str = "info",
        actor: Actor,
    ) -> Channel:
        check_slug(name)
        if name == LOG_CHANNEL.name:
            raise ValidationFailed.field("name", "'log' is the built-in log channel")
        if kind not in available_kinds():
            known = ", ".join(available_kinds())
            raise ValidationFailed.field("kind", f"must be one of {known}")
        if kind in _NEEDS_URL and not (isinstance(url, str) and _URL.match(url)):
            raise ValidationFailed.field("url", f"an http(s) URL is required for {kind}")
        if secret_ref and not re.match(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$", secret_ref):
            # The value is not echoed: it may be the secret pasted by mistake.
            raise ValidationFailed.field(
                "secret_ref", "must be a reference, env:NAME or file:PATH, never the secret"
            )
        if isinstance(endpoints, str):
            raise ValidationFailed.field("endpoints", "must be a list of endpoint names")
        for endpoint in endpoints:
            check_slug(endpoint, "endpoints")
        if min_severity not in SEVERITIES:
            raise ValidationFailed.field("min_severity", f"must be one of {', '.join(SEVERITIES)}")
        channel = Channel(
            id=new_id(),
            name=name,
            kind=kind,
            url=url,
            secret_ref=secret_ref,
            endpoints=sorted(set(endpoints)),
            min_severity=min_severity,
            enabled=True,
            created_by=actor.name,
            created_at=utcnow(),
        )
        try:
            with transaction(self.engine) as conn:
                conn.execute(channels.insert().values(**asdict(channel)))
                append(
                    conn,
                    actor,
                    "channel.create",
                    target_kind="channel",
                    target=name,
                    after=channel.to_dict(),
                )
        except IntegrityError:
            raise Conflict(f"channel {name!r} already exists") from None
        return channel

    def get(self, name: str) -> Channel:
        with self.engine.connect() as conn:
            row = conn.execute(select(channels).where(channels.c.name == name)).first()
        if row is None:
            raise NotFound(f"channel {name!r} not found")
        return Channel.from_row(row)

    def config(self, name: str) -> ChannelConfig:
        """What to send with: the built-in log channel, or a configured one."""
        return LOG_CHANNEL if name == LOG_CHANNEL.name else self.get(name).config

    def delete(self, name: str, actor: Actor) -> None:
        with transaction(self.engine) as conn:
            row = conn.execute(select(channels).where(channels.c.name == name)).first()
            if row is None:
                raise NotFound(f"channel {name!r} not found")
            conn.execute(channels.delete().where(channels.c.id == row.id))
            append(
                conn,
                actor,
                "channel.delete",
                target_kind="channel",
                target=name,
                before=Channel.from_row(row).to_dict(),
            )

    def test(self, name: str) -> SendResult:
        """Send a sample alert (``event: "test"``) through the channel now."""
        return send(self.config(name), sample_payload())

    def list(self) -> list[Channel]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(channels).order_by(channels.c.name))
            return [Channel.from_row(r) for r in rows]


def sample_payload() -> dict[str, Any]:
    now = utcnow().isoformat()
    return {
        "event": "test",
        "alert_id": "test",
        "severity": "info",
        "endpoint": "example",
        "model": "example",
        "version": 1,
        "monitor": "example-monitor",
        "metric": "accuracy",
        "subject": "",
        "value": 0.82,
        "threshold": 0.9,
        "op": "<",
        "started_at": now,
        "resolved_at": None,
        "owner": "",
        "oncall": "",
        "runbook_url": "",
        "evidence": {},
        "summary": "Test notification from slipway: this channel is reachable.",
    }
