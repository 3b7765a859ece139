"""Serving benchmark: slipway side by side with the floor, MLflow and BentoML, in one run.

    .venv/bin/python benchmarks/serving/run.py            # full run, writes RESULTS.md
    .venv/bin/python benchmarks/serving/run.py --quick    # smoke test, c=64, short runs

Targets, each started on a free 127.0.0.1 port, one at a time, and loaded by the same
wrk with single-row POSTs at each concurrency:

- slipway:  ``slipway server`` with its defaults (auth, contract check, durable records,
            metrics), a fresh ``SLIPWAY_HOME``; the plain JSON route and the V2 route;
- bare:     ``bare.py``, a Starlette endpoint that parses JSON and calls the model;
- bare-durable: the same, committing each answer to SQLite before sending it: the
            simplest server that, like slipway, never acknowledges an unrecorded
            prediction (the floor for one client at a time);
- mlflow:   ``mlflow models serve`` (its own venv), ``inputs`` and ``dataframe_split``;
- bentoml:  ``bentoml serve`` (its own venv) of ``bento_service.py``.

Every server's answer is compared with the model's own probabilities before it is
measured; a target that cannot be installed, started or gives a wrong answer is reported
as ``n/a (reason)``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import models  # noqa: E402

PROJECT_BIN = Path(sys.executable).parent
WORK = HERE / ".work"
# One native thread per worker process: workers x threads <= cores (DESIGN.md §7).
THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}
STARTUP_TIMEOUT_S = 180.0
# Other processes' CPU (in cores) above which a cell counts as disturbed.
QUIET_CORES = 0.25
TOLERANCE = 1e-6


class Unavailable(Exception):
    """A target that cannot be installed, started or checked: its cells read n/a."""


@dataclass(frozen=True)
class Options:
    models: tuple[str, ...]
    targets: tuple[str, ...]
    concurrency: tuple[int, ...]
    duration: int
    warmup: int
    workers: int
    wrk_timeout: int
    settle: float
    retries: int
    slipway_env: dict[str, str]
    profile: bool
    output: Path
    setup: bool = True


@dataclass(frozen=True)
class Route:
    """One way of asking a server for the benchmark row's probabilities."""

    label: str
    path: str
    body: Any
    probabilities: Callable[[Any], list[float]]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Cell:
    model: str
    concurrency: int
    label: str
    workers: int | None = None
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int | None = None
    rss_mb: float | None = None
    # CPU the server's process tree used per answered request (steadier than req/s when
    # something else shares the machine), and the cores other processes used meanwhile.
    cpu_ms: float | None = None
    other_cores: float | None = None
    attempts: int = 1
    na: str = ""


# -- servers ---------------------------------------------------------------------------------


class Server(ABC):
    """A target: how to prepare it once, start it for a model, ask it, and stop it."""

    name: str
    labels: tuple[str, ...]

    def __init__(self, options: Options) -> None:
        self.options = options
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = WORK / f"{self.name}.log"
        self.notes: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def workers(self) -> int:
        return self.options.workers

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Once per run, before any model (install checks, saving models)."""

    def versions(self) -> dict[str, str]:
        return {}

    @abstractmethod
    def command(self, model: str) -> list[str]: ...

    def env(self, model: str) -> dict[str, str]:
        return {}

    @abstractmethod
    def routes(self, model: str) -> list[Route]: ...

    def after_start(self, model: str) -> None:  # noqa: B027 - optional hook
        """Runs once the process is launched, before its routes are checked."""

    def start(self, model: str) -> None:
        self.port = free_port()
        self.log = WORK / f"{self.name}-{model}.log"
        env = {**os.environ, **THREAD_ENV, **self.env(model)}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(model),
                env=env,
                cwd=HERE,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends all of it
            )
        self.after_start(model)
        expected = EXPECTED[model]
        for route in self.routes(model):
            answer = self.wait_for(route)
            got = route.probabilities(answer)
            if len(got) != len(expected) or any(
                abs(a - b) > TOLERANCE for a, b in zip(got, expected, strict=True)
            ):
                raise Unavailable(f"{route.label} answered {got}, expected {expected}")

    def wait_for(self, route: Route | None = None, path: str = "/") -> Any:
        """Poll until ``route`` answers 200 (or GET ``path`` does); returns the JSON."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise Unavailable(f"exited during start-up: {tail(self.log)}")
            try:
                if route is None:
                    return request(self.url + path)
                return request(self.url + route.path, route.body, route.headers)
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}: {exc.read()[:300].decode(errors='replace')}"
            except (OSError, ValueError) as exc:
                last = str(exc)
            time.sleep(0.25)
        raise Unavailable(f"not ready after {STARTUP_TIMEOUT_S:.0f} s: {last}")

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        # Workers left behind in the group (the leader exited first) go too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None


def first_row_proba(answer: Any) -> list[float]:
    """``{"predictions": [{"probabilities": {"0": p0, "1": p1}, ...}]}``"""
    return [float(p) for p in answer["predictions"][0]["probabilities"].values()]


