"""Fixtures shared by every suite: store URLs for both backends, and real servers.

PostgreSQL: 127.0.0.1:5432, database ``test``, trust auth (as in CI); each test gets
its own schema, dropped afterwards. Where no PostgreSQL answers, those tests skip with
the reason. Set SLIPWAY_TEST_POSTGRES_URL to point elsewhere.
"""

from __future__ import annotations

import atexit
import compileall
import functools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

POSTGRES_URL = os.environ.get(
    "SLIPWAY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_unreachable() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'slipway[postgres]')"
    try:
        url = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
        psycopg.connect(url, connect_timeout=3).close()
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"no PostgreSQL at {POSTGRES_URL}: {type(exc).__name__}"
    return None


@pytest.fixture(scope="session")
def postgres_reason() -> str | None:
    return _postgres_unreachable()


@pytest.fixture
def postgres_url(postgres_reason: str | None) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    if postgres_reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL store tests: {postgres_reason}")
        pytest.skip(postgres_reason)
    import psycopg

    schema = f"t_{secrets.token_hex(6)}"
    plain = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The behavioural store suite runs once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'slipway.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def engine(store_url: str) -> Iterator[Any]:
    """A migrated store, once per backend (SQLite and PostgreSQL)."""
    from slipway.store import open_engine, upgrade

    eng = open_engine(store_url)
    upgrade(eng)
    yield eng
    eng.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """A real ``slipway server`` process on a free port, with its own home."""

    home: Path
    env: dict[str, str]
    token: str = ""
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    # Extra arguments of ``slipway server`` (e.g. ``--workers 2``).
    server_args: tuple[str, ...] = ()
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.home / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "SLIPWAY_URL": self.url, "SLIPWAY_TOKEN": self.token, "COLUMNS": "200"}
        result = subprocess.run(
            [sys.executable, "-m", "slipway", *args],
            env=env,
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"slipway {' '.join(args)} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def init(self) -> None:
        """``slipway init --save-token`` for this home. On the default store (a SQLite
        file in the home) the home is a copy of one that command made once per test
        process: each run costs a CLI process and every migration, a few seconds on a
        busy CI machine, and the suite starts dozens of servers. tests/cli/test_cli.py
        runs the real command on its own."""
        self.home.mkdir(parents=True, exist_ok=True)
        if INIT_SETTINGS.isdisjoint(self.env):
            shutil.copytree(_initialized_home(), self.home, dirs_exist_ok=True)
        else:
            self.cli("init", "--save-token")
        self.token = (self.home / "token").read_text().strip()

    def start(self, timeout: float = 60) -> None:
        self.port = free_port()
        env = {**self.env, "SLIPWAY_PORT": str(self.port), "SLIPWAY_HOST": "127.0.0.1"}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "slipway", "server", *self.server_args],
                env=env,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + timeout
        # One client for the polling: each new one builds an SSL context (~30 ms).
        with httpx.Client(timeout=1) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"server exited early:\n{self.log()}")
                try:
                    if http.get(f"{self.url}/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise AssertionError(f"server did not start:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def client(self, **kwargs: Any) -> Any:
        import slipway

        return slipway.Client(self.url, self.token, **kwargs)


def make_server(home: Path, **env: str) -> ServerProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    base.update({"SLIPWAY_HOME": str(home), "SLIPWAY_LOG_LEVEL": "info", "OMP_NUM_THREADS": "1"})
    base.update(env)
    return ServerProcess(home=home, env=base)


# Settings that change what ``slipway init`` creates or where: a home whose environment
# sets one of them is initialized by the command itself, not copied.
INIT_SETTINGS = frozenset({"SLIPWAY_DATABASE_URL", "SLIPWAY_ARTIFACT_URL", "SLIPWAY_AUDIT_DIR"})


@functools.cache
def _initialized_home() -> Path:
    """A home made by ``slipway init --save-token`` once per test process, removed when
    the process exits; :meth:`ServerProcess.init` copies it."""
    root = Path(tempfile.mkdtemp(prefix="slipway-home-template-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    template = make_server(root / "home")
    template.home.mkdir()
    template.cli("init", "--save-token")
    return template.home


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A fresh, initialized, running server for one test."""
    proc = make_server(tmp_path / "home")
    proc.init()
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for a whole module of tests that do not stop or break it."""
    proc = make_server(tmp_path_factory.mktemp("shared") / "home")
    proc.init()
    proc.start()
    yield proc
    proc.stop()


def pyfunc_runtime(home: Path, database_url: str = "") -> Any:
    """A runtime on ``home`` (and ``database_url``, default its SQLite file) that trusts
    the example pyfunc module of tests/artifacts (which must be importable)."""
    from slipway.runtime import Runtime
    from slipway.settings import Settings

    settings = Settings(
        {
            "home": str(home),
            "database_url": database_url,
            "pyfunc_trusted_modules": "pyfunc_example",
        },
        environ={},
    )
    return Runtime.from_settings(settings)


def ready_pyfunc_version(
    runtime: Any,
    model: str,
    cls: str,
    *,
    init: dict[str, Any] | None = None,
    actor: Any,
    **register: Any,
) -> Any:
    """A ready version of ``model`` answering with ``pyfunc_example.<cls>(**init)``
    (tests/artifacts; the runtime must trust the module), registered by ``actor`` with
    ``register``'s options and marked ready without the sandbox smoke test."""
    artifact = json.dumps({"class": f"pyfunc_example:{cls}", "init": init or {}}).encode()
    version = runtime.versions.register(
        model,
        artifact_sha256=runtime.artifacts.put_bytes(artifact).sha256,
        flavor="pyfunc",
        actor=actor,
        **register,
    )
    return runtime.versions.set_status(version, "ready", actor=actor)


# The longest files first (seconds in one run on the 2-core CI machine): handed out
# last, one of them kept one process busy for minutes after the other had finished.
LONGEST_FILES = (
    "tests/access/test_security.py",  # 132
    "tests/e2e/test_crash_safety.py",  # 115
    "tests/e2e/test_rollout.py",  # 94
    "tests/e2e/test_artifact_safety.py",  # 67
    "tests/access/test_cli_access.py",  # 65
    "tests/e2e/test_overload.py",  # 62
    "tests/e2e/test_store_down.py",  # 52
    "tests/cli/test_cli.py",  # 51
)


def pytest_configure(config: pytest.Config) -> None:
    """Compile slipway's sources once, before the test processes start.

    The suite starts hundreds of ``slipway`` processes (servers, CLI commands). With
    ``PYTHONDONTWRITEBYTECODE`` set, as on the CI machines, an editable install never
    gets its bytecode cached and each process compiled every slipway module it imported
    again, about 0.5 s of a server's start-up. Python reads bytecode this writes either
    way; in three CLI-heavy files, 121 s against 136 s (two runs each)."""
    if hasattr(config, "workerinput"):  # an xdist worker: the controller did it
        return
    import slipway

    compileall.compile_dir(Path(slipway.__file__).parent, quiet=1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run ``LONGEST_FILES`` first; the rest keep their order (the sort is stable)."""
    rank = {path: i for i, path in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.partition("::")[0], len(rank)))
