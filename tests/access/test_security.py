"""Security acceptance tests against real server processes.

- 100 issued tokens never reach the database files (WAL included), logs, the audit dir
  or captured CLI output; the Authorization header never reaches a debug-level log.
- Revoking a token while 20 clients use it (on two workers sharing one store) gets every
  client a 401 within one second.
- Per-token rate limits answer 429 with Retry-After and are counted; failed
  authentication and denied authorization are counted and audited, without the token.
- SLIPWAY_AUTH=false is refused on a non-loopback address, and works on loopback.
- Disabling a principal stops its tokens; rotation keeps both tokens working until the
  overlap ends.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from slipway.access.tokens import new_token_string, token_looks_valid
from tests.api.conftest import check_error_response
from tests.conftest import ServerProcess, free_port, make_server

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


# -- helpers ----------------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def call(
    server: ServerProcess, token: str | None, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    headers = {**kwargs.pop("headers", {}), **(bearer(token) if token else {})}
    return httpx.request(method, server.url + path, headers=headers, timeout=30, **kwargs)


def admin_call(server: ServerProcess, method: str, path: str, **kwargs: Any) -> Any:
    response = call(server, server.token, method, path, **kwargs)
    assert response.is_success, (response.status_code, response.text)
    return response.json()


def new_token(server: ServerProcess, principal: str, **options: Any) -> dict[str, Any]:
    """POST /api/v1/tokens; the answer holds the secret (kept in test memory only)."""
    data: dict[str, Any] = admin_call(
        server, "POST", "/api/v1/tokens", json={"principal": principal, **options}
    )
    assert token_looks_valid(data["token"])
    return data


def setup_principal(
    server: ServerProcess, name: str, role: str, *, kind: str = "user", **scope: str
) -> None:
    admin_call(
        server,
        "POST",
        "/api/v1/principals",
        json={"name": name, "kind": kind, "owner": "sec-team"},
    )
    admin_call(server, "POST", "/api/v1/grants", json={"principal": name, "role": role, **scope})


def deploy_iris(server: ServerProcess, endpoint: str) -> None:
    import numpy as np
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    data = load_iris()
    X = np.asarray(data.data, dtype=np.float64)
    y = np.asarray([str(n) for n in data.target_names])[data.target]
    with server.client() as admin:
        version = admin.register(
            LogisticRegression(max_iter=1000).fit(X, y),
            name="iris",
            X_train=X,
            y_train=y,
            X_eval=X[::3],
            y_eval=y[::3],
            owner="ml-team",
            feature_names=FEATURES,
        )
        assert version["status"] == "ready", version
        admin.deploy(endpoint, model="iris", version=version["number"])


def metric(server: ServerProcess, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (0 if none)."""
    text = call(server, server.token, "GET", "/metrics").text
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}(?:\{{(.*)\}})? (\S+)$", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