class Slipway(Server):
    name = "slipway"
    labels: tuple[str, ...] = ("slipway", "slipway (V2)")

    # Settings that shape serving throughput, shown in the report when this build has them.
    TUNING = (
        "predict_threads",
        "inline_call_ms",
        "batch_max_rows",
        "batch_wait_ms",
        "record_flush_ms",
    )

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self.home: Path | None = None
        self.token = ""
        self.has_workers_option = False
        self.settings: dict[str, Any] = {}

    @property
    def extra_env(self) -> dict[str, str]:
        """This variant's settings on top of ``--slipway-env``."""
        return dict(self.options.slipway_env)

    @property
    def workers(self) -> int:
        return self.options.workers if self.has_workers_option else 1

    def prepare(self) -> None:
        help_text = run([str(PROJECT_BIN / "slipway"), "server", "--help"]).stdout
        self.has_workers_option = "--workers" in help_text
        if self.options.workers > 1 and not self.has_workers_option:
            self.notes.append(
                f"`slipway server` has no --workers option yet: {self.name} ran with 1 "
                f"worker, the others with {self.options.workers}"
            )
        shown = run(
            [str(PROJECT_BIN / "slipway"), "settings", "--json"],
            env={**os.environ, **self.extra_env},
        ).stdout
        self.settings = {d["setting"]: d["value"] for d in json.loads(shown)}
        tuning = [f"{k}={self.settings[k]}" for k in self.TUNING if k in self.settings]
        self.notes.append(f"{self.name} settings: {', '.join(tuning) or 'defaults'}")

    def versions(self) -> dict[str, str]:
        return package_versions(
            sys.executable,
            ["slipway", "scikit-learn", "numpy", "uvicorn", "starlette", "fastapi", "msgspec"],
        )

    def start(self, model: str) -> None:
        self.home = Path(tempfile.mkdtemp(prefix=f"slipway-bench-{model}-"))
        env = {**os.environ, **self.env(model)}
        run([str(PROJECT_BIN / "slipway"), "init", "--save-token"], env=env)
        self.token = (self.home / "token").read_text().strip()
        super().start(model)

    def command(self, model: str) -> list[str]:
        command = [str(PROJECT_BIN / "slipway"), "server", "--port", str(self.port)]
        if self.has_workers_option:
            command += ["--workers", str(self.options.workers)]
        return command

    def env(self, model: str) -> dict[str, str]:
        return {
            "SLIPWAY_HOME": str(self.home),
            "SLIPWAY_HOST": "127.0.0.1",
            **self.extra_env,
        }

    def after_start(self, model: str) -> None:
        from slipway.client import Client

        self.wait_for(path="/healthz")
        X, y = models.data()
        with Client(self.url, self.token) as client:
            version = client.register(
                models.train(model),
                name=model,
                X_train=X,
                y_train=y,
                owner="bench",
                feature_names=models.FEATURES,
                trusted_types=models.HGB_TRUSTED_TYPES if model == "hgb" else None,
            )
            if version["status"] != "ready":
                raise Unavailable(f"registration {version['status']}: {version}")
            client.deploy(model, model=model, version=version["number"])

    def routes(self, model: str) -> list[Route]:
        auth = {"Authorization": f"Bearer {self.token}"}
        v2_input = {
            "name": "input-0",
            "shape": [1, len(models.FEATURES)],
            "datatype": "FP64",
            "data": [models.row()],
        }
        return [
            Route(
                "slipway",
                f"/v1/endpoints/{model}/predict",
                {"inputs": [models.record()]},
                first_row_proba,
                auth,
            ),
            Route(
                "slipway (V2)", f"/v2/models/{model}/infer", {"inputs": [v2_input]}, v2_proba, auth
            ),
        ]

    def stop(self) -> None:
        super().stop()
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)
            self.home = None


class SlipwayUnbatched(Slipway):
    """slipway with micro-batching off: every request is its own model call."""

    name = "slipway-unbatched"
    labels = ("slipway (unbatched)",)

    @property
    def extra_env(self) -> dict[str, str]:
        return {**self.options.slipway_env, "SLIPWAY_BATCH_MAX_ROWS": "0"}

    def prepare(self) -> None:
        super().prepare()
        if "batch_max_rows" not in self.settings:
            raise Unavailable("this slipway build has no micro-batching setting to turn off")

    def versions(self) -> dict[str, str]:
        return {}  # the same venv as slipway's, listed once

    def routes(self, model: str) -> list[Route]:
        return [replace(super().routes(model)[0], label=self.labels[0])]


SLIPWAY_LABELS = (*Slipway.labels, *SlipwayUnbatched.labels)


def v2_proba(answer: Any) -> list[float]:
    output = next(o for o in answer["outputs"] if o["name"] == "predict_proba")
    return [float(p) for p in flatten(output["data"])]


