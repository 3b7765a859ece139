"""``slipway prediction show|override``: one prediction record, and a reviewer's
correction of one of its answers.

    slipway prediction show 0195f0c1a2b3c4d5e6f708192a3b4c5d-0
    slipway prediction override 0195f0c1a2b3c4d5e6f708192a3b4c5d-0 --label no \\
        --reason "customer confirmed they stayed"
"""

from __future__ import annotations

import typer

from slipway.cli import output
from slipway.cli.common import JSON_OPTION, client
from slipway.cli.monitor import _label

app = typer.Typer(
    help="Prediction records: read one back, override one of its answers.",
    no_args_is_help=True,
)

RECORD_KEYS = (
    "id",
    "created_at",
    "endpoint",
    "model",
    "version",
    "arm",
    "caller",
    "route",
    "rows",
    "outcome",
    "latency_ms",
    "outputs",
)
OVERRIDE_COLUMNS = ("prediction_id", "label", "reason", "by", "at")
OVERRIDDEN_KEYS = (
    "prediction_id",
    "endpoint",
    "model",
    "version",
    "prediction",
    "label",
    "previous_label",
    "reason",
    "by",
    "at",
)


@app.command("show")
def show(prediction_id: str, as_json: bool = JSON_OPTION) -> None:
    """The record of PREDICTION_ID (a record id, or <record>-<row> as predict returned
    it), with any overrides of its answers."""
    with client() as c:
        data = c.get_prediction(prediction_id)
    if as_json:
        output.emit_json(data)
        return
    output.record(data, RECORD_KEYS)
    if data.get("overrides"):
        output.table(data["overrides"], OVERRIDE_COLUMNS, title="overrides")


@app.command("override")
def override(
    prediction_id: str,
    label: str = typer.Option(..., "--label", help="The answer it should have been."),
    reason: str = typer.Option(..., "--reason", help="Why (required; audited)."),
    text: bool = typer.Option(
        False, "--text", help='Send a label that looks like a number as text ("1", not 1).'
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Override the answer PREDICTION_ID (<record>-<row>) got: recorded as its label, so
    label metrics count it, and audited with the reason."""
    # A model trained on 0/1 answers the number 1, and "1" would never match it; one
    # trained on "0"/"1" needs --text.
    value = label if text else _label(label, numeric=True)
    with client() as c:
        data = c.override_prediction(prediction_id, label=value, reason=reason)
    if as_json:
        output.emit_json(data)
    else:
        output.record(data, OVERRIDDEN_KEYS)
