"""A serving process gives every thread one native thread per model call, including
the predict threads it starts later (OpenMP's thread count is per thread: a limit set
on the main thread does not reach them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from slipway.artifacts.native_threads import ONE_THREAD_ENV

# The OpenMP thread counts scikit-learn's runtime reports on the main thread and on a
# thread started afterwards, as the predict pool starts its threads.
PROBE = """
import json
from concurrent.futures import ThreadPoolExecutor
{setup}
import sklearn.ensemble  # loads scikit-learn's OpenMP runtime
from threadpoolctl import threadpool_info

def openmp_threads():
    return sorted({{i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"}})

with ThreadPoolExecutor(1) as pool:
    later = pool.submit(openmp_threads).result()
print(json.dumps({{"main": openmp_threads(), "later_thread": later}}))
"""

SERVING_SETUP = """
from slipway.artifacts.native_threads import one_native_thread_per_call
one_native_thread_per_call()
"""
# What the server did before: a limit on the calling thread only.
MAIN_THREAD_ONLY = """
import sklearn.ensemble
from threadpoolctl import threadpool_limits
threadpool_limits(1)
"""


def probe(setup: str) -> dict[str, list[int]]:
    # As an operator starts the server: no thread variables of its own.
    env = {k: v for k, v in os.environ.items() if k not in ONE_THREAD_ENV}
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(setup=setup)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    result: dict[str, list[int]] = json.loads(out)
    return result


def test_every_thread_gets_one_openmp_thread() -> None:
    assert probe(SERVING_SETUP) == {"main": [1], "later_thread": [1]}


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="OpenMP's default is 1 on one core")
def test_a_limit_on_the_main_thread_does_not_reach_later_threads() -> None:
    """Why the variables are set: the old way left predict threads one per core."""
    result = probe(MAIN_THREAD_ONLY)
    assert result["main"] == [1]
    assert len(result["later_thread"]) == 1 and result["later_thread"][0] > 1