class Bare(Server):
    name = "bare"
    labels = ("bare",)

    def command(self, model: str) -> list[str]:
        return [
            str(PROJECT_BIN / "uvicorn"),
            "bare:app",
            *("--app-dir", str(HERE), "--host", "127.0.0.1", "--port", str(self.port)),
            *("--workers", str(self.options.workers), "--no-access-log", "--log-level", "warning"),
        ]

    def env(self, model: str) -> dict[str, str]:
        return {"BENCH_MODEL": model}

    def routes(self, model: str) -> list[Route]:
        return [Route(self.labels[0], "/predict", {"inputs": [models.record()]}, first_row_proba)]


class BareDurable(Bare):
    """The bare endpoint committing each answer to SQLite before sending it: the simplest
    server that keeps slipway's durability promise (see bare.py)."""

    name = "bare-durable"
    labels = ("bare (durable)",)

    def database(self, model: str) -> Path:
        return WORK / f"{self.name}-{model}.db"

    def start(self, model: str) -> None:
        db = self.database(model)  # a fresh one per start
        for leftover in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            leftover.unlink(missing_ok=True)
        super().start(model)

    def env(self, model: str) -> dict[str, str]:
        return {**super().env(model), "BENCH_RECORD_DB": str(self.database(model))}


class VenvServer(Server):
    """A target installed in its own venv next to this script (setup.sh makes it)."""

    packages: tuple[str, ...]

    @property
    def bin(self) -> Path:
        return HERE / f".venv-{self.name}" / "bin"

    def prepare(self) -> None:
        if not (self.bin / "python").exists():
            raise Unavailable(f"not installed: .venv-{self.name} missing (run setup.sh)")
        self.save_models()

    @abstractmethod
    def save_models(self) -> None: ...

    def versions(self) -> dict[str, str]:
        return package_versions(str(self.bin / "python"), list(self.packages))

    def env(self, model: str) -> dict[str, str]:
        # Their CLIs start helpers (uvicorn, workers) by name from PATH.
        return {"PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}"}

    def run_python(self, *args: str, env: dict[str, str] | None = None) -> None:
        try:
            run([str(self.bin / "python"), *args], env={**os.environ, **(env or {})})
        except subprocess.CalledProcessError as exc:
            raise Unavailable(f"{args[0]} failed: {last_line(exc.stderr)}") from None


class Mlflow(VenvServer):
    name = "mlflow"
    labels = ("mlflow (inputs)", "mlflow (dataframe_split)")
    packages = ("mlflow", "scikit-learn", "numpy", "pandas", "uvicorn", "fastapi")

    def save_models(self) -> None:
        shutil.rmtree(WORK / "mlflow-models", ignore_errors=True)
        self.run_python("mlflow_model.py", str(WORK / "mlflow-models"))

    def command(self, model: str) -> list[str]:
        return [
            str(self.bin / "mlflow"),
            *("models", "serve", "-m", str(WORK / "mlflow-models" / model)),
            *("--env-manager", "local", "-h", "127.0.0.1", "-p", str(self.port)),
            *("-w", str(self.options.workers)),
        ]

    def routes(self, model: str) -> list[Route]:
        def proba(answer: Any) -> list[float]:
            return [float(p) for p in answer["predictions"][0]]

        split = {"dataframe_split": {"columns": models.FEATURES, "data": [models.row()]}}
        return [
            Route("mlflow (inputs)", "/invocations", {"inputs": [models.row()]}, proba),
            Route("mlflow (dataframe_split)", "/invocations", split, proba),
        ]


class Bentoml(VenvServer):
    name = "bentoml"
    labels = ("bentoml",)
    packages = ("bentoml", "scikit-learn", "numpy", "pydantic", "uvicorn", "starlette")

    def save_models(self) -> None:
        shutil.rmtree(WORK / "bentoml-home", ignore_errors=True)
        self.run_python("bento_service.py", "save", env=self.bento_env())

    def bento_env(self) -> dict[str, str]:
        return {"BENTOML_HOME": str(WORK / "bentoml-home"), "BENTOML_DO_NOT_TRACK": "true"}

    def command(self, model: str) -> list[str]:
        return [
            str(self.bin / "bentoml"),
            *("serve", "bento_service:Classifier", "--working-dir", str(HERE)),
            *("--host", "127.0.0.1", "--port", str(self.port)),
        ]

    def env(self, model: str) -> dict[str, str]:
        return {
            **super().env(model),
            **self.bento_env(),
            "BENCH_MODEL": model,
            "BENCH_WORKERS": str(self.options.workers),
        }

    def routes(self, model: str) -> list[Route]:
        body = {"input_data": [models.row()]}
        return [Route("bentoml", "/predict", body, lambda answer: [float(p) for p in answer[0]])]


SERVERS: dict[str, type[Server]] = {
    cls.name: cls for cls in (Slipway, SlipwayUnbatched, Bare, BareDurable, Mlflow, Bentoml)
}
EXPECTED: dict[str, list[float]] = {}


# -- load generation and measurement -----------------------------------------------------------

