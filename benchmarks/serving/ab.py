"""Is B faster than A? Two slipway servers up side by side, loaded in alternating bursts.

On the shared 2-core benchmark machine a whole-server run's req/s drifts by 20-30% over
minutes (the same build measured 1,193 and 1,534 req/s ten minutes apart), more than
most changes to the hot path are worth. Here both servers run at once and wrk loads
them in turn, A B B A A B ..., in short bursts, so a drift hits both alike. Each server
has the same model, route and load; only the environment differs. The report gives
B's req/s and server CPU per request against A's, for each pair of bursts and as the
median, so a change can be judged by its spread rather than one lucky run:

    .venv/bin/python benchmarks/serving/ab.py --b SLIPWAY_INLINE_CALL_MS=1 --unbatched
    git worktree add /tmp/base HEAD~1      # the build before a change, as A:
    .venv/bin/python benchmarks/serving/ab.py --a PYTHONPATH=/tmp/base/src

B can also be another target of ``run.py`` (``--b-target bare-durable``, ``mlflow``, ...,
on its first route: MLflow's faster format), so a ratio the full run reports, such as
slipway × MLflow at concurrency 1, can be checked the same way, drift cancelled.

``PYTHONPATH`` wins over the project's editable install, so A can run another checkout's
``src`` with the same venv.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import models  # noqa: E402
from run import (  # noqa: E402
    EXPECTED,
    SERVERS,
    WORK,
    CpuSample,
    Options,
    Route,
    Server,
    Slipway,
    lua_script,
    wrk,
)


def side(name: str, env: dict[str, str], model: str, target: str = "slipway") -> Server:
    options = Options(
        models=(model,),
        targets=(target,),
        concurrency=(),
        duration=0,
        warmup=0,
        workers=1,
        wrk_timeout=10,
        settle=0,
        retries=0,
        slipway_env=env,
        profile=False,
        output=WORK / "ab.md",
        setup=False,
    )
    server = SERVERS[target](options)
    if isinstance(server, Slipway):
        server.name = name  # its own log file (other targets' names locate their venvs)
    return server


def env_pairs(values: list[str]) -> dict[str, str]:
    pairs = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"expected KEY=VALUE, got {item!r}")
        pairs[key] = value
    return pairs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--b", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--b-target", default="slipway", choices=sorted(SERVERS), help="what B runs (run.py's)"
    )
    parser.add_argument("--model", default="logreg", choices=models.MODELS)
    parser.add_argument("--route", default="slipway", choices=["slipway", "slipway (V2)"])
    parser.add_argument("--unbatched", action="store_true", help="micro-batching off on both")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--burst", type=int, default=3, help="seconds per burst")
    parser.add_argument("--pairs", type=int, default=10, help="A/B pairs of bursts")
    args = parser.parse_args()

    WORK.mkdir(exist_ok=True)
    both = {"SLIPWAY_BATCH_MAX_ROWS": "0"} if args.unbatched else {}
    servers = {
        "A": side("ab-a", {**both, **env_pairs(args.a)}, args.model),
        "B": side("ab-b", {**both, **env_pairs(args.b)}, args.model, args.b_target),
    }
    EXPECTED.update(models.expected_probabilities())  # each server's answer is checked
    try:
        scripts: dict[str, tuple[str, Path]] = {}
        for label, server in servers.items():
            server.prepare()
            server.start(args.model)
            routes = server.routes(args.model)
            route: Route = next((r for r in routes if r.label == args.route), routes[0])
            scripts[label] = (server.url + route.path, lua_script(route, WORK / f"ab-{label}.lua"))
            shown = server.notes[-1] if server.notes else f"{server.name}, {route.label}"
            extra = server.extra_env if isinstance(server, Slipway) else {}
            print(f"{label}: {shown}; env {extra or 'none'}", flush=True)

        def burst(label: str) -> tuple[float, float]:
            """req/s and the server's CPU ms per answered request over one burst."""
            server = servers[label]
            assert server.proc is not None
            url, script = scripts[label]
            before = CpuSample.take(server.proc.pid)
            result = wrk(url, script, args.concurrency, args.burst, 10)
            after = CpuSample.take(server.proc.pid)
            cpu_ms = (after.server - before.server) * 1000 / max(result.answered, 1)
            return result.rps, cpu_ms

        for label in servers:  # warm both up
            burst(label)
        rps_ratios: list[float] = []
        cpu_ratios: list[float] = []
        print("pair   A req/s   B req/s  B/A   A cpu ms  B cpu ms  B/A", flush=True)
        for n in range(args.pairs):
            order = ("A", "B") if n % 2 == 0 else ("B", "A")
            measured = {label: burst(label) for label in order}
            (a_rps, a_cpu), (b_rps, b_cpu) = measured["A"], measured["B"]
            rps_ratios.append(b_rps / a_rps)
            cpu_ratios.append(b_cpu / a_cpu)
            print(
                f"{n + 1:>4} {a_rps:>9,.0f} {b_rps:>9,.0f} {rps_ratios[-1]:>5.2f}"
                f" {a_cpu:>9.3f} {b_cpu:>9.3f} {cpu_ratios[-1]:>5.2f}",
                flush=True,
            )
        print(
            f"median B/A: req/s {statistics.median(rps_ratios):.3f} "
            f"(range {min(rps_ratios):.2f}-{max(rps_ratios):.2f}), CPU per request "
            f"{statistics.median(cpu_ratios):.3f} "
            f"(range {min(cpu_ratios):.2f}-{max(cpu_ratios):.2f})"
        )
    finally:
        for server in servers.values():
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
