"""The demo: iris (ships with scikit-learn; nothing downloaded), end to end over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slipway.cli.output import console, table
from slipway.client import Client

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
# What the demo's endpoint must pass before it serves a version (governance/policies).
POLICY = """\
description: what the demo endpoint requires before a version may serve
applies_to: {endpoints: [iris]}
on: [deploy, rollout_start, promote]
checks:
  - {type: metadata, require: [owner, contract, reference_profile]}
  - {id: accuracy-floor, type: metric, metric: accuracy, op: ">=", value: 0.9}
  - {type: artifact}
  - {type: evaluation_age, max_days: 30}
"""


def run_demo(url: str, token: str, home: str) -> None:
    import numpy as np
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    data = load_iris()
    labels = np.asarray(data.target_names)[data.target]
    X_train, X_test, y_train, y_test = train_test_split(
        data.data, labels, test_size=0.3, random_state=0, stratify=labels
    )
    with console.status("training a logistic regression on iris..."):
        model = LogisticRegression(max_iter=1000).fit(X_train, y_train)

    with Client(url, token) as client:
        with console.status("registering (skops artifact, lineage, sandboxed smoke test)..."):
            version = client.register(
                model,
                name="iris",
                X_train=X_train,
                y_train=y_train,
                X_eval=X_test,
                y_eval=y_test,
                owner="demo-team",
                feature_names=FEATURES,
                description="slipway demo: iris species from flower measurements",
            )
        metrics = version["lineage"].get("metrics", {})
        accuracy = metrics.get("accuracy", float("nan"))
        console.print(
            f"registered [bold]iris v{version['number']}[/bold] ({version['status']}), "
            f"held-out accuracy {accuracy:.3f}, sha256 {version['artifact_sha256'][:12]}"
        )
        client.put_policy("demo-production", POLICY)
        report = client.check_policy("iris", version["number"], endpoint="iris")
        checks = [{"policy": p["name"], **c} for p in report["policies"] for c in p["checks"]]
        table(checks, ["policy", "id", "status", "reason"], "policy checks before deploying")
        with console.status("deploying to endpoint 'iris' (the policy is checked again)..."):
            client.deploy("iris", model="iris", version=version["number"])
        console.print(f"deployed to endpoint [bold]iris[/bold] at {url}")

        rows = [dict(zip(FEATURES, map(float, x), strict=True)) for x in X_test[:5]]
        answer = client.predict("iris", rows)
        shown: list[dict[str, Any]] = []
        for row, pred, truth in zip(rows, answer["predictions"], y_test[:5], strict=True):
            shown.append(
                {
                    "measurements (cm)": ", ".join(f"{v:g}" for v in row.values()),
                    "prediction": pred["prediction"],
                    "probability": f"{pred['probabilities'][pred['prediction']]:.3f}",
                    "actual": str(truth),
                }
            )
        table(
            shown,
            ["measurements (cm)", "prediction", "probability", "actual"],
            "real predictions from the running server",
        )
        console.print(f"each row has a prediction id, e.g. {answer['predictions'][0]['id']}")

        v2 = client.infer(
            "iris",
            [
                {
                    "name": "input-0",
                    "shape": [1, 4],
                    "datatype": "FP64",
                    "data": [list(rows[0].values())],
                }
            ],
            id="demo-1",
        )
        console.print(
            f"Open Inference Protocol answer: {v2['outputs'][0]['data']} "
            f"(model_version {v2['model_version']})"
        )
        records = client.list_predictions("iris", limit=1)
        console.print(f"prediction records stored for 'iris': {records['total']}")

        score = client.test_score("iris")
        sections = ", ".join(f"{k} {v['score']:g}" for k, v in score["sections"].items())
        console.print(
            f"ML Test Score of iris: {score['final']:g} ({sections}; final = the weakest "
            f"section): {score['interpretation']}"
        )
        card = Path(home) / f"iris-v{version['number']}-card.md"
        card.write_text(client.model_card_text("iris", version["number"]))
        console.print(f"model card, generated from the records: {card}")

    example = (
        '{"inputs": [{"sepal_length": 5.1, "sepal_width": 3.5, '
        '"petal_length": 1.4, "petal_width": 0.2}]}'
    )
    console.print(
        f"""
[bold]Try it yourself[/bold] (state lives in {home}):
  export SLIPWAY_TOKEN=$(cat {home}/token)
  slipway server &                      # http://127.0.0.1:8750
  curl -s -H "Authorization: Bearer $SLIPWAY_TOKEN" \\
       -d '{example}' \\
       http://127.0.0.1:8750/v1/endpoints/iris/predict
  slipway model show iris
  slipway endpoint list
  slipway policy check iris {version["number"]} --endpoint iris
  slipway model card iris {version["number"]} --format html --output card.html

From Python:
  import slipway
  client = slipway.Client("http://127.0.0.1:8750", token="...")
  client.predict("iris", [{{"sepal_length": 5.1, "sepal_width": 3.5,
                            "petal_length": 1.4, "petal_width": 0.2}}])
""",
        highlight=False,
        soft_wrap=True,  # wrapping would split the commands meant to be copied
    )
