"""The audit API, SDK and CLI against a real server process."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from slipway import errors
from tests.conftest import ServerProcess

pytestmark = pytest.mark.e2e


def _make_events(server: ServerProcess) -> None:
    # Failed authentication is audited, so these are events whatever else is wired.
    for _ in range(3):
        assert httpx.get(f"{server.url}/api/v1/models").status_code == 401


def test_list_export_and_verify(server: ServerProcess, tmp_path: Path) -> None:
    _make_events(server)
    with server.client() as c:
        events = c.audit_events(limit=1000)
        assert len(events) >= 3
        assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
        failed = c.audit_events(action="auth.failed", actor="anonymous")
        assert len(failed) >= 3 and all(e["action"] == "auth.failed" for e in failed)
        assert c.audit_events(since="2999-01-01T00:00:00Z") == []
        assert len(c.audit_events(since="2000-01-01T00:00:00+00:00", limit=2)) == 2
        last = events[-1]["seq"]
        assert c.audit_events(after_seq=last) == []

        lines = list(c.audit_export())
        exported = [json.loads(line) for line in lines]
        assert [e["seq"] for e in exported][: len(events)] == [e["seq"] for e in events]
        assert exported[0]["hash"] and exported[0]["prev_hash"]

        report = c.audit_verify()
        assert report["ok"] is True, report
        assert report["events"] >= len(events)

        with pytest.raises(errors.ValidationFailed) as bad_time:
            c.audit_events(since="yesterday")
        assert bad_time.value.details[0]["field"] == "since"
        with pytest.raises(errors.ValidationFailed) as too_many:
            c.audit_events(limit=1001)
        assert too_many.value.details[0]["field"] == "limit"

    response = httpx.get(
        f"{server.url}/api/v1/audit/export",
        headers={"Authorization": f"Bearer {server.token}"},
    )
    assert response.headers["content-type"].startswith("application/x-ndjson")

    for path in ("events", "export", "verify"):
        assert httpx.get(f"{server.url}/api/v1/audit/{path}").status_code == 401

    listed = server.cli("audit", "list", "--action", "auth.failed", "--json")
    assert all(e["action"] == "auth.failed" for e in json.loads(listed.stdout))
    out = tmp_path / "audit.jsonl"
    server.cli("audit", "export", "--out", str(out))
    assert len(out.read_text().splitlines()) >= len(events)
    # verify runs locally against the server's own store and audit directory.
    local = server.cli("audit", "verify", "--json")
    assert json.loads(local.stdout)["ok"] is True
