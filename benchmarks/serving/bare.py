"""The floor: a bare Starlette endpoint that parses JSON and calls the model, nothing else.

No auth, no validation, no records, no metrics. It takes slipway's plain JSON body,
``{"inputs": [{"x00": 0.1, ...}]}``, and answers each row's probabilities.

    BENCH_MODEL=logreg uvicorn bare:app --app-dir benchmarks/serving --workers 1

With ``BENCH_RECORD_DB=path.db`` it is the floor for a durable server instead: the
simplest hand-written way to keep slipway's one promise that costs a disk write, a
200 only after the prediction is committed. Each request inserts its answer into
SQLite (WAL, ``synchronous=FULL``, as slipway's records) and commits on the event
loop before answering: no thread hop, no group commit, nothing else. With one client at
a time that is the least any durable server can do; under load, sharing one commit
among many answers (as slipway's group commit does) beats it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid

import numpy as np
from models import FEATURES, train
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

MODEL = train(os.environ.get("BENCH_MODEL", "logreg"))
CLASSES = [str(c) for c in MODEL.classes_]


def open_records(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA busy_timeout=30000")  # workers share the file
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS records (id TEXT PRIMARY KEY, inputs, outputs)")
    return db


RECORDS = open_records(path) if (path := os.environ.get("BENCH_RECORD_DB")) else None


async def predict(request: Request) -> Response:
    rows = json.loads(await request.body())["inputs"]
    X = np.asarray([[row[name] for name in FEATURES] for row in rows], dtype=np.float64)
    # Called on the event loop: for a sub-millisecond model a thread hop costs more.
    probabilities = MODEL.predict_proba(X)
    answer = [
        {
            "prediction": CLASSES[int(p.argmax())],
            "probabilities": dict(zip(CLASSES, p.tolist(), strict=True)),
        }
        for p in probabilities
    ]
    if RECORDS is not None:
        with RECORDS:  # BEGIN ... COMMIT: the answer is on disk before it is sent
            RECORDS.execute("BEGIN")
            RECORDS.execute(
                "INSERT INTO records VALUES (?, ?, ?)",
                (uuid.uuid4().hex, json.dumps(rows), json.dumps(answer)),
            )
    return Response(json.dumps({"predictions": answer}), media_type="application/json")


app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])
