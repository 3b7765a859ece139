"""Smoke-test an artifact in a separate, resource-limited process before it is accepted.

Loading a model runs native code from an untrusted upload; doing it in a child process
with an address-space and CPU limit means a hostile or broken artifact costs a failed
registration, not the server. The child is ``python -m slipway.artifacts._sandbox_main``:
the job goes in as JSON on stdin, the verdict comes back as JSON on stdout.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from typing import Any

from slipway.artifacts.flavors import LoadSpec
from slipway.artifacts.native_threads import ONE_THREAD_ENV


@dataclass(frozen=True)
class SmokeResult:
    ok: bool
    reason: str  # "" when ok; one line otherwise, never a traceback or a server path
    rows: int


def smoke_test(
    data: bytes,
    *,
    sha256: str,
    flavor: str,
    spec: LoadSpec,
    signature: dict[str, Any],
    example_rows: list[dict[str, Any]],
    memory_mb: int,
    timeout_s: float,
) -> SmokeResult:
    """Load ``data`` with ``flavor`` and predict ``example_rows`` in a sandbox process."""
    if not example_rows:
        return SmokeResult(False, "no example rows to smoke-test with", 0)
    if hashlib.sha256(data).hexdigest() != sha256:
        return SmokeResult(False, f"artifact hash mismatch: expected sha256 {sha256}", 0)
    fd, path = tempfile.mkstemp(prefix="slipway-smoke-")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        job = {
            "path": path,
            "sha256": sha256,
            "flavor": flavor,
            "spec": asdict(spec),
            "signature": signature,
            "example_rows": example_rows,
            "memory_mb": memory_mb,
            "cpu_s": max(1, int(timeout_s) + 1),
            "sys_path": [p for p in sys.path if p],
        }
        return _run(job, timeout_s)
    finally:
        os.unlink(path)


def _run(job: dict[str, Any], timeout_s: float) -> SmokeResult:
    # One native thread keeps the child small and its memory use close to what one
    # serving thread needs.
    env = {**os.environ, **ONE_THREAD_ENV}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "slipway.artifacts._sandbox_main"],
            input=json.dumps(job).encode(),
            capture_output=True,
            timeout=timeout_s,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:  # run() has already killed and reaped the child
        return SmokeResult(False, f"smoke test timed out after {timeout_s:g}s", 0)
    if proc.returncode < 0:
        sig = signal.Signals(-proc.returncode)
        hint = {
            signal.SIGKILL: " (memory limit?)",
            signal.SIGXCPU: " (CPU time limit)",
            signal.SIGSEGV: " (crash in native code, or memory limit)",
            signal.SIGABRT: " (aborted; memory limit?)",
        }.get(sig, "")
        return SmokeResult(False, f"smoke test process exited with signal {sig.name}{hint}", 0)
    try:
        verdict = json.loads(proc.stdout.decode("utf-8").strip().splitlines()[-1])
        result = SmokeResult(bool(verdict["ok"]), str(verdict["reason"]), int(verdict["rows"]))
    except (ValueError, KeyError, IndexError, TypeError):
        return SmokeResult(False, f"smoke test process exited with code {proc.returncode}", 0)
    return result