LUA_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, '
    .. '"status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def lua_script(route: Route, path: Path) -> Path:
    """The wrk script: POST the route's body with its headers, report as one JSON line."""
    body = json.dumps(route.body)
    level = "="
    while f"]{level}]" in body:
        level += "="
    lines = ['wrk.method = "POST"', f"wrk.body = [{level}[{body}]{level}]"]
    headers = {"Content-Type": "application/json", **route.headers}
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    path.write_text("\n".join(lines) + "\n" + LUA_DONE)
    return path


@dataclass(frozen=True)
class WrkResult:
    rps: float
    answered: int
    p50_ms: float
    p99_ms: float
    errors: int


def wrk(url: str, script: Path, concurrency: int, seconds: int, timeout: int) -> WrkResult:
    command = [
        "wrk",
        *("-t1", f"-c{concurrency}", f"-d{seconds}s", f"--timeout={timeout}s"),
        *("--latency", "-s", str(script), url),
    ]
    done = subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=seconds + timeout + 60
    )
    with (WORK / "wrk.log").open("a") as log:
        log.write(f"$ {shlex.join(command)}\n{done.stdout}{done.stderr}\n")
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise Unavailable(f"wrk failed: {last_line(done.stderr or done.stdout)}")
    r = json.loads(line.removeprefix("WRK_JSON "))
    errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    good = r["requests"] - r["status"]  # non-2xx answers are not throughput
    return WrkResult(
        rps=good / (r["duration_us"] / 1e6),
        answered=good,
        p50_ms=r["p50_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
        errors=errors,
    )


def process_tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += children.get(p, [])
    return tree


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def busy_cpu_s() -> float:
    """CPU seconds all cores spent busy since boot (user, nice, system, irq, softirq)."""
    user, nice, system, _idle, _iowait, irq, softirq = map(
        int, Path("/proc/stat").read_text().split(maxsplit=8)[1:8]
    )
    return (user + nice + system + irq + softirq) / CLOCK_TICKS


def tree_cpu_s(pid: int) -> float:
    total = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{p}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class CpuSample:
    at: float  # monotonic seconds
    busy: float  # all cores' busy CPU seconds
    server: float  # the server's process tree's CPU seconds
    children: float  # CPU seconds of this script's finished children (wrk)

    @classmethod
    def take(cls, pid: int) -> CpuSample:
        return cls(time.monotonic(), busy_cpu_s(), tree_cpu_s(pid), children_cpu_s())


def settle(max_wait_s: float, idle_cores: float = QUIET_CORES) -> None:
    """Wait (at most ``max_wait_s``) for other processes to leave the CPUs alone."""
    deadline = time.monotonic() + max_wait_s
    while True:
        before = busy_cpu_s()
        time.sleep(1)
        if busy_cpu_s() - before < idle_cores or time.monotonic() > deadline:
            return


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, in MiB."""
    total_kb = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


def measure(server: Server, model: str, route: Route, options: Options) -> list[Cell]:
    """Every concurrency of one route; a cell disturbed by other processes (more than
    ``QUIET_CORES`` of their CPU) is measured again, up to ``--retries`` times, and the
    least disturbed attempt is kept."""
    script = lua_script(route, WORK / f"{model}-{slug(route.label)}.lua")
    cells = []
    for c in options.concurrency:
        attempts: list[Cell] = []
        for _ in range(options.retries + 1):
            attempts.append(measure_cell(server, model, route, script, c, options))
            if attempts[-1].na or (attempts[-1].other_cores or 0) <= QUIET_CORES:
                break
        cell = min(attempts, key=lambda a: a.other_cores or 0)
        cell.attempts = len(attempts)
        say(f"  {route.label:<26} c={c:<3} {fmt_cell(cell)}")
        cells.append(cell)
    return cells


def measure_cell(
    server: Server, model: str, route: Route, script: Path, c: int, options: Options
) -> Cell:
    cell = Cell(model, c, route.label, server.workers)
    assert server.proc is not None
    pid, url = server.proc.pid, server.url + route.path
    try:
        settle(options.settle)
        if options.warmup:
            wrk(url, script, c, options.warmup, options.wrk_timeout)
        before = CpuSample.take(pid)
        result = wrk(url, script, c, options.duration, options.wrk_timeout)
        after = CpuSample.take(pid)
    except (Unavailable, subprocess.TimeoutExpired) as exc:
        cell.na = str(exc)
        return cell
    cell.rss_mb = tree_rss_mb(pid)
    cell.rps, cell.p50_ms, cell.p99_ms = result.rps, result.p50_ms, result.p99_ms
    cell.errors = result.errors
    server_cpu = after.server - before.server
    cell.cpu_ms = server_cpu * 1000 / result.answered if result.answered else None
    others = (after.busy - before.busy) - server_cpu - (after.children - before.children)
    cell.other_cores = max(others, 0.0) / (after.at - before.at)
    return cell


# -- profiling ----------------------------------------------------------------------------------


def profile(server: Server, model: str, route: Route, options: Options) -> str:
    """py-spy the server while wrk loads it at the highest concurrency (a separate, unscored
    run); returns a Markdown summary of the hottest frames."""
    py_spy = HERE / ".venv-tools" / "bin" / "py-spy"
    if not py_spy.exists():
        return "py-spy is not installed (run setup.sh)"
    assert server.proc is not None
    raw = WORK / f"profile-{model}-{slug(route.label)}.txt"
    c = max(options.concurrency)
    spy = subprocess.Popen(
        [str(py_spy), "record", "--gil", "--nonblocking", "--format", "raw", "-r", "250"]
        + ["--subprocesses"]
        + ["-d", str(options.duration), "-o", str(raw), "--pid", str(server.proc.pid)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    time.sleep(1)
    script = lua_script(route, WORK / "profile.lua")
    wrk(server.url + route.path, script, c, options.duration, options.wrk_timeout)
    out, _ = spy.communicate(timeout=options.duration + 60)
    if spy.returncode != 0 or not raw.exists():
        return f"py-spy failed: {last_line(out)}"
    return summarize_profile(raw, f"{route.label}, {model}, c={c}")


def summarize_profile(raw: Path, title: str, top: int = 12) -> str:
    """Collapsed stacks (``frame;frame;leaf count``) to shares of the busy samples: self
    time by package and by function, and the inclusive time of slipway's own functions."""
    by_package: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [short_frame(f) for f in stack.split(";") if not f.startswith("process ")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        by_package[package_of(frames[-1])] += count
        for frame in set(frames):
            if package_of(frame) == "slipway" and not is_entry_point(frame):
                inclusive[frame] += count
    if not total:
        return "py-spy recorded no samples"

    def table(header: str, counter: Counter[str]) -> list[str]:
        rows = [f"| {n / total:6.1%} | `{key}` |" for key, n in counter.most_common(top)]
        return ["", f"| share | {header} |", "|---:|---|", *rows]

    return "\n".join(
        [
            f"### {title}",
            "",
            f"py-spy --gil: {total} samples of the thread holding the GIL (so waiting and "
            f"native nogil work do not show); raw stacks in `{rel(raw)}`.",
            *table("package (self time)", by_package),
            *table("function (self time)", own),
            *table("slipway function (inclusive time)", inclusive),
            "",
        ]
    )


def short_frame(frame: str) -> str:
    """``predict (/x/site-packages/sklearn/base.py:12)`` -> ``predict (sklearn/base.py)``."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})" if where else name


def is_entry_point(frame: str) -> bool:
    """The CLI frames under every sample (``slipway server`` starting uvicorn)."""
    return frame.startswith("<module>") or "slipway/cli/" in frame


def package_of(frame: str) -> str:
    """``predict (sklearn/base.py)`` -> ``sklearn``; ``token_hex (secrets.py)`` -> ``secrets``"""
    where = frame.rpartition(" (")[2].rstrip(")")
    return where.split("/", 1)[0].removesuffix(".py") if where else frame


# -- report -------------------------------------------------------------------------------------


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def fmt_cell(cell: Cell) -> str:
    if cell.na:
        return f"n/a ({cell.na})"
    return (
        f"{fmt(cell.rps, ',.0f')} req/s, p50 {fmt(cell.p50_ms, '.2f')} ms, "
        f"p99 {fmt(cell.p99_ms, '.2f')} ms, {cell.errors} errors, {fmt(cell.rss_mb, '.0f')} MiB, "
        f"{fmt(cell.cpu_ms, '.2f')} CPU ms/req, others {fmt(cell.other_cores, '.2f')} cores"
    )


def ratio(a: Cell | None, b: Cell | None) -> float | None:
    if a is None or b is None or not a.rps or not b.rps:
        return None
    return a.rps / b.rps


def mlflow_best(cells: list[Cell], model: str, c: int) -> Cell | None:
    """MLflow's faster request format in this cell: the harder comparison."""
    candidates = [
        x for x in cells if x.model == model and x.concurrency == c and x.label.startswith("mlflow")
    ]
    measured = [x for x in candidates if x.rps]
    return max(measured, key=lambda x: x.rps or 0) if measured else None


def find(cells: list[Cell], model: str, c: int, label: str) -> Cell | None:
    return next(
        (x for x in cells if x.model == model and x.concurrency == c and x.label == label), None
    )


def results_table(cells: list[Cell]) -> str:
    lines = [
        "| model | c | target | workers | req/s | p50 ms | p99 ms | errors | RSS MiB "
        "| CPU ms/req | others' cores | × bare | × MLflow |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cell in cells:
        bare = find(cells, cell.model, cell.concurrency, "bare")
        mlflow = mlflow_best(cells, cell.model, cell.concurrency)
        if cell.na:
            lines.append(
                f"| {cell.model} | {cell.concurrency} | {cell.label} | {cell.workers or ''} "
                f"| n/a ({cell.na.replace('|', '/')}) | | | | | | | | |"
            )
            continue
        lines.append(
            f"| {cell.model} | {cell.concurrency} | {cell.label} | {cell.workers} "
            f"| {fmt(cell.rps, ',.0f')} | {fmt(cell.p50_ms, '.2f')} | {fmt(cell.p99_ms, '.2f')} "
            f"| {cell.errors} | {fmt(cell.rss_mb, '.0f')} | {fmt(cell.cpu_ms, '.2f')} "
            f"| {fmt(cell.other_cores, '.2f')} "
            f"| {fmt(ratio(cell, bare), '.2f')} | {fmt(ratio(cell, mlflow), '.2f')} |"
        )
    return "\n".join(lines)


def cpu_ratio(a: Cell | None, b: Cell | None) -> float | None:
    """How many times less CPU per request ``a`` needed than ``b``: the throughput ratio
    two CPU-bound single-process servers would reach on equal, undisturbed cores."""
    if a is None or b is None or not a.cpu_ms or not b.cpu_ms:
        return None
    return b.cpu_ms / a.cpu_ms


def ratios_table(cells: list[Cell], options: Options) -> str:
    lines = [
        "| model | c | slipway route | req/s | CPU ms/req | × bare | × bare (durable) "
        "| × MLflow | × BentoML | × bare (CPU) | × bare (durable) (CPU) | × MLflow (CPU) "
        "| × BentoML (CPU) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model in options.models:
        for c in options.concurrency:
            others = [
                find(cells, model, c, "bare"),
                find(cells, model, c, "bare (durable)"),
                mlflow_best(cells, model, c),
                find(cells, model, c, "bentoml"),
            ]
            for label in SLIPWAY_LABELS:
                s = find(cells, model, c, label)
                if s is None:
                    continue
                by_rps = " | ".join(fmt(ratio(s, o), ".2f") for o in others)
                by_cpu = " | ".join(fmt(cpu_ratio(s, o), ".2f") for o in others)
                lines.append(
                    f"| {model} | {c} | {label} | {fmt(s.rps, ',.0f')} | {fmt(s.cpu_ms, '.2f')} "
                    f"| {by_rps} | {by_cpu} |"
                )
    return "\n".join(lines)


def aims(cells: list[Cell], options: Options, batching: bool) -> str:
    """The issue's aims for slipway's plain route, checked against this run (by req/s, and
    by CPU per request, which holds up better when the machine is shared). ``batching``:
    whether slipway's default settings micro-batch."""

    def verdict(value: float | None, goal: float) -> str:
        return "n/a" if value is None else f"{value:.2f} ({'met' if value >= goal else 'NOT met'})"

    unbatched = "slipway (unbatched)" if batching else "slipway"
    goals = [(unbatched, "without micro-batching", 0.8)]
    if batching:
        goals.append(("slipway", "with micro-batching", 1.5))
    lines = []
    c = 64 if 64 in options.concurrency else max(options.concurrency)
    for model in options.models:
        bare = find(cells, model, c, "bare")
        for label, mode, goal in goals:
            s = find(cells, model, c, label)
            lines.append(
                f"- {model}, c={c}, {mode} (`{label}`): × bare {verdict(ratio(s, bare), goal)} "
                f"against {goal}; by CPU per request {fmt(cpu_ratio(s, bare), '.2f')}."
            )
        per_c = [
            (cc, find(cells, model, cc, "slipway"), mlflow_best(cells, model, cc))
            for cc in options.concurrency
        ]
        known = [r for _, a, b in per_c if (r := ratio(a, b)) is not None]
        met = "n/a" if not known else ("met" if min(known) >= 3 else "NOT met")
        shown = ", ".join(
            f"c={cc} {fmt(ratio(a, b), '.2f')} (CPU {fmt(cpu_ratio(a, b), '.2f')})"
            for cc, a, b in per_c
        )
        lines.append(f"- {model}, `slipway` × MLflow ≥ 3 in every cell: {met} ({shown}).")
        lines.append(f"- {model}, the floors: {floors(cells, model, c)}.")
    if not batching:
        lines.append("- this slipway build does not micro-batch: the 1.5× aim is not measured.")
    return "\n".join(lines)


def floors(cells: list[Cell], model: str, c: int) -> str:
    """The bare endpoints against MLflow in every cell, and slipway against the durable
    floor at ``c``: how much of an aim is left once a server keeps slipway's promise of a
    committed record per answer, before any of its other features."""
    durable = find(cells, model, c, "bare (durable)")
    parts = []
    for label in ("bare", "bare (durable)"):
        by_c = [
            (cc, ratio(find(cells, model, cc, label), mlflow_best(cells, model, cc)))
            for cc in sorted({x.concurrency for x in cells if x.model == model})
        ]
        shown = ", ".join(f"c={cc} {fmt(r, '.2f')}" for cc, r in by_c)
        parts.append(f"`{label}` × MLflow {shown}")
    for label in ("slipway (unbatched)", "slipway"):
        shown = fmt(ratio(find(cells, model, c, label), durable), ".2f")
        parts.append(f"`{label}` × `bare (durable)` at c={c} {shown}")
    return "; ".join(parts)


def machine_facts() -> list[str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    wrk_version = subprocess.run(["wrk", "-v"], check=False, capture_output=True, text=True).stdout
    return [
        f"- CPU: {os.cpu_count()} cores ({cpu}), {mem_kb / 1024**2:.0f} GiB RAM, "
        f"Linux {platform.release()}",
        f"- Python {platform.python_version()} for every server",
        f"- load generator: {wrk_version.splitlines()[0] if wrk_version else 'wrk'}",
    ]


def slipway_features(options: Options) -> str:
    import importlib.util

    live = importlib.util.find_spec("slipway.monitoring.windows") is not None
    features = [
        "auth (bearer token on every request)",
        "data contract check (contract inferred from the training data, reject mode)",
        "durable prediction record per request (SQLite WAL, synchronous=FULL, group commit)",
        "Prometheus metrics",
        "live monitoring windows (sketches of the traffic)"
        if live
        else "live sketches: not in this build yet",
    ]
    extra = ", ".join(f"`{k}={v}`" for k, v in options.slipway_env.items())
    return "; ".join(features) + (f"; extra settings: {extra}" if extra else "")


def report(
    cells: list[Cell],
    servers: list[Server],
    failures: dict[str, str],
    profiles: list[str],
    options: Options,
    elapsed_s: float,
) -> str:
    versions = []
    for server in servers:
        if server.name in failures and "not installed" in failures[server.name]:
            continue
        with contextlib.suppress(Exception):
            shown = ", ".join(f"{k} {v}" for k, v in server.versions().items())
            if shown:
                versions.append(f"- {server.name} venv: {shown}")
    notes = [f"- {note}" for server in servers for note in server.notes]
    default = next((s for s in servers if type(s) is Slipway), None)
    batching = default is not None and int(default.settings.get("batch_max_rows", 0)) > 0
    notes += [f"- {name}: n/a ({reason})" for name, reason in failures.items()]
    busy = [c for c in cells if (c.other_cores or 0) > QUIET_CORES]
    retried = sum(c.attempts > 1 for c in cells)
    if busy or retried:
        again = (
            f"{retried} cells were measured again (up to {options.retries} retries, the least "
            "disturbed kept); "
            if options.retries
            else ""
        )
        notes.append(
            f"- other processes used more than {QUIET_CORES} cores during some cells: {again}"
            f"{len(busy)} of {len(cells)} cells stayed disturbed (see others' cores): their "
            "req/s understates what the server can do on a quiet machine, CPU ms/req is the "
            "steadier comparison"
        )
    command = shlex.join(["python", rel(Path(__file__)), *sys.argv[1:]])
    sections = [
        "# Serving benchmark results",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in {elapsed_s / 60:.1f} min with",
        "",
        f"    {command}",
        "",
        "## Machine",
        "",
        *machine_facts(),
        *versions,
        "",
        "## Setup",
        "",
        f"- models: {', '.join(options.models)} (`models.py`: {len(models.FEATURES)} float "
        "features, 5,000 rows of `make_classification`, seed 0; `hgb` is a 100-tree "
        "HistGradientBoostingClassifier); every server answers predict_proba",
        f"- one row per request; wrk -t1 at concurrency {join(options.concurrency)}; "
        f"{options.warmup} s warm-up, then {options.duration} s measured; "
        f"timeout {options.wrk_timeout} s",
        f"- worker processes: {', '.join(f'{s.name} {s.workers}' for s in servers)}; "
        "OMP/OpenBLAS/MKL threads 1 per process",
        f"- slipway with: {slipway_features(options)}",
        "- req/s counts 2xx answers only; errors = non-2xx + socket errors + timeouts; RSS is "
        "the server's whole process tree after the measured run; CPU ms/req is that tree's "
        "CPU time per answered request; others' cores is the CPU that processes other than "
        "the server and wrk used during the measured run (the machine is shared: each cell "
        f"first waits up to {options.settle:.0f} s for it to go quiet)",
        "- × MLflow compares with MLflow's faster request format in the same cell",
        "",
        "## Results",
        "",
        results_table(cells),
        "",
        "## slipway against the others",
        "",
        ratios_table(cells, options),
        "",
        "## The issue's aims (slipway's plain JSON route)",
        "",
        aims(cells, options, batching),
    ]
    if notes:
        sections += ["", "## Notes", "", *notes]
    if profiles:
        sections += ["", "## Where slipway spends its time", "", *profiles]
    return "\n".join(sections) + "\n"


# -- helpers ------------------------------------------------------------------------------------


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def rel(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(ROOT))
    return str(path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def request(url: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json", **(headers or {})}
    )
    with urllib.request.urlopen(req, timeout=10) as response:
        return json.loads(response.read())


def run(
    command: Sequence[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, cwd=HERE, capture_output=True, text=True, check=True)


def package_versions(python: str, names: list[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    versions: dict[str, str] = json.loads(run([python, "-c", code, *names]).stdout)
    return versions


def join(values: Sequence[object]) -> str:
    return ", ".join(map(str, values))


def slug(label: str) -> str:
    """``mlflow (dataframe_split)`` -> ``mlflow-dataframe_split``"""
    return "-".join(label.replace("(", " ").replace(")", " ").split())


def describe(exc: Exception) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        return f"{shlex.join(map(str, exc.cmd))} failed: {last_line(exc.stderr)}"
    return str(exc) if isinstance(exc, Unavailable) else f"{type(exc).__name__}: {exc}"


def tail(path: Path) -> str:
    return last_line(path.read_text(errors="replace")) if path.exists() else "no log"


def last_line(text: str | None) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"


def flatten(values: Any) -> Iterator[Any]:
    if isinstance(values, list):
        for v in values:
            yield from flatten(v)
    else:
        yield values


# -- main ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(models.MODELS), help="logreg,hgb")
    parser.add_argument("--targets", default=",".join(SERVERS), help=",".join(SERVERS))
    parser.add_argument("--concurrency", default="1,16,64", help="wrk connections, e.g. 1,16,64")
    parser.add_argument("--duration", type=int, default=10, help="measured seconds per cell")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up seconds per cell")
    parser.add_argument("--workers", type=int, default=1, help="worker processes per server")
    parser.add_argument("--wrk-timeout", type=int, default=10, help="wrk request timeout (s)")
    parser.add_argument(
        "--settle",
        type=float,
        default=20,
        help="before each cell, wait up to this many seconds for other processes to go quiet",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=1,
        help="measure a cell again when other processes disturbed it (at most this often)",
    )
    parser.add_argument(
        "--slipway-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the slipway server (repeatable)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy slipway in an extra run at the highest concurrency",
    )
    parser.add_argument("--quick", action="store_true", help="smoke test: c=64, 1+3 s per cell")
    parser.add_argument("--no-setup", action="store_true", help="do not run setup.sh first")
    parser.add_argument("--output", type=Path, help="Markdown report (default RESULTS.md)")
    args = parser.parse_args(argv)
    if args.quick:
        args.concurrency, args.duration, args.warmup, args.settle, args.retries = "64", 3, 1, 3, 0
    targets = tuple(t for t in args.targets.split(",") if t)
    unknown = set(targets) - set(SERVERS) | set(args.models.split(",")) - set(models.MODELS)
    if unknown:
        parser.error(f"unknown target or model: {', '.join(sorted(unknown))}")
    slipway_env = {}
    for item in args.slipway_env:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--slipway-env expects KEY=VALUE, got {item!r}")
        slipway_env[key] = value
    default_output = WORK / "RESULTS-quick.md" if args.quick else HERE / "RESULTS.md"
    return Options(
        models=tuple(args.models.split(",")),
        targets=targets,
        concurrency=tuple(int(c) for c in args.concurrency.split(",")),
        duration=args.duration,
        warmup=args.warmup,
        workers=args.workers,
        wrk_timeout=args.wrk_timeout,
        settle=args.settle,
        retries=args.retries,
        slipway_env=slipway_env,
        profile=args.profile,
        output=args.output or default_output,
        setup=not args.no_setup,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    if shutil.which("wrk") is None:
        say("wrk is missing: apt-get install -y wrk (or run setup.sh)")
        return 2
    # One run at a time: two would share the cores (and .work/) and spoil each other.
    with (HERE / ".run.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("another run of this benchmark is in progress; try again when it is done")
            return 3
        return benchmark(options)


def benchmark(options: Options) -> int:
    started = time.monotonic()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()
    if options.setup:
        say("setup.sh: checking the MLflow/BentoML/tool venvs")
        subprocess.run([str(HERE / "setup.sh")], stdout=sys.stderr, check=False)
    EXPECTED.update(models.expected_probabilities())

    servers = [SERVERS[name](options) for name in options.targets]
    failures: dict[str, str] = {}
    for server in servers:
        try:
            server.prepare()
        except Unavailable as exc:
            failures[server.name] = str(exc)
    cells: list[Cell] = []
    profiles: list[str] = []
    for model in options.models:
        for server in servers:
            say(f"{model} / {server.name}")
            reason = failures.get(server.name, "")
            routes: list[Route] = []
            if not reason:
                try:
                    server.start(model)
                    routes = server.routes(model)
                except Exception as exc:  # any failure to start is this target's n/a
                    reason = f"could not start: {describe(exc)}"
                    say(f"  n/a: {reason} (log: {rel(server.log)})")
                    server.stop()
            try:
                if reason:
                    cells += [
                        Cell(model, c, label, na=reason)
                        for label in server.labels
                        for c in options.concurrency
                    ]
                    continue
                for route in routes:
                    cells += measure(server, model, route, options)
                    if options.profile and isinstance(server, Slipway):
                        say(f"  profiling {route.label} at c={max(options.concurrency)}")
                        profiles.append(profile(server, model, route, options))
            finally:
                server.stop()

    text = report(cells, servers, failures, profiles, options, time.monotonic() - started)
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(text)
    print(text)
    say(f"wrote {rel(options.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
