"""``slipway predict ENDPOINT FILE``: rows from CSV/JSON, predictions as a table."""

from __future__ import annotations

import typer

from slipway.cli import output
from slipway.cli.common import JSON_OPTION, client
from slipway.cli.inputs import read_rows


def predict(
    endpoint: str,
    file: str = typer.Argument(..., help="CSV or JSON rows; - reads stdin."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Send rows to ENDPOINT and print the predictions."""
    rows = read_rows(file)
    with client() as c:
        data = c.predict(endpoint, rows)
    if as_json:
        output.emit_json(data)
        return
    table_rows = [
        {
            "id": p["id"],
            "prediction": p["prediction"],
            "version": p["version"],
            "probabilities": p.get("probabilities"),
        }
        for p in data["predictions"]
    ]
    output.table(
        table_rows,
        ("id", "prediction", "probabilities", "version"),
        f"{endpoint} ({data['model']} v{data['version']})",
    )
