"""Model cards from the records of a real runtime: the evaluation exactly as stored,
approvals with their validity, where the version serves, monitoring, and the renderers
(Markdown sections, HTML that escapes every value)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from slipway.governance.card import to_html, to_markdown
from slipway.runtime import Runtime
from tests.governance.test_testscore import (
    ADMIN,
    APPROVER,
    ARTIFACTS,
    CLEAN_LINEAGE,
    DEV,
    approve,
    make_runtime,
    register,
)

HOSTILE = "<script>alert('card')</script> & friends | pipes"
EVALUATION = {
    "metrics": {"auc": 0.8731, "log_loss": 0.3127},
    "slices": {"region=eu": {"auc": 0.8512}, "region=us": {"auc": 0.8866}},
    "baseline": {"auc": 0.5, "log_loss": 0.6931},
    "dataset": {"sha256": "c" * 64, "rows": 2000, "columns": ["x", "__label__"]},
    "evaluated_at": "2024-06-01T12:00:00+00:00",
}


@pytest.fixture
def runtime(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    """Model ``m`` with two versions: v1 serves on ``e`` with v2 as a 10% canary; v1 has
    a stored evaluation, one stale and one valid approval. SQLite and PostgreSQL."""
    monkeypatch.syspath_prepend(str(ARTIFACTS))
    rt = make_runtime(
        tmp_path / "home",
        store_url,
        description=HOSTILE,
        oncall="pager:ml-oncall",
        runbook_url="https://runbooks.example.org/m",
        risk_tier="high",
        intended_use="Rank accounts by churn risk for the retention team.",
        limitations="Not validated for accounts younger than 30 days.",
        tags=["churn", "eu"],
    )
    register(rt, lineage={**CLEAN_LINEAGE, "evaluation_data": EVALUATION["dataset"]})
    register(rt, threshold=4.0)
    approve(rt, 1)  # bound to the evidence before the record below: stale
    rt.evaluations.record("m", 1, actor=DEV, **EVALUATION)
    approve(rt, 1)
    rt.endpoints.deploy("e", model="m", version=1, actor=ADMIN)
    rt.plans.set_traffic("e", canary=2, weight=10, routing="random", shadows=[], actor=ADMIN)
    yield rt
    rt.close()


def test_the_card_is_built_from_the_records(runtime: Runtime) -> None:
    card = runtime.cards.card("m", 1)
    [stored] = runtime.evaluations.history("m", 1)
    # The evaluation is the stored record, value for value.
    assert card["evaluation"] == stored.to_dict()
    assert card["evaluation"]["metrics"] == EVALUATION["metrics"]
    assert card["evaluation"]["slices"] == EVALUATION["slices"]
    assert card["evaluation"]["baseline"] == EVALUATION["baseline"]
    assert card["evaluation"]["dataset"] == EVALUATION["dataset"]
    assert card["evaluation"]["digest"] == stored.digest

    model = card["model"]
    assert (model["owner"], model["oncall"], model["risk_tier"]) == (
        "ml-team",
        "pager:ml-oncall",
        "high",
    )
    assert model["description"] == HOSTILE and model["legal_hold"] is False
    version = runtime.versions.get("m", 1)
    assert card["version"]["artifact_sha256"] == version.artifact_sha256
    assert card["version"]["registered_by"] == "dana"
    assert card["lineage"]["training_data"] == CLEAN_LINEAGE["training_data"]
    assert card["lineage"]["code"] == CLEAN_LINEAGE["code"]
    assert card["contract"]["stored"] is True
    assert card["contract"]["inputs"] == [{"name": "x", "type": "float", "min": -100, "max": 100}]

    stale, valid = card["approvals"]
    assert (stale["state"], stale["valid"], stale["stale_because"]) == (
        "approved",
        False,
        ["evaluation record changed"],
    )
    assert (valid["valid"], valid["decided_by"], valid["rationale"]) == (
        True,
        APPROVER.name,
        "meets the bar",
    )

    [deployed] = card["deployed"]
    assert (deployed["endpoint"], deployed["role"], deployed["weight"]) == ("e", "primary", 90.0)
    monitors = {m["monitor"] for m in deployed["monitoring"]["monitors"]}
    assert {"latency-p99", "contract-violations", "model-age"} <= monitors
    assert deployed["monitoring"]["firing_alerts"] == []
    assert card["test_score"]["model"] == "m" and card["test_score"]["version"] == 1
    assert card["generated_at"]

    canary = runtime.cards.card("m", 2)
    assert [(d["endpoint"], d["role"], d["weight"]) for d in canary["deployed"]] == [
        ("e", "canary", 10.0)
    ]
    assert canary["evaluation"] is None and canary["approvals"] == []


def test_monitoring_shows_only_to_readers_of_the_endpoint(runtime: Runtime) -> None:
    """A model-scoped reader sees where the version serves, not the endpoint's live
    traffic, monitors and alerts (those need monitor:read on the endpoint)."""
    card = runtime.cards.card("m", 1, shows_monitoring=lambda endpoint: False)
    [deployed] = card["deployed"]
    assert (deployed["endpoint"], deployed["role"], deployed["monitoring"]) == (
        "e",
        "primary",
        None,
    )
    text = to_markdown(card)
    assert "Not shown (needs monitor:read there): e." in text


def test_markdown_has_every_section_and_the_stored_numbers(runtime: Runtime) -> None:
    text = to_markdown(runtime.cards.card("m", 1))
    headings = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    assert headings == [
        "Model",
        "Intended use",
        "Limitations",
        "Version",
        "Lineage",
        "Evaluation",
        "Data contract",
        "Approvals",
        "Deployments",
        "Monitoring",
        "ML Test Score",
    ]
    assert text.startswith("# Model card: m v1\n")
    assert "| auc | 0.8731 | 0.5 |" in text
    assert "| region=eu | auc | 0.8512 |" in text
    assert "Rank accounts by churn risk" in text
    assert "| e | primary | 90% | no |" in text
    # No raw HTML gets through, and a pipe does not split a table cell.
    assert "<script>" not in text and "&lt;script>alert" in text
    assert "\\| pipes" in text


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_is_standalone_and_escapes_every_value(runtime: Runtime) -> None:
    page = to_html(runtime.cards.card("m", 1))
    assert page.startswith("<!doctype html>")
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#x27;card&#x27;)&lt;/script&gt; &amp; friends" in page
    parsed = _Collector()
    parsed.feed(page)
    assert "script" not in parsed.tags
    assert not {"link", "img", "iframe"} & set(parsed.tags)  # nothing fetched
    assert "src=" not in page and "href=" not in page
    assert HOSTILE in "".join(parsed.text)  # the reader sees the text as typed
    assert "0.8731" in "".join(parsed.text)


def test_an_unknown_version_is_not_found(runtime: Runtime) -> None:
    from slipway.errors import NotFound

    with pytest.raises(NotFound):
        runtime.cards.card("m", 9)
    with pytest.raises(NotFound):
        runtime.cards.card("nope", 1)
