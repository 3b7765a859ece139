"""What slipway's own code costs per request, without HTTP: the ASGI app driven in-process.

``run.py`` measures whole servers, where uvicorn's HTTP work and wrk's share of the
machine blur slipway's part. This drives the app uvicorn would run (``serving_app``,
with its real runtime: auth, contract check, durable records in SQLite, metrics, live
windows) from 64 concurrent coroutines on the event loop, with fake ASGI messages
instead of sockets. It prints CPU per request for the whole process and per thread
(the event loop, the predict threads, the record writer), so a change to the hot path
can be compared before and after in seconds; ``--profile`` adds cProfile of the loop:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/serving/app_cost.py --model logreg
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/serving/app_cost.py --unbatched --profile
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import models  # noqa: E402


def thread_cpu() -> dict[str, float]:
    """CPU seconds so far of each of this process's threads, by thread name."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        name = names.get(int(task.name), "other")
        name = name.rstrip("_0123456789") if name.startswith("predict") else name
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="logreg", choices=models.MODELS)
    parser.add_argument("--route", default="plain", choices=["plain", "v2"])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--unbatched", action="store_true", help="micro-batching off")
    parser.add_argument("--profile", action="store_true", help="cProfile the event loop")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="slipway-app-cost-"))
    os.environ["SLIPWAY_HOME"] = str(home)
    if args.unbatched:
        os.environ["SLIPWAY_BATCH_MAX_ROWS"] = "0"
    slipway = str(Path(sys.executable).parent / "slipway")
    subprocess.run([slipway, "init", "--save-token"], check=True, capture_output=True)
    token = (home / "token").read_text().strip()

    from starlette.testclient import TestClient

    from slipway.api.app import serving_app
    from slipway.client import Client
    from slipway.settings import Settings

    app = serving_app(Settings())
    with TestClient(app, backend_options={"use_uvloop": True}) as web:
        X, y = models.data()
        with Client("http://testserver", token, transport=web._transport) as client:
            version = client.register(
                models.train(args.model),
                name=args.model,
                X_train=X,
                y_train=y,
                owner="bench",
                feature_names=models.FEATURES,
                trusted_types=models.HGB_TRUSTED_TYPES if args.model == "hgb" else None,
            )
            client.deploy(args.model, model=args.model, version=version["number"])
        if args.route == "plain":
            path = f"/v1/endpoints/{args.model}/predict"
            body = json.dumps({"inputs": [models.record()]}).encode()
        else:
            path = f"/v2/models/{args.model}/infer"
            tensor = {
                "name": "input-0",
                "shape": [1, len(models.FEATURES)],
                "datatype": "FP64",
                "data": [models.row()],
            }
            body = json.dumps({"inputs": [tensor]}).encode()
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "headers": [
                (b"host", b"127.0.0.1:8000"),
                (b"authorization", f"Bearer {token}".encode()),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
        statuses: dict[int, int] = {}

        async def one() -> None:
            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: MutableMapping[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    statuses[message["status"]] = statuses.get(message["status"], 0) + 1

            await app(dict(scope), receive, send)

        async def drive(n: int) -> None:
            async def worker(count: int) -> None:
                for _ in range(count):
                    await one()

            share = n // args.concurrency
            await asyncio.gather(*(worker(share) for _ in range(args.concurrency)))

        portal = web.portal
        assert portal is not None  # inside ``with TestClient``
        portal.call(drive, 2_000)  # warm up
        statuses.clear()
        profiler = cProfile.Profile() if args.profile else None

        async def measured() -> None:
            if profiler:
                profiler.enable()
            await drive(args.requests)
            if profiler:
                profiler.disable()

        before, wall, cpu = thread_cpu(), time.perf_counter(), time.process_time()
        portal.call(measured)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        after = thread_cpu()
    done = sum(statuses.values())
    print(
        f"{args.model} {args.route} {'unbatched' if args.unbatched else 'batched'}: "
        f"{done} requests {statuses}, {done / wall:,.0f} req/s in-process, "
        f"CPU {cpu / done * 1e3:.3f} ms/request"
    )
    for name in sorted(after, key=lambda k: -(after[k] - before.get(k, 0.0))):
        spent = after[name] - before.get(name, 0.0)
        if spent > 0:
            print(f"  {name:<24} {spent / done * 1e3:.3f} ms/request")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
