"""Channels: signed webhook and Slack posts to a real HTTP receiver, the log kind, and the
channel service on both store backends."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import Engine, select

from slipway.audit import Actor
from slipway.errors import Conflict, NotFound, ValidationFailed
from slipway.monitoring import channels as channels_module
from slipway.monitoring.channels import (
    ChannelConfig,
    ChannelService,
    SendResult,
    available_kinds,
    get_kind,
    sample_payload,
    send,
    slack_message,
)
from slipway.store.tables import audit_events

SECRET = "s3cret-hmac-key-7f1e"


class Receiver:
    """A real HTTP server on 127.0.0.1 that records every POST and answers with the
    next scripted status (200 once the script runs out)."""

    def __init__(self, statuses: Sequence[int] = ()) -> None:
        self.statuses = list(statuses)
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body}
                    )
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # A short poll interval: shutdown() waits for one poll.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def bodies(self) -> list[Any]:
        return [json.loads(r["body"]) for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def dead_url() -> str:
    """A URL nothing listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def verify_signature(request: dict[str, Any], secret: str) -> None:
    headers = {k.lower(): v for k, v in request["headers"].items()}
    timestamp = headers["x-slipway-timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + request["body"], hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(headers["x-slipway-signature"], f"sha256={expected}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_builtin_kinds_are_registered_as_entry_points() -> None:
    assert {"webhook", "slack", "log"} <= set(available_kinds())
    with pytest.raises(ValidationFailed) as err:
        get_kind("carrier-pigeon")
    assert err.value.details[0]["field"] == "kind"


def test_webhook_posts_the_payload_signed_with_the_referenced_secret(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    payload = sample_payload()
    result = send(
        ChannelConfig("hook", "webhook", receiver.url + "/in", "env:HOOK_SECRET"), payload
    )
    assert result == SendResult(True, 200, "")
    [request] = receiver.requests
    assert request["path"] == "/in"
    assert request["headers"]["Content-Type"] == "application/json"
    assert json.loads(request["body"]) == payload
    verify_signature(request, SECRET)
    with pytest.raises(AssertionError):
        verify_signature(request, "another-secret")


def test_webhook_secret_from_a_file(receiver: Receiver, tmp_path: Any) -> None:
    path = tmp_path / "hook.key"
    path.write_text(SECRET + "\n")
    result = send(ChannelConfig("hook", "webhook", receiver.url, f"file:{path}"), {"a": 1})
    assert result.ok
    verify_signature(receiver.requests[0], SECRET)


def test_webhook_without_secret_is_unsigned(receiver: Receiver) -> None:
    assert send(ChannelConfig("hook", "webhook", receiver.url), {"a": 1}).ok
    assert "X-Slipway-Signature" not in receiver.requests[0]["headers"]


def test_unresolvable_secret_sends_nothing(receiver: Receiver, tmp_path: Any) -> None:
    for ref in ("env:SLIPWAY_TEST_UNSET_SECRET", f"file:{tmp_path / 'missing.key'}"):
        result = send(ChannelConfig("hook", "webhook", receiver.url, ref), {"a": 1})
        assert not result.ok
        assert "secret_ref" in result.error
    assert receiver.requests == []


def test_webhook_non_2xx_and_unreachable_are_results_not_exceptions(receiver: Receiver) -> None:
    receiver.statuses = [500]
    assert send(ChannelConfig("hook", "webhook", receiver.url), {}) == SendResult(
        False, 500, "HTTP 500"
    )
    # A Slack-style URL carries a token in its path; errors must not repeat it.
    url = dead_url() + "/services/T000/B000/tok-XYZ123"
    result = send(ChannelConfig("hook", "webhook", url), {})
    assert not result.ok and result.status is None
    assert result.error.startswith("ConnectError")
    assert "tok-XYZ123" not in result.error


def test_slack_body_carries_the_alert_facts(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    payload = {
        **sample_payload(),
        "event": "firing",
        "severity": "critical",
        "endpoint": "churn",
        "model": "churn-model",
        "version": 3,
        "metric": "psi",
        "subject": "age",
        "value": 0.3125,
        "threshold": 0.2,
        "op": ">",
        "owner": "team-a@example.com",
        "oncall": "pager-a",
        "runbook_url": "https://runbooks.example.com/churn",
        "summary": "Critical: psi of age is high.",
    }
    assert send(ChannelConfig("s", "slack", receiver.url, "env:HOOK_SECRET"), payload).ok
    verify_signature(receiver.requests[0], SECRET)
    body = receiver.bodies()[0]
    assert body == slack_message(payload)
    assert set(body) == {"text", "blocks"}
    assert "[CRITICAL] firing: psi of age on churn" in body["text"]
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "section"]
    facts = "\n".join(f["text"] for f in body["blocks"][2]["fields"])
    for expected in (
        "churn-model v3",
        "0.3125 > 0.2",
        "team-a@example.com",
        "pager-a",
        "<https://runbooks.example.com/churn|runbook>",
    ):
        assert expected in facts


def test_log_kind_writes_one_json_line(caplog: pytest.LogCaptureFixture) -> None:
    payload = {**sample_payload(), "event": "firing", "severity": "critical"}
    with caplog.at_level(logging.INFO, logger="slipway.alerts"):
        assert send(ChannelConfig("log", "log"), payload).ok
    [record] = [r for r in caplog.records if r.name == "slipway.alerts"]
    assert record.levelno == logging.ERROR
    line = json.loads(record.getMessage().removeprefix("alert "))
    assert line["alert_id"] == payload["alert_id"] and "evidence" not in line


def test_a_failing_plugin_kind_becomes_a_failed_result(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def send(self, channel: ChannelConfig, payload: dict[str, Any]) -> SendResult:
            raise RuntimeError("plugin bug")

    monkeypatch.setitem(channels_module._KINDS._cache, "broken", Broken())
    result = send(ChannelConfig("x", "broken"), {})
    assert result == SendResult(False, None, "broken channel failed: RuntimeError")


# --- the service, on SQLite and PostgreSQL ------------------------------------------


INVALID = [
    ({"name": "Bad Name", "kind": "webhook", "url": "https://x.example"}, "name"),
    ({"name": "log", "kind": "log"}, "name"),
    ({"name": "c", "kind": "pager", "url": "https://x.example"}, "kind"),
    ({"name": "c", "kind": "webhook"}, "url"),
    ({"name": "c", "kind": "slack", "url": "ftp://x.example"}, "url"),
    ({"name": "c", "kind": "webhook", "url": "https://x", "secret_ref": SECRET}, "secret_ref"),
    ({"name": "c", "kind": "log", "endpoints": ["Not A Slug"]}, "endpoints"),
    ({"name": "c", "kind": "log", "min_severity": "fatal"}, "min_severity"),
]


def test_create_validates_and_names_the_field(engine: Engine) -> None:
    service = ChannelService(engine)
    for kwargs, field in INVALID:
        with pytest.raises(ValidationFailed) as err:
            service.create(**kwargs, actor=Actor("test"))
        assert err.value.details[0]["field"] == field, kwargs
        # An inline secret pasted by mistake is not echoed back.
        assert SECRET not in err.value.message
    assert service.list() == []


def test_create_list_get_delete_are_audited_without_the_secret(
    engine: Engine, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    service = ChannelService(engine)
    actor = Actor("alice", token_id="tok1")
    created = service.create(
        "ops-hook",
        "webhook",
        url=receiver.url,
        secret_ref="env:HOOK_SECRET",
        endpoints=["churn", "churn"],
        min_severity="warning",
        actor=actor,
    )
    service.create("ops-log", "log", actor=actor)
    with pytest.raises(Conflict):
        service.create("ops-log", "log", actor=actor)

    assert [c.name for c in service.list()] == ["ops-hook", "ops-log"]
    got = service.get("ops-hook")
    assert got == created and got.endpoints == ["churn"]
    shown = got.to_dict()
    assert shown["has_secret"] is True and "secret_ref" not in shown
    assert service.get("ops-log").to_dict()["has_secret"] is False

    assert service.test("ops-hook").ok
    assert receiver.bodies()[0]["event"] == "test"
    verify_signature(receiver.requests[0], SECRET)
    assert service.test("log").ok  # the built-in log channel needs no row

    service.delete("ops-hook", actor)
    with pytest.raises(NotFound):
        service.get("ops-hook")
    with pytest.raises(NotFound):
        service.delete("ops-hook", actor)

    with engine.connect() as conn:
        events = conn.execute(select(audit_events).order_by(audit_events.c.seq)).all()
    assert [(e.action, e.target) for e in events] == [
        ("channel.create", "ops-hook"),
        ("channel.create", "ops-log"),
        ("channel.delete", "ops-hook"),
    ]
    assert events[0].after["has_secret"] is True
    everything = json.dumps([e._asdict() for e in events], default=str)
    everything += json.dumps([c.to_dict() for c in service.list()])
    assert SECRET not in everything and "HOOK_SECRET" not in everything
