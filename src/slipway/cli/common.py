"""What every CLI command shares: settings from global options, and the client."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from slipway.settings import Settings

if TYPE_CHECKING:
    from slipway.client import Client

JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of a table.")


def settings() -> Settings:
    return Settings()


def token_file(s: Settings) -> Path:
    return s.home_path / "token"


def client() -> Client:
    """A client for the configured server; the token comes from SLIPWAY_TOKEN or, if
    ``slipway init --save-token`` stored one, from $SLIPWAY_HOME/token."""
    s = settings()
    token = s.token
    if not token and token_file(s).is_file():
        token = f"file:{token_file(s)}"
    # Imported here: `slipway server` and the local commands never call a server, and
    # the client's httpx is about 0.1-0.2 s of a command's start-up.
    from slipway.client import Client

    return Client(s.server_url, token)
