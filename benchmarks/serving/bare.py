"""The floor: a bare Starlette endpoint that parses JSON and calls the model, nothing else.

No auth, no validation, no records, no metrics. It takes slipway's plain JSON body,
``{"inputs": [{"x00": 0.1, ...}]}``, and answers each row's probabilities.

    BENCH_MODEL=logreg uvicorn bare:app --app-dir benchmarks/serving --workers 1
"""

from __future__ import annotations

import json
import os

import numpy as np
from models import FEATURES, train
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

MODEL = train(os.environ.get("BENCH_MODEL", "logreg"))
CLASSES = [str(c) for c in MODEL.classes_]


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
    return Response(json.dumps({"predictions": answer}), media_type="application/json")


app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])
