"""The ``slipway`` command: ``slipway <noun> <verb>``, a client of the server.

Only ``init`` and ``server`` touch the store directly (migrations, the first token);
every other command goes through the HTTP API like any other client.
"""

from __future__ import annotations

import sys

import typer

from slipway.cli import endpoint, model, predict, setup
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
app.add_typer(model.app, name="model")
app.add_typer(endpoint.app, name="endpoint")


def main() -> None:
    try:
        app(standalone_mode=False)
    except SlipwayError as exc:
        err_console.print(f"[red]error[/red] ({exc.code}): {exc.message}", highlight=False)
        for detail in exc.details[:20]:
            err_console.print(f"  - {detail}", highlight=False)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
