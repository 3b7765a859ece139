"""``slipway principal|token|grant ...`` against a real server.

Secrets are printed once (by ``token create`` / ``token rotate``) and never by ``list``;
``--json`` parses; every failure exits non-zero with one line on stderr.
"""

from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.cli.expect import as_json, assert_clean_failure
from tests.conftest import ServerProcess

TOKEN_RE = re.compile(r"slw_[0-9A-Za-z]{38}")


def status(server: ServerProcess, token: str, path: str = "/api/v1/models") -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(server.url + path, headers=headers, timeout=10).status_code


def only_secret(text: str) -> str:
    [secret] = TOKEN_RE.findall(text)
    return secret


def parallel(
    server: ServerProcess, *calls: tuple[str, ...]
) -> list[subprocess.CompletedProcess[str]]:
    """Independent CLI calls side by side (each one starts an interpreter)."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda args: server.cli(*args), calls))


@pytest.fixture(scope="module")
def cli_server(shared_server: ServerProcess) -> ServerProcess:
    shared_server.cli("principal", "create", "alice")
    shared_server.cli("grant", "add", "alice", "viewer")
    return shared_server


def test_principal_lifecycle(cli_server: ServerProcess) -> None:
    cli = cli_server.cli
    table = cli("principal", "create", "bot", "--kind", "service", "--owner", "ml-ops").stdout
    assert "bot" in table and "service" in table and "ml-ops" in table
    listed_json, listed_table, shown_json, shown_table = parallel(
        cli_server,
        ("principal", "list", "--json"),
        ("principal", "list"),
        ("principal", "show", "alice", "--json"),
        ("principal", "show", "alice"),
    )
    listed = as_json(listed_json)
    assert {"admin", "alice", "bot"} <= {p["name"] for p in listed}
    [bot] = [p for p in listed if p["name"] == "bot"]
    assert (bot["kind"], bot["owner"], bot["disabled"], bot["created_by"]) == (
        "service",
        "ml-ops",
        False,
        "admin",
    )
    assert "bot" in listed_table.stdout
    shown = as_json(shown_json)
    assert shown["name"] == "alice" and [g["role"] for g in shown["grants"]] == ["viewer"]
    assert "viewer" in shown_table.stdout

    token = only_secret(cli("token", "create", "alice").stdout)
    assert status(cli_server, token) == 200
    assert "disabled alice" in cli("principal", "disable", "alice").stdout
    assert as_json(cli("principal", "show", "alice", "--json"))["disabled"] is True
    assert status(cli_server, token) == 401  # same worker: at once
    assert "enabled alice" in cli("principal", "enable", "alice").stdout
    assert status(cli_server, token) == 200


def test_token_secret_is_shown_once(cli_server: ServerProcess) -> None:
    cli = cli_server.cli
    created = cli(
        "token",
        "create",
        "alice",
        "--name",
        "laptop",
        "--scope",
        "model:read",
        "--scope",
        "endpoint:read",
        "--expires-in",
        "12h",
        "--rps",
        "50",
        "--max-concurrent",
        "4",
    )
    secret = only_secret(created.stdout)
    assert "shown once" in created.stdout + created.stderr
    assert status(cli_server, secret) == 200
    data = as_json(cli("token", "create", "alice", "--name", "ci", "--json"))
    assert TOKEN_RE.fullmatch(data["token"]) and data["principal"] == "alice"
    assert status(cli_server, data["token"]) == 200

    lists = parallel(
        cli_server,
        ("token", "list", "--json"),
        ("token", "list"),
        ("token", "list", "--principal", "alice", "--json"),
    )
    for out in lists:
        assert not TOKEN_RE.search(out.stdout + out.stderr), out.args
        for shown in (secret, data["token"]):
            assert shown[4:] not in out.stdout
    listed = as_json(lists[2])
    assert all("token" not in t and t["principal"] == "alice" for t in listed)
    [laptop] = [t for t in listed if t["name"] == "laptop"]
    assert laptop["scopes"] == ["endpoint:read", "model:read"]
    assert laptop["rate_limit_rps"] == 50 and laptop["max_concurrent"] == 4
    assert laptop["expires_at"] is not None and laptop["revoked_at"] is None

    # Rotate without overlap: the new secret is printed once and works, the old stops.
    rotated = as_json(cli("token", "rotate", laptop["id"], "--overlap", "0s", "--json"))
    assert rotated["rotated_from"] == laptop["id"] and rotated["token"] != secret
    assert rotated["scopes"] == laptop["scopes"]
    assert status(cli_server, rotated["token"]) == 200
    assert status(cli_server, secret) == 401
    table = cli("token", "rotate", data["id"], "--overlap", "1h").stdout
    assert status(cli_server, only_secret(table)) == 200
    assert status(cli_server, data["token"]) == 200  # in its overlap

    out = cli("token", "revoke", rotated["id"], "--reason", "lost laptop").stdout
    assert f"revoked {rotated['id']}" in out
    assert status(cli_server, rotated["token"]) == 401
    [row] = [t for t in as_json(cli("token", "list", "--json")) if t["id"] == rotated["id"]]
    assert row["revoked_at"] is not None


def test_grants_scoped_to_model_and_endpoint(cli_server: ServerProcess) -> None:
    cli = cli_server.cli
    cli("principal", "create", "dana")
    cli("principal", "create", "edge", "--kind", "service", "--owner", "ops")
    on_model = as_json(cli("grant", "add", "dana", "developer", "--model", "churn", "--json"))
    assert (on_model["role"], on_model["scope_kind"], on_model["scope_name"]) == (
        "developer",
        "model",
        "churn",
    )
    on_endpoint = as_json(
        cli("grant", "add", "edge", "predictor", "--endpoint", "churn-prod", "--json")
    )
    assert (on_endpoint["scope_kind"], on_endpoint["scope_name"]) == ("endpoint", "churn-prod")
    table = cli("grant", "add", "dana", "viewer").stdout
    assert "viewer" in table and "global" in table

    grants = as_json(cli("grant", "list", "--principal", "dana", "--json"))
    assert sorted((g["role"], g["scope_kind"]) for g in grants) == [
        ("developer", "model"),
        ("viewer", "global"),
    ]
    assert "churn-prod" in cli("grant", "list").stdout

    # A model-scoped developer cannot create a model; its global viewer grant reads all.
    token = as_json(cli("token", "create", "dana", "--json"))["token"]
    create = httpx.post(
        f"{cli_server.url}/api/v1/models",
        json={"name": "brand-new", "owner": "x"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert create.status_code == 403
    assert status(cli_server, token) == 200

    assert "revoked grant" in cli("grant", "revoke", on_model["id"]).stdout
    [revoked] = [g for g in as_json(cli("grant", "list", "--json")) if g["id"] == on_model["id"]]
    assert revoked["revoked_at"] is not None


def test_failures_exit_nonzero_with_one_line(cli_server: ServerProcess) -> None:
    viewer = as_json(cli_server.cli("token", "create", "alice", "--json"))["token"]
    cases: list[tuple[tuple[str, ...], str, str | None]] = [
        (("principal", "create", "alice"), "conflict", None),
        (("principal", "create", "Bad Name"), "invalid_field", None),
        (("principal", "create", "svc", "--kind", "service"), "invalid_field", None),
        (("principal", "show", "nobody"), "not_found", None),
        (("principal", "disable", "admin"), "conflict", None),  # yourself
        (("token", "create", "nobody"), "not_found", None),
        (("token", "create", "alice", "--scope", "root"), "invalid_field", None),
        (("token", "create", "alice", "--expires-in", "5 weeks"), "invalid_field", None),
        (("token", "revoke", "nope"), "not_found", None),
        (("token", "rotate", "nope"), "not_found", None),
        (("grant", "add", "alice", "root"), "invalid_field", None),
        (
            ("grant", "add", "alice", "viewer", "--model", "a", "--endpoint", "b"),
            "invalid_field",
            None,
        ),
        (("grant", "revoke", "nope"), "not_found", None),
        # A malformed token: unauthenticated; a non-admin token: forbidden.
        (("token", "list"), "unauthenticated", "slw_oops"),
        (("principal", "list"), "forbidden", viewer),
    ]

    def run(args: tuple[str, ...], token: str | None) -> subprocess.CompletedProcess[str]:
        env = {**cli_server.env, "SLIPWAY_URL": cli_server.url}
        env["SLIPWAY_TOKEN"] = token or cli_server.token
        return subprocess.run(
            [sys.executable, "-m", "slipway", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    # Independent calls: run them side by side (each is a new interpreter).
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda case: run(case[0], case[2]), cases))
    for (args, code, token), result in zip(cases, results, strict=True):
        line = assert_clean_failure(result, code)
        if "--expires-in" in args:
            assert "--expires-in" in line
        if token:
            assert token not in result.stdout + result.stderr
