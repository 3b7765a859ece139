"""``slipway principal|token|grant ...``: who may do what."""

from __future__ import annotations

import re

import typer

from slipway.cli import output
from slipway.cli.common import JSON_OPTION, client
from slipway.errors import ValidationFailed

principal_app = typer.Typer(help="Users and service accounts.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens (shown once, stored hashed).", no_args_is_help=True)
grant_app = typer.Typer(
    help="Roles granted globally or on one model/endpoint.", no_args_is_help=True
)

PRINCIPAL_COLUMNS = ("name", "kind", "owner", "disabled", "created_by", "created_at")
TOKEN_COLUMNS = (
    "id",
    "principal",
    "name",
    "scopes",
    "expires_at",
    "revoked_at",
    "last_used_at",
    "rate_limit_rps",
    "max_concurrent",
)
GRANT_COLUMNS = ("id", "principal", "role", "scope_kind", "scope_name", "revoked_at")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def parse_duration(text: str, option: str) -> float:
    """ "90s", "15m", "12h", "30d" to seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValidationFailed.field(option, f"{text!r} is not a duration like 30m, 12h or 90d")
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


@principal_app.command("create")
def principal_create(
    name: str,
    kind: str = typer.Option("user", help="user or service."),
    owner: str = typer.Option("", help="Who answers for it (required for service accounts)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a user or a service account."""
    with client() as c:
        data = c.create_principal(name, kind=kind, owner=owner)
    output.emit_json(data) if as_json else output.record(data, PRINCIPAL_COLUMNS)


@principal_app.command("list")
def principal_list(as_json: bool = JSON_OPTION) -> None:
    """List principals."""
    with client() as c:
        found = c.list_principals()
    output.emit_json(found) if as_json else output.table(found, PRINCIPAL_COLUMNS, "principals")


@principal_app.command("show")
def principal_show(name: str, as_json: bool = JSON_OPTION) -> None:
    """Show a principal and its grants."""
    with client() as c:
        data = c.get_principal(name)
    if as_json:
        output.emit_json(data)
        return
    output.record(data, PRINCIPAL_COLUMNS)
    output.table(data["grants"], GRANT_COLUMNS, "grants")


@principal_app.command("disable")
def principal_disable(name: str) -> None:
    """Disable a principal: its tokens stop working within a second."""
    with client() as c:
        c.set_principal_disabled(name, True)
    output.console.print(f"disabled {name}")


@principal_app.command("enable")
def principal_enable(name: str) -> None:
    """Enable a disabled principal again."""
    with client() as c:
        c.set_principal_disabled(name, False)
    output.console.print(f"enabled {name}")


def _show_secret(data: dict[str, object], as_json: bool) -> None:
    if as_json:
        output.emit_json(data)
        return
    output.record(data, ("id", "principal", "name", "scopes", "expires_at"))
    output.console.print("token (shown once; store it in a secret manager):")
    print(data["token"])


@token_app.command("create")
def token_create(
    principal: str,
    name: str = typer.Option("", help="A label, e.g. where it is used."),
    scope: list[str] = typer.Option([], help="Limit to a permission; repeat for more."),
    expires_in: str = typer.Option(None, help="Lifetime, e.g. 30d, 12h."),
    rps: float = typer.Option(None, help="Requests per second allowed."),
    max_concurrent: int = typer.Option(None, help="Concurrent requests allowed."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Issue a token for PRINCIPAL; it is printed once."""
    seconds = parse_duration(expires_in, "--expires-in") if expires_in else None
    with client() as c:
        data = c.create_token(
            principal,
            name=name,
            scopes=scope,
            expires_in_s=seconds,
            rate_limit_rps=rps,
            max_concurrent=max_concurrent,
        )
    _show_secret(data, as_json)


@token_app.command("list")
def token_list(principal: str = typer.Option(None), as_json: bool = JSON_OPTION) -> None:
    """List tokens (metadata only; secrets are never shown again)."""
    with client() as c:
        found = c.list_tokens(principal)
    output.emit_json(found) if as_json else output.table(found, TOKEN_COLUMNS, "tokens")


@token_app.command("revoke")
def token_revoke(token_id: str, reason: str = typer.Option("", help="Why.")) -> None:
    """Revoke a token; every worker refuses it within a second."""
    with client() as c:
        c.revoke_token(token_id, reason=reason)
    output.console.print(f"revoked {token_id}")


@token_app.command("rotate")
def token_rotate(
    token_id: str,
    overlap: str = typer.Option("1h", help="How long the old token keeps working."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Issue a replacement token; the old one expires after the overlap."""
    with client() as c:
        data = c.rotate_token(token_id, overlap_s=parse_duration(overlap, "--overlap"))
    _show_secret(data, as_json)


@grant_app.command("add")
def grant_add(
    principal: str,
    role: str = typer.Argument(..., help="viewer, developer, approver, operator, predictor, admin"),
    model: str = typer.Option(None, help="Only on this model."),
    endpoint: str = typer.Option(None, help="Only on this endpoint."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Grant ROLE to PRINCIPAL, globally or on one model or endpoint."""
    if model and endpoint:
        raise ValidationFailed.field("--model/--endpoint", "give at most one")
    kind, scope = (
        ("model", model) if model else ("endpoint", endpoint) if endpoint else ("global", None)
    )
    with client() as c:
        data = c.create_grant(principal, role, scope_kind=kind, scope_name=scope)
    output.emit_json(data) if as_json else output.record(data, GRANT_COLUMNS)


@grant_app.command("list")
def grant_list(principal: str = typer.Option(None), as_json: bool = JSON_OPTION) -> None:
    """List grants."""
    with client() as c:
        found = c.list_grants(principal)
    output.emit_json(found) if as_json else output.table(found, GRANT_COLUMNS, "grants")


@grant_app.command("revoke")
def grant_revoke(grant_id: str) -> None:
    """Revoke a grant."""
    with client() as c:
        c.revoke_grant(grant_id)
    output.console.print(f"revoked grant {grant_id}")
