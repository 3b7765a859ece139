"""What every CLI command shares: settings from global options, and the client."""

from __future__ import annotations

from pathlib import Path

import typer

from slipway.client import Client
from slipway.settings import Settings

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
    return Client(s.server_url, token)
