"""What a model call costs on the calling thread, on a plain thread and through a pool.

slipway runs unbatched model calls on its predict thread pool; the bare endpoint calls
the model on the event loop. This measures one-row ``predict_proba`` CPU per call in
each way, in one process, to separate the model's own cost from the hand-off's:

    OMP_NUM_THREADS=1 python benchmarks/serving/thread_cost.py --model hgb
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import models  # benchmarks/serving/models.py
import sklearn

CALLS = 400


def per_call(calls: Callable[[int], None], clock: Callable[[], float]) -> tuple[float, float]:
    """(wall ms, CPU ms) per call of ``calls(CALLS)``."""
    wall, cpu = time.perf_counter(), clock()
    calls(CALLS)
    return (time.perf_counter() - wall) / CALLS * 1e3, (clock() - cpu) / CALLS * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="hgb", choices=["logreg", "hgb"])
    model = models.train(parser.parse_args().model)
    row = models.data()[0][:1].astype(float)

    def call(_: object = None) -> None:
        # As slipway's sklearn flavor calls it.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            model.predict_proba(row)

    def loop(n: int) -> None:
        for _ in range(n):
            call()

    loop(50)  # warm up
    print("way                     wall ms  CPU ms per call")
    wall, cpu = per_call(loop, time.process_time)
    print(f"calling thread          {wall:7.3f}  {cpu:7.3f}")
    out: list[tuple[float, float]] = []
    thread = threading.Thread(target=lambda: out.append(per_call(loop, time.thread_time)))
    thread.start()
    thread.join()
    print(f"one plain thread        {out[0][0]:7.3f}  {out[0][1]:7.3f}")
    for size in (1, 4):
        with ThreadPoolExecutor(size) as pool:
            wall, cpu = per_call(lambda n, p=pool: list(p.map(call, range(n))), time.process_time)
        print(f"pool of {size} (submit/wait) {wall:7.3f}  {cpu:7.3f}")


if __name__ == "__main__":
    main()
