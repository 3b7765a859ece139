"""The ``slipway`` command: ``slipway <noun> <verb>``, a client of the server.

Only ``init`` and ``server`` touch the store directly (migrations, the first token);
every other command goes through the HTTP API like any other client.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.markup import escape

from slipway.cli import (
    access,
    approval,
    audit,
    contract,
    drift,
    endpoint,
    model,
    monitor,
    policy,
    predict,
    prediction,
    quarantine,
    retention,
    rollout,
    setup,
)
from slipway.cli.output import err_console
from slipway.errors import SlipwayError

app = typer.Typer(
    name="slipway",
    help="Take a trained model from pilot to production and keep it healthy there.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("init")(setup.init)
app.command("server")(setup.server)
app.command("demo")(setup.demo)
app.command("settings")(setup.show_settings)
app.command("predict")(predict.predict)
app.command("drift")(drift.drift)
app.add_typer(model.app, name="model")
app.add_typer(endpoint.app, name="endpoint")
app.add_typer(rollout.app, name="rollout")
app.add_typer(policy.app, name="policy")
app.add_typer(access.principal_app, name="principal")
app.add_typer(access.token_app, name="token")
app.add_typer(access.grant_app, name="grant")
app.add_typer(audit.app, name="audit")
app.add_typer(quarantine.app, name="quarantine")
app.add_typer(contract.app, name="contract")
app.add_typer(monitor.app, name="monitor")
app.add_typer(monitor.alert_app, name="alert")
app.add_typer(monitor.channel_app, name="channel")
app.add_typer(monitor.feedback_app, name="feedback")
app.add_typer(retention.app, name="retention")
app.add_typer(prediction.app, name="prediction")
app.add_typer(approval.app, name="approval")


def main() -> None:
    try:
        # Without standalone mode click returns typer.Exit's code instead of exiting.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except SlipwayError as exc:
        # soft_wrap: one error, one line, however narrow the terminal (scripts grep it).
        err_console.print(
            f"[red]error[/red] ({exc.code}): {escape(exc.message)}",
            highlight=False,
            soft_wrap=True,
        )
        for detail in exc.details[:20]:
            text = _detail_text(detail)
            if text != exc.message:  # a single-field error already says it in the message
                err_console.print(f"  - {escape(text)}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # usage errors: missing option, bad value, unknown command
        # Duck-typed: typer now ships its own copy of click (typer._click), whose
        # ClickException is not click.ClickException, so isinstance() let these through
        # as tracebacks.
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            sys.exit(exit_code)
        raise


def _detail_text(detail: Any) -> str:
    if isinstance(detail, dict) and "reason" in detail:
        field = detail.get("field")
        return f"{field}: {detail['reason']}" if field else str(detail["reason"])
    return str(detail)