def audit_events(server: ServerProcess, **filters: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = admin_call(
        server, "GET", "/api/v1/audit/events", params={"limit": 1000, **filters}
    )["events"]
    return events


def tampered(token: str) -> str:
    """The token with one body character changed (the checksum no longer matches)."""
    i = 10
    return token[:i] + ("a" if token[i] != "a" else "b") + token[i + 1 :]


def secret_forms(token: str) -> list[bytes]:
    return [token.encode(), token[len("slw_") :].encode()]


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def sec_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the tests below that do not stop it; with a deployed model."""
    proc = make_server(tmp_path_factory.mktemp("sec") / "home")
    proc.init()
    proc.start()
    setup_principal(proc, "dev", "developer")
    setup_principal(proc, "viewer", "viewer")
    deploy_iris(proc, "iris-ep")
    yield proc
    proc.stop()


# -- a. no token anywhere it should not be ----------------------------------------------


@pytest.mark.e2e
def test_100_tokens_never_reach_disk_logs_or_output(tmp_path: Path) -> None:
    server = make_server(tmp_path / "home", SLIPWAY_LOG_LEVEL="debug")
    server.init()
    server.start()
    captured: list[str] = []  # everything the CLI printed
    try:
        setup_principal(server, "dev", "developer")
        setup_principal(server, "bot", "predictor", kind="service", **_endpoint("iris-ep"))
        deploy_iris(server, "iris-ep")

        issued: list[dict[str, Any]] = []
        for i in range(60):
            options: dict[str, Any] = {"name": f"dev-{i}"}
            if i % 3 == 0:
                options["scopes"] = ["model:read"]
            if i % 5 == 0:
                options["expires_in_s"] = 3600
            issued.append(new_token(server, "dev", **options))
        issued += [new_token(server, "bot", name=f"bot-{i}") for i in range(40)]
        assert len({t["token"] for t in issued}) == 100

        with httpx.Client(base_url=server.url, timeout=30) as http:
            for n, t in enumerate(issued):
                h = bearer(t["token"])
                if t["principal"] == "dev":
                    assert http.get("/api/v1/models", headers=h).status_code == 200
                    assert http.get("/api/v1/models/iris", headers=h).status_code == 200
                    # Denied: not an admin (authz.denied is audited with the token id).
                    assert http.get("/api/v1/principals", headers=h).status_code == 403
                else:
                    response = http.post(
                        "/v1/endpoints/iris-ep/predict", headers=h, json={"inputs": [ROW]}
                    )
                    assert response.status_code == 200, response.text
                    assert http.get("/api/v1/models", headers=h).status_code == 403
                # Failed authentication with a tampered token and a wrong scheme.
                bad = http.get("/api/v1/models", headers=bearer(tampered(t["token"])))
                check_error_response(bad, 401, "unauthenticated", secrets=secret_forms_str(t))
                wrong = http.get("/api/v1/models", headers={"Authorization": f"Token {t['token']}"})
                check_error_response(wrong, 401, "unauthenticated", secrets=secret_forms_str(t))
                if n % 5 == 0:
                    admin_call(server, "POST", f"/api/v1/tokens/{t['id']}/revoke", json={})
                    revoked = http.get("/api/v1/models", headers=h)
                    check_error_response(
                        revoked, 401, "unauthenticated", secrets=secret_forms_str(t)
                    )
            # Rotation: the new secrets are tokens to look for too (not counted in the 100).
            rotated = [
                admin_call(server, "POST", f"/api/v1/tokens/{t['id']}/rotate", json={})
                for t in issued[1:4]
            ]
            for t in rotated:
                assert http.get("/api/v1/models", headers=bearer(t["token"])).status_code == 200

        cli_calls: list[tuple[str, ...]] = [
            ("token", "list", "--json"),
            ("token", "list"),
            ("token", "list", "--principal", "bot", "--json"),
            ("principal", "list", "--json"),
            ("principal", "show", "dev", "--json"),
            ("grant", "list", "--json"),
            ("audit", "list", "--json"),
            ("audit", "export"),
            ("token", "revoke", issued[2]["id"], "--reason", "cli"),
            ("token", "revoke", "nope"),
            ("grant", "add", "dev", "root"),
        ]
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda a: server.cli(*a, check=False), cli_calls))
        for args, result in zip(cli_calls, results, strict=True):
            assert (result.returncode == 0) is ("nope" not in args and "root" not in args)
            captured += [result.stdout, result.stderr]
        listed = json.loads(captured[0])
        assert {t["id"] for t in issued} <= {t["id"] for t in listed}
        assert all("token" not in t for t in listed)
    finally:
        assert server.stop() == 0

    log = server.log_path.read_bytes()
    assert b"Bearer slw_" not in log and b"bearer slw_" not in log.lower()
    names = {p.name for p in files_under(server.home)}
    assert {"slipway.db", "server.log"} <= names, names
    assert any("audit" in p.parts for p in files_under(server.home)), "no audit dir to grep"
    haystacks = [(str(p), p.read_bytes()) for p in files_under(server.home)]
    haystacks += [(f"cli output {i}", text.encode()) for i, text in enumerate(captured)]
    secrets = [t["token"] for t in issued] + [t["token"] for t in rotated]
    leaks = [
        (t[:8], where)
        for t in secrets
        for form in secret_forms(t)
        for where, data in haystacks
        if form in data
    ]
    assert leaks == [], f"tokens found in {leaks}"
    # The admin token is only in the file `init --save-token` was asked to write.
    admin_hits = [
        where
        for form in secret_forms(server.token)
        for where, data in haystacks
        if form in data and where != str(server.home / "token")
    ]
    assert admin_hits == []


def _endpoint(name: str) -> dict[str, str]:
    return {"scope_kind": "endpoint", "scope_name": name}


def secret_forms_str(t: dict[str, Any]) -> list[str]:
    return [f.decode() for f in secret_forms(t["token"])]


# -- b. revocation under load, on two workers -------------------------------------------


@pytest.mark.e2e
def test_revoking_a_token_used_by_20_clients_on_two_workers(tmp_path: Path) -> None:
    """Two server processes share one store (two workers); 10 clients on each use one
    token; it is revoked through worker A. Worker B only learns of it from its snapshot,
    refreshed at least every second: every client must see 401 within 1 s of the revoke.

    Judged by when each request was *sent*, from when the revoke was answered (committed;
    under load that can be well after it was sent): a request sent more than 1.0 s +
    SLACK later is refused, whatever the machine's load does to how long answers take
    (the suite shares the cores with a second test process)."""
    slack = 0.3
    worker_a = make_server(tmp_path / "home")
    worker_a.init()
    worker_a.start()
    worker_b = make_server(tmp_path / "home")
    worker_b.token = worker_a.token
    worker_b.log_path = tmp_path / "home" / "server-b.log"
    worker_b.start()
    try:
        setup_principal(worker_a, "loader", "viewer")
        token = new_token(worker_a, "loader")
        start = threading.Barrier(21)
        stop = threading.Event()
        results: list[list[tuple[float, float, int]]] = [[] for _ in range(20)]

        def hammer(i: int) -> None:
            url = (worker_a if i % 2 else worker_b).url
            with httpx.Client(base_url=url, headers=bearer(token["token"]), timeout=10) as c:
                start.wait()
                while not stop.is_set():
                    sent = time.monotonic()
                    status = c.get("/api/v1/models").status_code
                    results[i].append((sent, time.monotonic(), status))
                    if status == 401 and len([r for r in results[i] if r[2] == 401]) >= 3:
                        return

        threads = [threading.Thread(target=hammer, args=(i,)) for i in range(20)]
        for thread in threads:
            thread.start()
        start.wait()
        time.sleep(0.5)
        assert all(r and r[-1][2] == 200 for r in results), "not every client was served"
        admin_call(worker_a, "POST", f"/api/v1/tokens/{token['id']}/revoke", json={})
        t_done = time.monotonic()
        for thread in threads:
            thread.join(timeout=5)
        stop.set()
        for thread in threads:
            thread.join(timeout=5)

        for i, rows in enumerate(results):
            statuses = {s for _, _, s in rows}
            assert statuses <= {200, 401}, (i, statuses)
            fails = [(sent, received) for sent, received, s in rows if s == 401]
            assert fails, f"client {i} never saw a 401"
            # Once refused, never served again.
            after = [s for sent, _, s in rows if sent >= fails[0][1]]
            assert set(after) == {401}, (i, after)
            # No 200 for a request sent more than 1 s after the revoke was committed.
            late = [sent - t_done for sent, _, s in rows if s == 200]
            assert not late or max(late) <= 1.0 + slack, (i, max(late))
            # Worker A (which revoked) refuses at once every request sent after the revoke
            # answered.
            if i % 2:
                assert all(s == 401 for sent, _, s in rows if sent >= t_done), i
    finally:
        stop.set()
        worker_b.stop()
        worker_a.stop()


# -- c. rate limits and security events -------------------------------------------------


def test_rps_limit_answers_429_with_retry_after(sec_server: ServerProcess) -> None:
    before = metric(sec_server, "slipway_rate_limited_total", limit="rps")
    token = new_token(sec_server, "dev", rate_limit_rps=5)
    statuses, refused = [], []
    with httpx.Client(base_url=sec_server.url, headers=bearer(token["token"]), timeout=10) as c:
        for _ in range(20):
            response = c.get("/api/v1/models")
            statuses.append(response.status_code)
            if response.status_code == 429:
                refused.append(response)
    assert statuses[:5] == [200] * 5, statuses  # the burst is the rate
    assert len(refused) >= 10, statuses
    for response in refused:
        body = check_error_response(response, 429, "rate_limited", secrets=secret_forms_str(token))
        assert "5 requests/s" in body["error"]["message"]
        retry_after = response.headers["retry-after"]
        assert retry_after.isdigit() and int(retry_after) >= 1, retry_after
    after = metric(sec_server, "slipway_rate_limited_total", limit="rps")
    assert after - before == len(refused)
    # Limits are per token: another token of the same principal is not limited.
    other = new_token(sec_server, "dev")
    assert call(sec_server, other["token"], "GET", "/api/v1/models").status_code == 200
    # After Retry-After the token is served again.
    time.sleep(int(refused[-1].headers["retry-after"]))
    assert call(sec_server, token["token"], "GET", "/api/v1/models").status_code == 200


def test_concurrency_limit_answers_429(sec_server: ServerProcess) -> None:
    """With max_concurrent=1 a slow request (an artifact upload trickling in for ~1.5 s)
    holds the token's only slot; a second request meanwhile gets 429."""
    before = metric(sec_server, "slipway_rate_limited_total", limit="concurrency")
    token = new_token(sec_server, "dev", max_concurrent=1)
    outcome: dict[str, httpx.Response] = {}
    started = threading.Event()

    def trickle() -> Iterator[bytes]:
        started.set()
        for _ in range(15):
            time.sleep(0.1)
            yield b"x" * 64

    def upload() -> None:
        outcome["upload"] = call(
            sec_server,
            token["token"],
            "POST",
            "/api/v1/artifacts",
            content=trickle(),
            headers={"Content-Type": "application/octet-stream"},
        )

    thread = threading.Thread(target=upload)
    thread.start()
    assert started.wait(5)
    time.sleep(0.4)
    refused = call(sec_server, token["token"], "GET", "/api/v1/models")
    thread.join(10)
    body = check_error_response(refused, 429, "rate_limited", secrets=secret_forms_str(token))
    assert "concurrent" in body["error"]["message"]
    assert int(refused.headers["retry-after"]) >= 1
    assert outcome["upload"].status_code in (200, 201), outcome["upload"].text
    # The slot is released when the slow request ends.
    assert call(sec_server, token["token"], "GET", "/api/v1/models").status_code == 200
    after = metric(sec_server, "slipway_rate_limited_total", limit="concurrency")
    assert after - before == 1


def test_failed_auth_and_denied_authz_are_counted_and_audited(
    sec_server: ServerProcess,
) -> None:
    viewer = new_token(sec_server, "viewer")
    unknown = new_token_string()  # well-formed, checksum right, never issued
    bad = tampered(viewer["token"])
    missing0 = metric(sec_server, "slipway_auth_failures_total", reason="missing")
    invalid0 = metric(sec_server, "slipway_auth_failures_total", reason="invalid")
    denied0 = metric(sec_server, "slipway_authz_denied_total", permission="model:write")
    seq0 = max([e["seq"] for e in audit_events(sec_server)] or [0])

    secrets = [*secret_forms_str(viewer), unknown, unknown[4:], bad, bad[4:]]
    check_error_response(call(sec_server, None, "GET", "/api/v1/models"), 401, "unauthenticated")
    for presented in (unknown, bad):
        response = call(sec_server, presented, "GET", "/api/v1/models")
        body = check_error_response(response, 401, "unauthenticated", secrets=secrets)
        assert response.headers["www-authenticate"] == "Bearer"
        assert body["error"]["message"] == "invalid, expired or revoked token"
    response = call(
        sec_server, viewer["token"], "POST", "/api/v1/models", json={"name": "x", "owner": "o"}
    )
    body = check_error_response(response, 403, "forbidden", secrets=secrets)
    assert "model:write" in body["error"]["message"]

    assert metric(sec_server, "slipway_auth_failures_total", reason="missing") == missing0 + 1
    assert metric(sec_server, "slipway_auth_failures_total", reason="invalid") == invalid0 + 2
    assert metric(sec_server, "slipway_authz_denied_total", permission="model:write") == denied0 + 1

    failed = audit_events(sec_server, action="auth.failed", after_seq=seq0)
    assert [e["reason"] for e in failed] == ["missing token", "invalid token", "invalid token"]
    for event in failed:
        assert event["actor"] == "anonymous" and event["token_id"] is None
        assert event["target"] == "GET /api/v1/models"
    [denial] = audit_events(sec_server, action="authz.denied", after_seq=seq0)
    assert denial["actor"] == "viewer" and denial["token_id"] == viewer["id"]
    assert "model:write" in denial["reason"] and denial["target"] == "POST /api/v1/models"
    assert denial["request_id"] == response.json()["request_id"]
    # No audit row, anywhere in the log, holds a token.
    dump = "\n".join(
        admin_call_text(sec_server, "/api/v1/audit/export").splitlines()
        + [json.dumps(e) for e in audit_events(sec_server)]
    )
    for secret in secrets:
        assert secret not in dump


def admin_call_text(server: ServerProcess, path: str) -> str:
    response = call(server, server.token, "GET", path)
    assert response.status_code == 200
    return response.text


# -- d. authentication may be off only on loopback --------------------------------------


def test_auth_off_is_refused_on_a_non_loopback_address(tmp_path: Path) -> None:
    proc = make_server(tmp_path / "home", SLIPWAY_AUTH="false", SLIPWAY_PORT=str(free_port()))
    proc.init()
    for env, args in (
        ({"SLIPWAY_HOST": "0.0.0.0"}, ()),
        ({"SLIPWAY_HOST": "::"}, ()),
        ({}, ("--host", "0.0.0.0")),
        ({"SLIPWAY_HOST": "192.168.1.20"}, ()),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "slipway", "server", *args],
            env={**proc.env, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode != 0, (env, args, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "refusing to listen on" in lines[0] and "authentication disabled" in lines[0]
        assert "Traceback" not in result.stderr


@pytest.mark.e2e
def test_auth_off_on_loopback_needs_no_token(tmp_path: Path) -> None:
    proc = make_server(tmp_path / "home", SLIPWAY_AUTH="false")
    proc.init()
    proc.start()
    try:
        assert httpx.get(f"{proc.url}/api/v1/models", timeout=10).status_code == 200
        assert httpx.get(f"{proc.url}/api/v1/principals", timeout=10).status_code == 200
        created = httpx.post(
            f"{proc.url}/api/v1/models", json={"name": "m", "owner": "o"}, timeout=10
        )
        assert created.status_code == 201, created.text
        # Any Authorization header, even garbage, is ignored rather than half-checked.
        got = httpx.get(f"{proc.url}/api/v1/models", headers=bearer("nonsense"), timeout=10)
        assert got.status_code == 200
        [event] = [
            e
            for e in httpx.get(
                f"{proc.url}/api/v1/audit/events", params={"action": "model.create"}, timeout=10
            ).json()["events"]
        ]
        assert event["actor"] == "local"
    finally:
        proc.stop()


# -- e. disable and rotate through the API ----------------------------------------------


def _first_status_change(
    server: ServerProcess, token: str, until: float, status: int = 401
) -> float | None:
    """Poll until ``token`` gets ``status``; the monotonic time it did, or None."""
    while time.monotonic() < until:
        if call(server, token, "GET", "/api/v1/models").status_code == status:
            return time.monotonic()
        time.sleep(0.02)
    return None


def test_disabling_a_principal_stops_its_tokens(sec_server: ServerProcess) -> None:
    setup_principal(sec_server, "temp", "viewer")
    tokens = [new_token(sec_server, "temp")["token"] for _ in range(3)]
    for token in tokens:
        assert call(sec_server, token, "GET", "/api/v1/models").status_code == 200
    t0 = time.monotonic()
    admin_call(sec_server, "POST", "/api/v1/principals/temp/disable")
    for token in tokens:
        seen = _first_status_change(sec_server, token, t0 + 3)
        assert seen is not None and seen - t0 <= 1.2
    # New tokens for a disabled principal are refused; enabling brings the old ones back.
    refused = call(
        sec_server, sec_server.token, "POST", "/api/v1/tokens", json={"principal": "temp"}
    )
    check_error_response(refused, 409, "conflict")
    admin_call(sec_server, "POST", "/api/v1/principals/temp/enable")
    for token in tokens:
        seen = _first_status_change(sec_server, token, time.monotonic() + 3, status=200)
        assert seen is not None
    actions = [e["action"] for e in audit_events(sec_server, target="temp")]
    assert actions[-2:] == ["principal.disable", "principal.enable"]


def test_rotation_overlap_through_the_api(sec_server: ServerProcess) -> None:
    old = new_token(sec_server, "viewer", name="rotating")
    overlap = 1.5
    t0 = time.monotonic()
    new = admin_call(
        sec_server, "POST", f"/api/v1/tokens/{old['id']}/rotate", json={"overlap_s": overlap}
    )
    assert new["token"] != old["token"] and new["rotated_from"] == old["id"]
    # Both work during the overlap...
    for token in (old["token"], new["token"]):
        assert call(sec_server, token, "GET", "/api/v1/models").status_code == 200
    # ... the old one stops once it ends (within the 1 s snapshot refresh), the new one not.
    stopped = _first_status_change(sec_server, old["token"], t0 + overlap + 3)
    assert stopped is not None
    assert overlap - 0.2 <= stopped - t0 <= overlap + 1.0 + 0.3, stopped - t0
    assert call(sec_server, new["token"], "GET", "/api/v1/models").status_code == 200
    [event] = audit_events(sec_server, action="token.rotate", target=old["id"])
    assert event["after"]["replaced_by"] == new["id"]
    # Rotating a revoked token is refused.
    admin_call(sec_server, "POST", f"/api/v1/tokens/{new['id']}/revoke", json={})
    response = call(
        sec_server, sec_server.token, "POST", f"/api/v1/tokens/{new['id']}/rotate", json={}
    )
    check_error_response(response, 409, "conflict", secrets=[new["token"]])
