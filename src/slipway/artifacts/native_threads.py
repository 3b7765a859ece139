"""One native thread per model call, in every thread of a serving process.

A server runs model calls concurrently already (predict threads, worker processes); a
model that also starts a native thread pool per call oversubscribes the cores, and
OpenMP's spinning threads then collapse throughput (two workers serving a
HistGradientBoosting model fell to about 23 requests/s, DESIGN.md §7).

``threadpoolctl.threadpool_limits`` alone is not enough: OpenMP's thread count is a
per-thread setting, so the limit it sets on the calling thread does not reach the
predict threads started later, which take OpenMP's process default (one per core).
That default comes from ``OMP_NUM_THREADS`` when the OpenMP runtime loads, so the
variables are set before any model library is imported, and inherited by worker
processes and the smoke-test sandbox.
"""

from __future__ import annotations

import os

ONE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}


def one_native_thread_per_call() -> None:
    """Call first in a serving process, before a model library is imported."""
    from threadpoolctl import threadpool_limits

    os.environ.update(ONE_THREAD_ENV)
    # For the libraries loaded already (NumPy's BLAS): their limit is process-wide.
    threadpool_limits(1)
