"""``slipway init``, ``slipway server``, ``slipway demo`` and ``slipway settings``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import typer

from slipway.cli import output
from slipway.cli.common import JSON_OPTION, token_file
from slipway.errors import Forbidden, SlipwayError, Unavailable
from slipway.settings import SETTINGS, Settings


def init(
    save_token: bool = typer.Option(
        False, help="Also write the admin token to $SLIPWAY_HOME/token (mode 0600)."
    ),
) -> None:
    """Create the store (run migrations) and the first admin token, shown once."""
    s = Settings()
    token = _bootstrap(s)
    if token is None:
        output.console.print(f"slipway is already initialized at {s.home} (store migrated).")
        return
    if save_token:
        _write_private(token_file(s), token)
    output.console.print(f"initialized slipway at {s.home}")
    output.console.print("admin token (shown once; store it in a secret manager):")
    print(token)
    output.console.print(f"\nexport SLIPWAY_TOKEN={token[:8]}...  # the full token above")


def _bootstrap(s: Settings) -> str | None:
    """Migrate the store, create the audit signing key and, on a new store, the first
    admin; returns that admin's token (to show once) or None if one existed."""
    from slipway.access.principals import bootstrap_admin
    from slipway.access.tokens import has_tokens
    from slipway.audit.checkpoints import ensure_signing_key
    from slipway.store import open_engine, upgrade

    s.home_path.mkdir(parents=True, exist_ok=True)
    ensure_signing_key(s.resolved_audit_dir)
    engine = open_engine(s.resolved_database_url)
    try:
        upgrade(engine)
        return None if has_tokens(engine) else bootstrap_admin(engine)
    finally:
        engine.dispose()


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")


def server(
    host: str = typer.Option(None, help="Listen address (default 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default 8750)."),
    workers: int = typer.Option(
        1, min=1, max=64, help="Worker processes sharing the port and the store."
    ),
) -> None:
    """Run the slipway server (control API, inference, health, metrics)."""
    import logging

    from slipway.artifacts.native_threads import one_native_thread_per_call

    # First, before a model library (and its OpenMP runtime) is imported.
    one_native_thread_per_call()

    import uvicorn

    from slipway.access.tokens import has_tokens
    from slipway.api.app import serving_app
    from slipway.audit.checkpoints import ensure_signing_key
    from slipway.runtime import Runtime

    s = Settings({"host": host, "port": port})
    if not s.auth and not _is_loopback(s.host):
        raise Forbidden(
            f"refusing to listen on {s.host} with authentication disabled "
            "(SLIPWAY_AUTH=false is for 127.0.0.1 / ::1 only)"
        )
    logging.basicConfig(
        level=s.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    ensure_signing_key(s.resolved_audit_dir)
    runtime = Runtime.from_settings(s)
    if not has_tokens(runtime.engine):
        runtime.close()
        raise Unavailable("no admin token exists yet: run `slipway init` first")
    if workers > 1:
        runtime.close()  # each worker opens its own (engines do not survive a fork)
        _serve_workers(s, workers)
        return
    app = serving_app(s, runtime=runtime)
    config = uvicorn.Config(app, lifespan="on", **_uvicorn_options(s))

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            runtime.draining = True  # readiness goes false before connections close
            super().handle_exit(sig, frame)
            # uvicorn re-raises the captured signal after its graceful shutdown, which
            # would end the process "killed by SIGTERM"; a drained shutdown exits 0.
            captured = getattr(self, "_captured_signals", None)
            if isinstance(captured, list):
                captured.clear()

    DrainingServer(config).run()


def _serve_workers(s: Settings, workers: int) -> None:
    """``workers`` processes on one port, each with its own runtime (pool, writer,
    windows) over the shared store; uvicorn's supervisor restarts one that dies and
    passes SIGTERM on, so each drains its in-flight requests."""
    import os

    import uvicorn

    # The workers read their settings from the environment: pass the flags on.
    os.environ["SLIPWAY_HOST"], os.environ["SLIPWAY_PORT"] = s.host, str(s.port)
    uvicorn.run("slipway.api.app:worker_app", factory=True, workers=workers, **_uvicorn_options(s))


def _uvicorn_options(s: Settings) -> dict[str, Any]:
    """uvicorn's options, one worker or many."""
    return {
        "host": s.host,
        "port": s.port,
        "log_level": s.log_level,
        "access_log": False,
        "timeout_graceful_shutdown": int(s.shutdown_grace_s),
        # slipway reads no client address (the audit log names principals, not IPs), so
        # rewriting it from X-Forwarded-For is work for nothing: about 4% of a request's
        # CPU (py-spy, benchmarks/serving), and a header not to trust by default.
        "proxy_headers": False,
    }


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def show_settings(as_json: bool = JSON_OPTION) -> None:
    """Every setting with its environment variable, current value and help."""
    s = Settings()
    rows = [
        {
            "setting": d.name,
            "env": d.env_var,
            "value": _shown(d.name, getattr(s, d.name)),
            "help": d.help,
        }
        for d in SETTINGS
    ]
    output.emit_json(rows) if as_json else output.table(rows, ("setting", "env", "value", "help"))


def _shown(name: str, value: object) -> object:
    """A setting's value fit to print: secrets masked, URL passwords hidden."""
    if name == "token":
        return "***" if value else ""
    if name in ("database_url", "artifact_url") and value and "@" in str(value):
        from sqlalchemy.engine import make_url

        try:
            return make_url(str(value)).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - not a SQLAlchemy URL: hide it all
            return "***"
    return value


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def demo(
    keep_serving: bool = typer.Option(False, help="Leave the server running afterwards."),
) -> None:
    """Train a small model, register, deploy and serve it — end to end, on this machine."""
    from slipway.cli.demo import run_demo

    s = Settings()
    tfile = token_file(s)
    new_token = _bootstrap(s)
    if new_token is not None:
        _write_private(tfile, new_token)
    token = s.token or (tfile.read_text().strip() if tfile.is_file() else "")
    if not token:
        raise Unavailable(f"{s.home} is initialized but no token is at hand: set SLIPWAY_TOKEN")
    port = _free_port()
    log_path = s.home_path / "demo-server.log"
    env = {
        **os.environ,
        "SLIPWAY_HOME": s.home,
        "SLIPWAY_PORT": str(port),
        "SLIPWAY_HOST": "127.0.0.1",
    }
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "slipway", "server"], env=env, stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log_path)
        run_demo(url, token, s.home)
        if keep_serving:
            output.console.print(f"\nserving on {url}; Ctrl-C to stop")
            proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SlipwayError(f"the server exited early; see {log_path}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise Unavailable(f"the server did not start within 60 s; see {log_path}")
