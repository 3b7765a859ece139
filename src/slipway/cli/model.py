"""``slipway model create|list|show|update|retire|register``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
import yaml

from slipway.cli import output
from slipway.cli.common import JSON_OPTION, client
from slipway.cli.inputs import read_rows
from slipway.contracts.schema import Contract
from slipway.contracts.signature import Signature
from slipway.errors import InvalidRequest

app = typer.Typer(help="Models and their versions.", no_args_is_help=True)

VERSION_COLUMNS = ("number", "flavor", "status", "status_reason", "artifact_sha256", "created_at")


@app.command("create")
def create(
    name: str,
    owner: str = typer.Option(..., help="Team or person accountable for the model."),
    description: str = "",
    oncall: str = typer.Option("", help="Who is paged when it misbehaves."),
    runbook_url: str = "",
    risk_tier: str = typer.Option("medium", help="low, medium or high."),
    intended_use: str = "",
    limitations: str = "",
    tag: list[str] = typer.Option([], help="A tag; repeat for more."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a model (an inventory entry)."""
    with client() as c:
        data = c.create_model(
            name,
            owner=owner,
            description=description,
            oncall=oncall,
            runbook_url=runbook_url,
            risk_tier=risk_tier,
            intended_use=intended_use,
            limitations=limitations,
            tags=tag,
        )
    output.emit_json(data) if as_json else output.record(data)


@app.command("show")
def show(name: str, as_json: bool = JSON_OPTION) -> None:
    """Show a model and its versions."""
    with client() as c:
        data = c.get_model(name)
    if as_json:
        output.emit_json(data)
        return
    versions = data.pop("versions")
    output.record(data)
    output.table(versions, VERSION_COLUMNS, "versions")


@app.command("retire")
def retire(name: str, as_json: bool = JSON_OPTION) -> None:
    """Retire a model (nothing is deleted)."""
    with client() as c:
        data = c.retire_model(name)
    output.emit_json(data) if as_json else output.console.print(f"retired {name}")


def _load_mapping(path: Path) -> dict[str, Any]:
    text = path.read_text()
    data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    if not isinstance(data, dict):
        raise InvalidRequest(f"{path}: expected an object")
    return data


def _metric(text: str) -> tuple[str, float]:
    key, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return key, float(value)
    except ValueError:
        raise InvalidRequest(f"--metric {text!r}: expected name=number") from None


@app.command("register")
def register(
    name: str,
    artifact: Path = typer.Argument(..., exists=True, dir_okay=False, help="Model file."),
    flavor: str = typer.Option(..., help="sklearn (skops), onnx, xgboost, lightgbm, pyfunc."),
    examples: str = typer.Option(
        ..., help="CSV or JSON rows to smoke-test with; also used to infer the signature."
    ),
    signature: Path = typer.Option(None, exists=True, help="Signature JSON/YAML file."),
    contract: Path = typer.Option(
        None, exists=True, help="Data contract YAML (see `slipway contract infer`)."
    ),
    classes: str = typer.Option(None, help="Comma-separated class labels (onnx, xgboost...)."),
    metric: list[str] = typer.Option([], help="name=value; repeat for more."),
    trusted_type: list[str] = typer.Option([], help="Extra skops type to trust."),
    description: str = "",
    parent_version: int = typer.Option(None),
    as_json: bool = JSON_OPTION,
) -> None:
    """Upload an artifact and register it as the model's next version."""
    rows = read_rows(examples)
    if signature is not None:
        sig = _load_mapping(signature)
    else:
        labels: list[Any] | None = None
        if classes:
            labels = [_as_label(c) for c in classes.split(",")]
        sig = Signature.infer(rows, classes=labels).to_dict()
    lineage: dict[str, Any] = {"metrics": dict(_metric(m) for m in metric)}
    if parent_version:
        lineage["parent_version"] = parent_version
    with client() as c:
        data = c.register_version(
            name,
            contract=Contract.from_yaml(contract.read_text()).to_dict() if contract else None,
            artifact=artifact.read_bytes(),
            flavor=flavor,
            signature=sig,
            example_rows=rows[:20],
            lineage=lineage,
            trusted_types=trusted_type,
            description=description,
        )
    if as_json:
        output.emit_json(data)
    else:
        output.record(
            data,
            (
                "model",
                "number",
                "flavor",
                "status",
                "status_reason",
                "artifact_sha256",
                "artifact_size",
            ),
        )
    if data.get("status") != "ready":
        raise typer.Exit(1)


def _as_label(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return text


# -- governance: evaluations (slipway model evaluate) ---------------------------------
from slipway.cli import approval as _approval  # noqa: E402 - registered after the app

app.command("evaluate")(_approval.evaluate)
app.command("evaluations")(_approval.evaluations)

# -- governance: model cards, ML Test Score, inventory, reviews -----------------------
# `model list` is the inventory (owner, risk, deployments, reviews, test score).
from slipway.cli import governance as _governance  # noqa: E402 - registered after the app

app.command("list")(_governance.list_models)
app.command("card")(_governance.card)
app.command("score")(_governance.score)
app.command("attest")(_governance.attest)
app.command("review")(_governance.review)
app.command("reviews")(_governance.reviews)

# -- governance: legal hold -----------------------------------------------------------
from slipway.cli import retention as _retention  # noqa: E402 - registered after the app

app.command("hold")(_retention.hold)
app.command("release")(_retention.release)
