"""``slipway contract infer|check|diff``: data contracts for pipelines and CI.

``infer`` and ``diff`` of two files run locally; ``check --model`` and ``model:version``
references fetch the version's contract through the API like every other command.
Exit codes are for CI gates: ``check`` exits 1 on any violation, ``diff`` on any
breaking change.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from slipway.cli import output
from slipway.cli.common import JSON_OPTION, client
from slipway.errors import InvalidRequest, ValidationFailed

app = typer.Typer(help="Data contracts.", no_args_is_help=True)

CHECK_COLUMNS = ("field", "violations", "reasons", "examples")
DIFF_COLUMNS = ("kind", "field", "what")


@app.command("infer")
def infer(
    file: Path = typer.Argument(..., help="Data: .csv, .parquet, .json or .jsonl."),
    category_cap: int = typer.Option(
        50, "--category-cap", min=1, help="At most this many distinct values make a category."
    ),
) -> None:
    """Infer a contract from data and print it as YAML, for review and editing."""
    from slipway.contracts.infer import infer_contract
    from slipway.contracts.io import read_table

    contract = infer_contract(read_table(str(file)), category_cap=category_cap)
    sys.stdout.write(contract.to_yaml())


@app.command("check")
def check(
    file: Path = typer.Argument(..., help="Data: .csv, .parquet, .json or .jsonl."),
    model: str = typer.Option(None, "--model", help="Check against this model's version..."),
    version: int = typer.Option(None, "--version", help="...this version."),
    contract_file: Path = typer.Option(
        None, "--contract", help="Or check against a contract file (YAML or JSON)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Count violations per field, with examples; exit 1 on any violation."""
    from slipway.contracts.batch import validate
    from slipway.contracts.io import read_table

    if contract_file is not None:
        if model is not None or version is not None:
            raise InvalidRequest("give either --contract or --model with --version, not both")
        contract = _contract_file(contract_file)
    elif model is not None and version is not None:
        contract = _contract_of_version(model, version)
    else:
        raise InvalidRequest("give --model and --version, or --contract FILE")
    report = validate(read_table(str(file)), contract)
    if as_json:
        output.emit_json(report.to_dict())
    else:
        state = "[green]ok[/green]" if report.ok else "[red]violations[/red]"
        output.console.print(
            f"{file}: {report.rows} rows, {report.invalid_rows} invalid: {state}",
            highlight=False,
        )
        for name in report.missing_columns:
            output.console.print(f"missing column: {name}", highlight=False)
        output.table(report.summary_table(), CHECK_COLUMNS)
    if not report.ok:
        _fail()


@app.command("diff")
def diff(
    old: str = typer.Argument(..., help="Contract file, or model:version."),
    new: str = typer.Argument(..., help="Contract file, or model:version."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Classify each change from OLD to NEW; exit 1 if any is breaking."""
    from slipway.contracts.diff import breaking
    from slipway.contracts.diff import diff as diff_contracts

    changes = diff_contracts(_resolve(old), _resolve(new))
    if as_json:
        output.emit_json(
            {"breaking": bool(breaking(changes)), "changes": [c.to_dict() for c in changes]}
        )
    elif not changes:
        output.console.print("no changes", highlight=False)
    else:
        output.table(
            [{**c.to_dict(), "field": c.field or "(outputs)"} for c in changes], DIFF_COLUMNS
        )
        n = len(breaking(changes))
        output.console.print(f"{n} breaking, {len(changes) - n} compatible", highlight=False)
    if breaking(changes):
        _fail()


def _fail() -> None:
    raise typer.Exit(1)


def _resolve(ref: str) -> Any:
    path = Path(ref)
    if path.is_file():
        return _contract_file(path)
    model, sep, number = ref.rpartition(":")
    if sep and model and number.isdigit():
        return _contract_of_version(model, int(number))
    raise InvalidRequest(f"{ref!r} is neither a contract file nor model:version")


def _contract_file(path: Path) -> Any:
    from slipway.contracts.schema import Contract

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidRequest(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return Contract.from_yaml(text)  # YAML is a superset of JSON
    except ValidationFailed as exc:
        raise ValidationFailed(f"{path}: {exc.message}", details=exc.details) from None


def _contract_of_version(model: str, version: int) -> Any:
    from slipway.contracts.schema import Contract

    with client() as c:
        info = c.get_version(model, version)
    contract = info.get("contract")
    if isinstance(contract, dict):
        return Contract.from_dict(contract)
    if isinstance(contract, str):
        return Contract.from_yaml(contract)
    return Contract.from_signature(info.get("signature") or {})
