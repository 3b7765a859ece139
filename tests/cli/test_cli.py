"""The ``slipway`` CLI against a real server: tables, ``--json``, and clean failures."""

from __future__ import annotations

import json
import pickle
import re
import subprocess
from pathlib import Path

import pytest

from slipway.settings import SETTINGS
from tests.cli.expect import as_json, assert_clean_failure
from tests.conftest import ServerProcess, free_port, make_server

TOKEN_RE = re.compile(r"slw_[0-9A-Za-z]{38}")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny sklearn model as skops and as a pickle, and rows as CSV and JSON."""
    import numpy as np
    import skops.io
    from sklearn.linear_model import LogisticRegression

    d = tmp_path_factory.mktemp("cli-files")
    X = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]] * 5)
    y = np.array(["no", "yes", "no", "yes"] * 5)
    model = LogisticRegression().fit(X, y)
    skops.io.dump(model, d / "model.skops")
    (d / "model.pkl").write_bytes(pickle.dumps(model))
    (d / "rows.csv").write_text("x0,x1\n0.0,0.5\n1.0,1.0\n1.0,0.0\n")
    (d / "rows.json").write_text(json.dumps([{"x0": 0.0, "x1": 0.0}]))
    (d / "broken.json").write_text('{"inputs": [')
    (d / "not-rows.json").write_text('{"inputs": 3}')
    return {p.stem.replace("-", "_") + p.suffix.replace(".", "_"): p for p in d.iterdir()}


# -- models ----------------------------------------------------------------------------


def test_model_create_list_show_retire(shared_server: ServerProcess) -> None:
    cli = shared_server.cli
    table = cli("model", "create", "churn", "--owner", "growth", "--tag", "eu", "--tag", "b2c")
    assert "churn" in table.stdout and "growth" in table.stdout
    created = as_json(
        cli("model", "create", "pricing", "--owner", "finance", "--risk-tier", "high", "--json")
    )
    assert (created["name"], created["owner"], created["risk_tier"]) == (
        "pricing",
        "finance",
        "high",
    )

    listed = as_json(cli("model", "list", "--json"))
    assert {"churn", "pricing"} <= {m["name"] for m in listed}
    assert [m["name"] for m in as_json(cli("model", "list", "--tag", "eu", "--json"))] == ["churn"]
    assert [m["name"] for m in as_json(cli("model", "list", "--owner", "finance", "--json"))] == [
        "pricing"
    ]
    table = cli("model", "list").stdout
    assert "churn" in table and "pricing" in table and "owner" in table

    shown = as_json(cli("model", "show", "churn", "--json"))
    assert shown["tags"] == ["b2c", "eu"] and shown["versions"] == []
    assert "growth" in cli("model", "show", "churn").stdout

    retired = as_json(cli("model", "retire", "pricing", "--json"))
    assert retired["status"] == "retired"
    assert "retired churn" in cli("model", "retire", "churn").stdout
    statuses = {m["name"]: m["status"] for m in as_json(cli("model", "list", "--json"))}
    assert statuses["churn"] == statuses["pricing"] == "retired"


def test_register_deploy_and_predict(shared_server: ServerProcess, files: dict[str, Path]) -> None:
    cli = shared_server.cli
    cli("model", "create", "clf", "--owner", "ml")
    register = [
        "model",
        "register",
        "clf",
        str(files["model_skops"]),
        "--flavor",
        "sklearn",
        "--examples",
        str(files["rows_csv"]),
    ]
    version = as_json(cli(*register, "--json"))
    assert (version["model"], version["number"], version["status"]) == ("clf", 1, "ready")
    assert [f["name"] for f in version["signature"]["inputs"]] == ["x0", "x1"]
    table = cli(*register).stdout
    assert "ready" in table and "2" in table

    deployed = as_json(
        cli("endpoint", "deploy", "scoring", "--model", "clf", "--version", "1", "--json")
    )
    assert (deployed["name"], deployed["model"], deployed["version"]) == ("scoring", "clf", 1)
    assert deployed["serving_version"] == 1
    assert (
        "scoring" in cli("endpoint", "deploy", "scoring", "--model", "clf", "--version", "2").stdout
    )
    listed = as_json(cli("endpoint", "list", "--json"))
    assert [(e["name"], e["version"], e["previous_version"]) for e in listed] == [("scoring", 2, 1)]
    assert "scoring" in cli("endpoint", "list").stdout
    shown = as_json(cli("endpoint", "show", "scoring", "--json"))
    assert shown["version"] == 2
    assert "clf" in cli("endpoint", "show", "scoring").stdout

    answer = as_json(cli("predict", "scoring", str(files["rows_csv"]), "--json"))
    assert (answer["endpoint"], answer["model"], answer["version"]) == ("scoring", "clf", 2)
    assert [p["prediction"] for p in answer["predictions"]] == ["no", "yes", "yes"]
    assert all(set(p["probabilities"]) == {"no", "yes"} for p in answer["predictions"])

    stdin = json.dumps({"inputs": [{"x0": 1.0, "x1": 1.0}]})
    piped = as_json(cli("predict", "scoring", "-", "--json", input=stdin))
    assert [p["prediction"] for p in piped["predictions"]] == ["yes"]
    listed_rows = as_json(cli("predict", "scoring", str(files["rows_json"]), "--json"))
    assert [p["prediction"] for p in listed_rows["predictions"]] == ["no"]

    table = cli("predict", "scoring", str(files["rows_csv"])).stdout
    assert "scoring (clf v2)" in table and "yes" in table

    with shared_server.client() as client:
        record = client.get_prediction(answer["predictions"][0]["id"])
    assert record["endpoint"] == "scoring"


# -- failures --------------------------------------------------------------------------


def test_unknown_model_fails_cleanly(shared_server: ServerProcess) -> None:
    line = assert_clean_failure(
        shared_server.cli("model", "show", "ghost", check=False), "not_found"
    )
    assert "ghost" in line
    assert_clean_failure(
        shared_server.cli(
            "endpoint", "deploy", "e", "--model", "ghost", "--version", "1", check=False
        ),
        "not_found",
    )
    assert_clean_failure(shared_server.cli("model", "retire", "ghost", check=False), "not_found")


def test_duplicate_and_invalid_model_fail_cleanly(shared_server: ServerProcess) -> None:
    shared_server.cli("model", "create", "twice", "--owner", "x")
    assert_clean_failure(
        shared_server.cli("model", "create", "twice", "--owner", "x", check=False), "conflict"
    )
    line = assert_clean_failure(
        shared_server.cli("model", "create", "Not A Slug", "--owner", "x", check=False),
        "invalid_field",
    )
    assert "name" in line


def test_markup_in_a_message_is_printed_not_interpreted(shared_server: ServerProcess) -> None:
    # The server echoes the name; rich markup in it must neither vanish nor crash the CLI.
    line = assert_clean_failure(
        shared_server.cli("model", "show", "[bold]x[/bold]", check=False), "not_found"
    )
    assert "[bold]x[/bold]" in line
    assert_clean_failure(shared_server.cli("model", "show", "[/x]", check=False), "not_found")


def test_unreachable_server_fails_cleanly(tmp_path: Path) -> None:
    proc = make_server(tmp_path / "home")
    proc.port = free_port()  # nothing listens here
    proc.token = "slw_" + "x" * 38
    proc.env["COLUMNS"] = "60"  # a narrow terminal must not split the message
    result = proc.cli("model", "list", check=False)
    line = assert_clean_failure(result, "unavailable")
    assert proc.url in line


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["predict", "scoring", "/nonexistent/rows.csv"], "bad_request"),
        (["predict", "scoring", "{broken_json}"], "bad_request"),
        (["predict", "scoring", "{not_rows_json}"], "bad_request"),
        (
            [
                "model",
                "register",
                "clf",
                "{model_skops}",
                "--flavor",
                "sklearn",
                "--examples",
                "{broken_json}",
            ],
            "bad_request",
        ),
    ],
)
def test_invalid_file_fails_cleanly(
    shared_server: ServerProcess, files: dict[str, Path], args: list[str], code: str
) -> None:
    filled = [str(files[a[1:-1]]) if a.startswith("{") else a for a in args]
    assert_clean_failure(shared_server.cli(*filled, check=False), code)


def test_register_of_a_pickle_is_refused(
    shared_server: ServerProcess, files: dict[str, Path]
) -> None:
    shared_server.cli("model", "create", "pickled", "--owner", "x")
    result = shared_server.cli(
        "model",
        "register",
        "pickled",
        str(files["model_pkl"]),
        "--flavor",
        "sklearn",
        "--examples",
        str(files["rows_csv"]),
        check=False,
    )
    line = assert_clean_failure(result, "unsafe_artifact")
    assert "pickle" in line.lower()
    assert as_json(shared_server.cli("model", "show", "pickled", "--json"))["versions"] == []


def test_missing_argument_is_a_usage_error(shared_server: ServerProcess) -> None:
    result = shared_server.cli("model", "create", "no-owner", check=False)
    assert result.returncode == 2
    assert "--owner" in result.stderr
    assert "Traceback" not in result.stderr


# -- settings and init -----------------------------------------------------------------


def test_settings_json_lists_every_setting(shared_server: ServerProcess) -> None:
    result = shared_server.cli("settings", "--json")
    rows = as_json(result)
    assert [r["setting"] for r in rows] == [s.name for s in SETTINGS]
    by_name = {r["setting"]: r for r in rows}
    for s in SETTINGS:
        assert by_name[s.name]["env"] == s.env_var
        assert by_name[s.name]["help"] == s.help
    assert by_name["home"]["value"] == str(shared_server.home)
    # The token is set in this environment, and never shown.
    assert by_name["token"]["value"] == "***"
    assert shared_server.token not in result.stdout
    table = shared_server.cli("settings").stdout
    assert "SLIPWAY_MAX_UPLOAD_MB" in table and shared_server.token not in table


def test_init_twice_shows_no_second_token(tmp_path: Path) -> None:
    proc = make_server(tmp_path / "home")
    first = proc.cli("init", "--save-token")
    tokens = TOKEN_RE.findall(first.stdout)
    assert len(tokens) == 1
    saved = (proc.home / "token").read_text().strip()
    assert saved == tokens[0]
    assert (proc.home / "token").stat().st_mode & 0o777 == 0o600

    second = proc.cli("init", "--save-token")
    assert "already initialized" in second.stdout
    assert TOKEN_RE.findall(second.stdout + second.stderr) == []
    assert (proc.home / "token").read_text().strip() == saved


def test_settings_never_print_a_database_password(tmp_path: Path) -> None:
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    env.update(
        SLIPWAY_HOME=str(tmp_path),
        SLIPWAY_TOKEN="slw_secretvalue",
        SLIPWAY_DATABASE_URL="postgresql+psycopg://bob:s3cret@db.example/x",
    )
    out = subprocess.run(
        [sys.executable, "-m", "slipway", "settings", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "s3cret" not in out and "slw_secretvalue" not in out
    assert "bob:***@db.example" in out


def test_the_client_commands_start_without_the_store_libraries() -> None:
    # Every CLI call pays its imports: SQLAlchemy alone was a fifth of a client command's
    # start-up, and only `audit verify` and the server-side commands open a store.
    import sys

    heavy = "{'sqlalchemy', 'alembic', 'fastapi'}"
    code = f"import sys, slipway.cli; print(sorted({heavy} & set(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"
