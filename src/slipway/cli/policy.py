"""``slipway policy ...``: policies as code, checked on deploy, rollout start and promote.

slipway policy put production production.yaml
slipway policy list
slipway policy show production
slipway policy check churn 4 --endpoint prod-churn      # dry run; exit 1 if blocked
slipway policy delete production
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from slipway.cli import output
from slipway.cli.common import JSON_OPTION, client
from slipway.errors import InvalidRequest

app = typer.Typer(
    help="Policies: the checks a version must pass to be deployed, rolled out or promoted.",
    no_args_is_help=True,
)

POLICY_COLUMNS = (
    "name",
    "revision",
    "description",
    "applies_to",
    "on",
    "created_by",
    "created_at",
    "updated_by",
    "updated_at",
)
LIST_COLUMNS = ("name", "revision", "applies_to", "on", "checks", "updated_by", "updated_at")
CHECK_COLUMNS = ("policy", "check", "type", "status", "reason")
ACTION_OPTION = typer.Option(
    "deploy", "--action", help="What to check: deploy, rollout_start or promote."
)


def _summary(policy: dict[str, Any]) -> dict[str, Any]:
    spec = policy.get("spec") or {}
    applies_to = spec.get("applies_to") or {}
    patterns = [*applies_to.get("endpoints", []), *applies_to.get("stages", [])]
    return {
        **policy,
        "applies_to": ", ".join(patterns),
        "on": ", ".join(spec.get("on") or []),
        "checks": ", ".join(c["id"] for c in spec.get("checks") or []),
    }


def _show(policy: dict[str, Any], as_json: bool) -> None:
    if as_json:
        output.emit_json(policy)
        return
    output.record(_summary(policy), POLICY_COLUMNS)
    output.console.print()
    output.console.print(escape(policy["source"].rstrip()), highlight=False)


@app.command("put")
def put(
    name: str,
    file: Path = typer.Argument(..., help="The policy's YAML (stored as written)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create policy NAME from FILE, or replace it (its revision goes up by one)."""
    try:
        source = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidRequest(f"{file}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidRequest(f"{file}: not UTF-8 text") from None
    with client() as c:
        data = c.put_policy(name, source)
    _show(data, as_json)


@app.command("list")
def list_policies(as_json: bool = JSON_OPTION) -> None:
    """List policies with the endpoints and actions they apply to."""
    with client() as c:
        found = c.list_policies()
    if as_json:
        output.emit_json(found)
    else:
        output.table([_summary(p) for p in found], LIST_COLUMNS, "policies")


@app.command("show")
def show(name: str, as_json: bool = JSON_OPTION) -> None:
    """Show policy NAME and its YAML."""
    with client() as c:
        data = c.get_policy(name)
    _show(data, as_json)


@app.command("delete")
def delete(name: str, as_json: bool = JSON_OPTION) -> None:
    """Delete policy NAME (audited); its endpoints are no longer checked by it."""
    with client() as c:
        data = c.delete_policy(name)
    output.emit_json(data) if as_json else output.console.print(f"deleted policy {name}")


@app.command("check")
def check(
    model: str,
    version: int,
    endpoint: str = typer.Option(..., "--endpoint", "-e", help="The endpoint to check for."),
    action: str = ACTION_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Dry run: would ACTION of MODEL VERSION on the endpoint pass every policy? Prints
    each check with its reason; exits 1 when it would be blocked."""
    with client() as c:
        report = c.check_policy(model, version, endpoint=endpoint, action=action)
    if as_json:
        output.emit_json(report)
    else:
        rows = [
            {"policy": policy["name"], "check": result["id"], **result}
            for policy in report["policies"]
            for result in policy["checks"]
        ]
        what = f"{action} of {model} version {version} to {endpoint}"
        if not rows:
            output.console.print(f"no policy applies to {escape(what)}: allowed")
        else:
            output.table(rows, CHECK_COLUMNS, "policy checks")
            failed = sum(1 for r in rows if r["status"] == "fail")
            verdict = f"blocked: {failed} check(s) failed" if failed else "allowed"
            output.console.print(f"{escape(what)}: {verdict}", highlight=False)
    if not report["allowed"]:
        raise typer.Exit(1)
