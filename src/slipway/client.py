"""The Python SDK: a thin, synchronous client of the slipway server (httpx).

    client = slipway.Client()               # URL and token from SLIPWAY_URL / SLIPWAY_TOKEN
    version = client.register(estimator, name="iris", X_train=X, y_train=y,
                              X_eval=X_test, y_eval=y_test, owner="ml-team")
    client.deploy("iris", model="iris", version=version["number"])
    client.predict("iris", [{"sepal_length": 5.1, ...}])

The CLI is built on this client, so both see the same API and the same errors.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx

from slipway import errors
from slipway.settings import Settings, resolve_secret

_ERRORS_BY_CODE: dict[str, type[errors.SlipwayError]] = {
    cls.code: cls
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, errors.SlipwayError)
}


def raise_for_error(response: httpx.Response) -> None:
    """Turn the server's JSON error shape back into the matching SlipwayError."""
    if response.is_success:
        return
    try:
        error = response.json()["error"]
        code, message, details = error["code"], error["message"], error.get("details", [])
    except (ValueError, KeyError, TypeError):
        code, message, details = "internal", response.text[:200], []
    cls = _ERRORS_BY_CODE.get(code, errors.SlipwayError)
    exc = cls(message, details=details)
    exc.status = response.status_code
    raise exc


class Client:
    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 300.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        settings = Settings() if url is None or token is None else None
        self.url = (url or (settings.server_url if settings else "")).rstrip("/")
        raw_token = token if token is not None else (settings.token if settings else "")
        self._http = httpx.Client(
            base_url=self.url,
            timeout=timeout,
            transport=transport,
            headers={"Authorization": f"Bearer {resolve_secret(raw_token)}"} if raw_token else {},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise errors.Unavailable(f"cannot reach slipway at {self.url}: {exc}") from None
        raise_for_error(response)
        body: dict[str, Any] = response.json()
        return body

    def _list(self, path: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._call("GET", path, **kwargs)[key]
        return items

    # -- health ----------------------------------------------------------------------------
    def ready(self) -> bool:
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    # -- models ----------------------------------------------------------------------------
    def create_model(self, name: str, *, owner: str, **fields: Any) -> dict[str, Any]:
        return self._call("POST", "/api/v1/models", json={"name": name, "owner": owner, **fields})

    def list_models(self, **filters: str | None) -> list[dict[str, Any]]:
        params = {k: v for k, v in filters.items() if v}
        return self._list("/api/v1/models", "models", params=params)

    def get_model(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/models/{name}")

    def update_model(self, name: str, **fields: Any) -> dict[str, Any]:
        return self._call("PATCH", f"/api/v1/models/{name}", json=fields)

    def retire_model(self, name: str) -> dict[str, Any]:
        return self._call("POST", f"/api/v1/models/{name}/retire")

    # -- versions --------------------------------------------------------------------------
    def upload_artifact(self, data: bytes) -> dict[str, Any]:
        return self._call(
            "POST",
            "/api/v1/artifacts",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )

    def register_version(
        self,
        model: str,
        *,
        artifact: bytes,
        flavor: str,
        signature: Mapping[str, Any],
        example_rows: Sequence[Mapping[str, Any]],
        lineage: Mapping[str, Any] | None = None,
        trusted_types: Sequence[str] = (),
        description: str = "",
        library_versions: Mapping[str, str] | None = None,
        contract: Mapping[str, Any] | None = None,
        profile: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Upload ``artifact`` and register it; the answer says ``ready`` or ``failed``."""
        uploaded = self.upload_artifact(artifact)
        body: dict[str, Any] = {
            "artifact_sha256": uploaded["sha256"],
            "flavor": flavor,
            "signature": dict(signature),
            "example_rows": [dict(r) for r in example_rows],
            "lineage": dict(lineage or {}),
            "trusted_types": list(trusted_types),
            "description": description,
            "library_versions": dict(library_versions or {}),
        }
        if contract is not None:
            body["contract"] = dict(contract)
        if profile is not None:
            body["profile"] = dict(profile)
        return self._call("POST", f"/api/v1/models/{model}/versions", json=body)

    def register(
        self,
        model: Any,
        *,
        name: str,
        X_train: Any,
        evaluation: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """Serialize ``model`` safely, fingerprint the data, evaluate, and register it.

        Options: y_train, X_eval, y_eval, owner (creates the model entry if missing),
        metrics, params, parent_version, examples (rows to smoke-test, default 5),
        trusted_types, description, code_path. See :func:`slipway.registry.prepare.prepare`.

        ``evaluation``: an evaluation record (the arguments of :meth:`record_evaluation`:
        metrics, slices, baseline, dataset, evaluated_at) stored right after the version
        is registered and ready; it is then the evidence approvals bind to. Its dataset
        defaults to the fingerprint of X_eval/y_eval when they are given. The answer
        carries the stored record as ``evaluation``.
        """
        from slipway.registry.prepare import prepare

        owner = options.pop("owner", None)
        prepared = prepare(model, X_train=X_train, **options)
        if owner is not None:
            try:
                self.get_model(name)
            except errors.NotFound:
                self.create_model(name, owner=owner)
        version = self.register_version(name, **prepared)
        if evaluation is not None and version.get("status") == "ready":
            record = dict(evaluation)
            if record.get("dataset") is None:
                record["dataset"] = prepared["lineage"].get("evaluation_data")
            version["evaluation"] = self.record_evaluation(name, version["number"], **record)
        return version

    def list_versions(self, model: str) -> list[dict[str, Any]]:
        return self._list(f"/api/v1/models/{model}/versions", "versions")

    def get_version(self, model: str, number: int) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/models/{model}/versions/{number}")

    # -- endpoints -------------------------------------------------------------------------
    def deploy(
        self,
        endpoint: str,
        *,
        model: str,
        version: int,
        contract_mode: str | None = None,
        allow_breaking: bool = False,
        reason: str = "",
        latency_slo_ms: float | None = None,
        **limits: int | float | None,
    ) -> dict[str, Any]:
        """Serve ``model`` v``version`` on ``endpoint``. A breaking input-contract change
        needs ``allow_breaking=True`` and a ``reason`` (both audited). ``limits`` set
        serving limits as :meth:`set_endpoint_limits` does."""
        body: dict[str, Any] = {"model": model, "version": version, **limits}
        if contract_mode is not None:
            body["contract_mode"] = contract_mode
        if allow_breaking:
            body.update(allow_breaking=True, reason=reason)
        if latency_slo_ms is not None:
            body["latency_slo_ms"] = latency_slo_ms
        return self._call("POST", f"/api/v1/endpoints/{endpoint}/deploy", json=body)

    def set_endpoint_limits(
        self, endpoint: str, *, reason: str = "", **limits: int | float | None
    ) -> dict[str, Any]:
        """Override the server's serving limits on ``endpoint``: ``max_inflight``,
        ``max_queue``, ``request_timeout_s``, ``batch_max_rows``, ``batch_wait_ms``;
        ``None`` clears an override, limits not named keep their value."""
        body: dict[str, Any] = {**limits, "reason": reason}
        return self._call("PUT", f"/api/v1/endpoints/{endpoint}/limits", json=body)

    # -- traffic plans and rollouts ---------------------------------------------------------
    def set_traffic(
        self,
        endpoint: str,
        *,
        canary: int | None = None,
        weight: float = 0.0,
        routing: str = "random",
        shadows: Sequence[int] = (),
        reason: str = "",
    ) -> dict[str, Any]:
        """Set the whole plan beside the primary: a ``canary`` version taking ``weight``
        percent of requests (``routing`` "sticky" keeps a caller's X-Slipway-Routing-Key
        on one version) and ``shadows`` answering copies. Left out means cleared."""
        body = {
            "canary": canary,
            "weight": weight,
            "routing": routing,
            "shadows": list(shadows),
            "reason": reason,
        }
        return self._call("PUT", f"/api/v1/endpoints/{endpoint}/traffic", json=body)

    def rollback(self, endpoint: str, *, reason: str = "") -> dict[str, Any]:
        """Serve the previous primary again (ends a rollout under way)."""
        return self._call("POST", f"/api/v1/endpoints/{endpoint}/rollback", json={"reason": reason})

    def stop_endpoint(
        self, endpoint: str, *, reason: str, fallback_version: int | None = None
    ) -> dict[str, Any]:
        """Stop answering (503 ``endpoint_stopped``), or answer with ``fallback_version``."""
        body = {"reason": reason, "fallback_version": fallback_version}
        return self._call("POST", f"/api/v1/endpoints/{endpoint}/stop", json=body)

    def resume_endpoint(self, endpoint: str, *, reason: str = "") -> dict[str, Any]:
        return self._call("POST", f"/api/v1/endpoints/{endpoint}/resume", json={"reason": reason})

    def shadow_report(self, endpoint: str, *, window: int = 3600) -> dict[str, Any]:
        """Each shadow beside the primary over the last ``window`` seconds."""
        return self._call(
            "GET", f"/api/v1/endpoints/{endpoint}/shadow-report", params={"window": window}
        )

    def start_rollout(
        self,
        endpoint: str,
        *,
        version: int,
        steps: Sequence[float] | None = None,
        step_duration_s: float | None = None,
        template: str | None = None,
        thresholds: Mapping[str, Any] | None = None,
        routing: str | None = None,
        allow_breaking: bool = False,
        reason: str = "",
    ) -> dict[str, Any]:
        """Move ``endpoint`` to ``version`` in canary steps (percent of traffic), judged at
        each step by ``template`` with ``thresholds`` overriding it; None: the server's
        defaults (5, 25, 50, 100 every 300 s, template "default")."""
        body: dict[str, Any] = {"version": version, "reason": reason}
        if steps is not None:
            body["steps"] = list(steps)
        if step_duration_s is not None:
            body["step_duration_s"] = step_duration_s
        if template is not None:
            body["template"] = template
        if thresholds is not None:
            body["thresholds"] = dict(thresholds)
        if routing is not None:
            body["routing"] = routing
        if allow_breaking:
            body["allow_breaking"] = True
        return self._call("POST", f"/api/v1/endpoints/{endpoint}/rollout", json=body)

    def get_rollout(self, endpoint: str) -> dict[str, Any]:
        """The endpoint's rollout under way, or else its latest one."""
        return self._call("GET", f"/api/v1/endpoints/{endpoint}/rollout")

    def list_rollouts(
        self, endpoint: str | None = None, *, state: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Rollouts, newest first: of ``endpoint``, or of every endpoint one may read."""
        params: dict[str, Any] = {"limit": limit}
        if state:
            params["state"] = state
        path = f"/api/v1/endpoints/{endpoint}/rollouts" if endpoint else "/api/v1/rollouts"
        return self._list(path, "rollouts", params=params)

    def rollout_action(self, endpoint: str, action: str, *, reason: str = "") -> dict[str, Any]:
        """``action``: pause, resume, promote or abort the endpoint's rollout under way."""
        return self._call(
            "POST", f"/api/v1/endpoints/{endpoint}/rollout/{action}", json={"reason": reason}
        )

    def rollout_analysis(self, endpoint: str) -> dict[str, Any]:
        """The canary against the primary now, check by check (not recorded)."""
        return self._call("GET", f"/api/v1/endpoints/{endpoint}/rollout/analysis")

    def list_templates(self) -> list[dict[str, Any]]:
        return self._list("/api/v1/analysis-templates", "templates")

    def get_template(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/analysis-templates/{name}")

    def put_template(self, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Create or replace template ``name``; what ``spec`` leaves out is the default's."""
        return self._call("PUT", f"/api/v1/analysis-templates/{name}", json=dict(spec))

    def delete_template(self, name: str) -> dict[str, Any]:
        return self._call("DELETE", f"/api/v1/analysis-templates/{name}")

    # -- monitoring ------------------------------------------------------------------------
    def monitoring(
        self, endpoint: str, *, window: int = 86400, version: int | None = None
    ) -> dict[str, Any]:
        """The endpoint's health over the last ``window`` seconds (see monitoring/summary)."""
        params: dict[str, Any] = {"window": window}
        if version is not None:
            params["version"] = version
        return self._call("GET", f"/api/v1/endpoints/{endpoint}/monitoring", params=params)

    def send_feedback(
        self, endpoint: str, labels: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Ground truth by prediction id: ``{id: label}`` or ``[{prediction_id, label}]``;
        sent in batches of 10,000, the reports summed."""
        items = (
            [{"prediction_id": k, "label": v} for k, v in labels.items()]
            if isinstance(labels, Mapping)
            else [dict(item) for item in labels]
        )
        total: dict[str, Any] = {"received": 0, "accepted": 0, "updated": 0}
        total |= {"overridden": [], "unknown": [], "invalid": []}
        for start in range(0, len(items), 10_000):
            batch = items[start : start + 10_000]
            report = self._call(
                "POST", f"/api/v1/endpoints/{endpoint}/feedback", json={"items": batch}
            )
            for key in ("received", "accepted", "updated"):
                total[key] += report[key]
            total["overridden"] += report["overridden"]
            total["unknown"] += report["unknown"]
            total["invalid"] += [
                {**bad, "index": bad["index"] + start} for bad in report["invalid"]
            ]
        return total

    def list_monitors(self, endpoint: str) -> list[dict[str, Any]]:
        return self._list(f"/api/v1/endpoints/{endpoint}/monitors", "monitors")

    def create_monitor(self, endpoint: str, **fields: Any) -> dict[str, Any]:
        return self._call("POST", f"/api/v1/endpoints/{endpoint}/monitors", json=fields)

    def update_monitor(self, endpoint: str, name: str, **fields: Any) -> dict[str, Any]:
        return self._call("PATCH", f"/api/v1/endpoints/{endpoint}/monitors/{name}", json=fields)

    def delete_monitor(self, endpoint: str, name: str) -> dict[str, Any]:
        return self._call("DELETE", f"/api/v1/endpoints/{endpoint}/monitors/{name}")

    def evaluate_monitors(self, endpoint: str) -> dict[str, Any]:
        return self._call("POST", f"/api/v1/endpoints/{endpoint}/monitors/evaluate")

    def list_alerts(self, **filters: Any) -> list[dict[str, Any]]:
        params = {k: v for k, v in filters.items() if v is not None}
        return self._list("/api/v1/alerts", "alerts", params=params)

    def get_alert(self, alert_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/alerts/{alert_id}")

    def resolve_alert(self, alert_id: str, *, reason: str) -> dict[str, Any]:
        return self._call("POST", f"/api/v1/alerts/{alert_id}/resolve", json={"reason": reason})

    def create_channel(self, name: str, kind: str, **options: Any) -> dict[str, Any]:
        return self._call("POST", "/api/v1/channels", json={"name": name, "kind": kind, **options})

    def list_channels(self) -> list[dict[str, Any]]:
        return self._list("/api/v1/channels", "channels")

    def delete_channel(self, name: str) -> dict[str, Any]:
        return self._call("DELETE", f"/api/v1/channels/{name}")

    def test_channel(self, name: str) -> dict[str, Any]:
        return self._call("POST", f"/api/v1/channels/{name}/test")

    def get_profile(self, model: str, version: int) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/models/{model}/versions/{version}/profile")

    def list_endpoints(self) -> list[dict[str, Any]]:
        return self._list("/api/v1/endpoints", "endpoints")

    def get_endpoint(self, endpoint: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/endpoints/{endpoint}")

    # -- inference -------------------------------------------------------------------------
    def predict(self, endpoint: str, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return self._call(
            "POST", f"/v1/endpoints/{endpoint}/predict", json={"inputs": [dict(r) for r in rows]}
        )

    def infer(self, endpoint: str, inputs: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        """Open Inference Protocol call: ``inputs`` are V2 tensors."""
        return self._call("POST", f"/v2/models/{endpoint}/infer", json={"inputs": inputs, **extra})

    def get_prediction(self, prediction_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/predictions/{prediction_id}")

    def list_predictions(self, endpoint: str, limit: int = 100) -> dict[str, Any]:
        return self._call(
            "GET", f"/api/v1/endpoints/{endpoint}/predictions", params={"limit": limit}
        )

    # -- quarantine --------------------------------------------------------------------------
    def list_quarantine(
        self, endpoint: str, *, status: str | None = None, limit: int = 100
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        return self._call("GET", f"/api/v1/endpoints/{endpoint}/quarantine", params=params)

    def get_quarantined(self, quarantine_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/quarantine/{quarantine_id}")

    def export_quarantine(self, endpoint: str, *, status: str | None = None) -> Iterator[str]:
        params = {"status": status} if status else {}
        with self._http.stream(
            "GET", f"/api/v1/endpoints/{endpoint}/quarantine/export", params=params
        ) as response:
            if not response.is_success:
                response.read()
                raise_for_error(response)
            yield from (line for line in response.iter_lines() if line)

    def replay_quarantine(
        self, endpoint: str, *, ids: list[str] | None = None, limit: int = 1000
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"limit": limit}
        if ids:
            body["ids"] = ids
        return self._call("POST", f"/api/v1/endpoints/{endpoint}/quarantine/replay", json=body)

    # -- principals, tokens, grants ---------------------------------------------------------
    def create_principal(self, name: str, *, kind: str = "user", owner: str = "") -> dict[str, Any]:
        return self._call(
            "POST", "/api/v1/principals", json={"name": name, "kind": kind, "owner": owner}
        )

    def list_principals(self) -> list[dict[str, Any]]:
        return self._list("/api/v1/principals", "principals")

    def get_principal(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/principals/{name}")

    def set_principal_disabled(self, name: str, disabled: bool) -> dict[str, Any]:
        verb = "disable" if disabled else "enable"
        return self._call("POST", f"/api/v1/principals/{name}/{verb}")

    def create_token(self, principal: str, **options: Any) -> dict[str, Any]:
        """Issue a token; the answer's ``token`` is the secret, shown this once."""
        body = {"principal": principal, **{k: v for k, v in options.items() if v is not None}}
        return self._call("POST", "/api/v1/tokens", json=body)

    def list_tokens(self, principal: str | None = None) -> list[dict[str, Any]]:
        params = {"principal": principal} if principal else {}
        return self._list("/api/v1/tokens", "tokens", params=params)

    def revoke_token(self, token_id: str, *, reason: str = "") -> dict[str, Any]:
        return self._call("POST", f"/api/v1/tokens/{token_id}/revoke", json={"reason": reason})

    def rotate_token(self, token_id: str, *, overlap_s: float = 3600.0) -> dict[str, Any]:
        return self._call(
            "POST", f"/api/v1/tokens/{token_id}/rotate", json={"overlap_s": overlap_s}
        )

    def create_grant(
        self,
        principal: str,
        role: str,
        *,
        scope_kind: str = "global",
        scope_name: str | None = None,
    ) -> dict[str, Any]:
        return self._call(
            "POST",
            "/api/v1/grants",
            json={
                "principal": principal,
                "role": role,
                "scope_kind": scope_kind,
                "scope_name": scope_name,
            },
        )

    def list_grants(self, principal: str | None = None) -> list[dict[str, Any]]:
        params = {"principal": principal} if principal else {}
        return self._list("/api/v1/grants", "grants", params=params)

    def revoke_grant(self, grant_id: str) -> dict[str, Any]:
        return self._call("POST", f"/api/v1/grants/{grant_id}/revoke")

    # -- audit -----------------------------------------------------------------------------
    def audit_events(self, **filters: str | int | None) -> list[dict[str, Any]]:
        """Audit events matching the filters (actor, target, action, since, until,
        after_seq, limit), oldest first."""
        params = {k: v for k, v in filters.items() if v not in (None, "")}
        return self._list("/api/v1/audit/events", "events", params=params)

    def audit_export(self, **filters: str | None) -> Iterator[str]:
        """Every matching audit event as one JSON line (without the newline), streamed."""
        params = {k: v for k, v in filters.items() if v}
        try:
            with self._http.stream("GET", "/api/v1/audit/export", params=params) as response:
                if not response.is_success:
                    response.read()
                    raise_for_error(response)
                for line in response.iter_lines():
                    if line:
                        yield line
        except httpx.TransportError as exc:
            raise errors.Unavailable(f"cannot reach slipway at {self.url}: {exc}") from None

    def audit_verify(self) -> dict[str, Any]:
        """The server's check of the chain and its checkpoints (``slipway audit verify``
        runs the same check locally)."""
        return self._call("GET", "/api/v1/audit/verify")

    # -- governance: evaluations and approvals -------------------------------------------
    def record_evaluation(
        self,
        model: str,
        version: int,
        *,
        metrics: Mapping[str, float],
        slices: Mapping[str, Mapping[str, float]] | None = None,
        baseline: Mapping[str, float] | None = None,
        dataset: Mapping[str, Any] | None = None,
        evaluated_at: str | None = None,
    ) -> dict[str, Any]:
        """Append an evaluation record (overall ``metrics``, per-``slices`` metrics, a
        simple ``baseline``'s metrics, the evaluation data's fingerprint ``dataset``,
        ISO ``evaluated_at``); approvals bound to the previous evidence become stale."""
        body: dict[str, Any] = {"metrics": dict(metrics)}
        optional = {
            "slices": slices,
            "baseline": baseline,
            "dataset": dataset,
            "evaluated_at": evaluated_at,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return self._call(
            "POST", f"/api/v1/models/{model}/versions/{version}/evaluations", json=body
        )

    def get_evaluations(self, model: str, version: int) -> dict[str, Any]:
        """``{"current": record or None, "history": [records, newest first]}``."""
        return self._call("GET", f"/api/v1/models/{model}/versions/{version}/evaluations")

    def request_approval(self, model: str, version: int, *, note: str = "") -> dict[str, Any]:
        return self._call(
            "POST", f"/api/v1/models/{model}/versions/{version}/approvals", json={"note": note}
        )

    def list_approvals(self, **filters: str | int | None) -> list[dict[str, Any]]:
        """Approvals matching the filters (model, version, state, limit), newest first;
        each says whether it is still ``valid`` and, if not, ``stale_because``."""
        params = {k: v for k, v in filters.items() if v not in (None, "")}
        return self._list("/api/v1/approvals", "approvals", params=params)

    def get_approval(self, approval_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/approvals/{approval_id}")

    def approve(self, approval_id: str, *, rationale: str) -> dict[str, Any]:
        return self._call(
            "POST", f"/api/v1/approvals/{approval_id}/approve", json={"rationale": rationale}
        )

    def reject(self, approval_id: str, *, rationale: str) -> dict[str, Any]:
        return self._call(
            "POST", f"/api/v1/approvals/{approval_id}/reject", json={"rationale": rationale}
        )

    # -- governance: policies ------------------------------------------------------------
    def put_policy(self, name: str, source: str) -> dict[str, Any]:
        """Create policy ``name`` from its YAML ``source``, or replace it (revision + 1)."""
        return self._call("PUT", f"/api/v1/policies/{name}", json={"source": source})

    def get_policy(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/policies/{name}")

    def list_policies(self) -> list[dict[str, Any]]:
        return self._list("/api/v1/policies", "policies")

    def delete_policy(self, name: str) -> dict[str, Any]:
        return self._call("DELETE", f"/api/v1/policies/{name}")

    def check_policy(
        self, model: str, version: int, *, endpoint: str, action: str = "deploy"
    ) -> dict[str, Any]:
        """The dry run: each check of each policy that ``action`` ("deploy",
        "rollout_start", "promote") of the version on ``endpoint`` would meet; ``allowed``
        false means the action would be blocked."""
        body = {"model": model, "version": version, "endpoint": endpoint, "action": action}
        return self._call("POST", "/api/v1/policies/check", json=body)

    # -- governance: model cards, ML Test Score, inventory, reviews ----------------------
    def _text(self, path: str, **kwargs: Any) -> str:
        """GET a route answering text (Markdown, HTML, CSV) rather than JSON."""
        try:
            response = self._http.get(path, **kwargs)
        except httpx.TransportError as exc:
            raise errors.Unavailable(f"cannot reach slipway at {self.url}: {exc}") from None
        raise_for_error(response)
        return response.text

    def model_card(self, model: str, version: int) -> dict[str, Any]:
        """The version's model card as data, generated from the records."""
        return self._call("GET", f"/api/v1/models/{model}/versions/{version}/card")

    def model_card_text(self, model: str, version: int, *, format: str = "markdown") -> str:
        """The model card rendered by the server: ``markdown`` or ``html``."""
        return self._text(
            f"/api/v1/models/{model}/versions/{version}/card", params={"format": format}
        )

    def test_score(self, model: str) -> dict[str, Any]:
        """The model's ML Test Score: sections, final score, band, each test's evidence."""
        return self._call("GET", f"/api/v1/models/{model}/test-score")

    def attest(self, model: str, test: str, *, evidence_url: str, note: str) -> dict[str, Any]:
        """Vouch for ML Test Score test ``test`` (e.g. ``data-2``) with a link to evidence."""
        body = {"test": test, "evidence_url": evidence_url, "note": note}
        return self._call("POST", f"/api/v1/models/{model}/test-score/attestations", json=body)

    def withdraw_attestation(self, model: str, test: str) -> dict[str, Any]:
        return self._call("DELETE", f"/api/v1/models/{model}/test-score/attestations/{test}")

    def review_model(self, model: str, *, notes: str) -> dict[str, Any]:
        """Record a periodic review of ``model``."""
        return self._call("POST", f"/api/v1/models/{model}/reviews", json={"notes": notes})

    def list_reviews(self, model: str) -> list[dict[str, Any]]:
        return self._list(f"/api/v1/models/{model}/reviews", "reviews")

    def inventory(self, **filters: str | None) -> list[dict[str, Any]]:
        """One row per model the caller may read (filters: name, tag, owner, status)."""
        params = {k: v for k, v in filters.items() if v}
        return self._list("/api/v1/inventory", "models", params=params)

    def inventory_csv(self, **filters: str | None) -> str:
        params = {k: v for k, v in filters.items() if v}
        return self._text("/api/v1/inventory", params={**params, "format": "csv"})

    # -- governance: retention, legal hold, overrides ------------------------------------
    def retention_status(self) -> dict[str, Any]:
        """Retention days per risk tier, the purge interval, and what a purge would
        delete now (per model; held models listed as skipped)."""
        return self._call("GET", "/api/v1/retention")

    def purge_retention(self, *, dry_run: bool = False) -> dict[str, Any]:
        """Purge prediction records, their feedback and quarantined rows past retention
        (``dry_run``: only report what would go)."""
        return self._call("POST", "/api/v1/retention/purge", json={"dry_run": dry_run})

    def hold_model(self, name: str, *, reason: str) -> dict[str, Any]:
        """Put model ``name`` under legal hold: retention purges nothing of it."""
        return self._call("POST", f"/api/v1/models/{name}/hold", json={"reason": reason})

    def release_model(self, name: str, *, reason: str) -> dict[str, Any]:
        return self._call("POST", f"/api/v1/models/{name}/release", json={"reason": reason})

    def override_prediction(self, prediction_id: str, *, label: Any, reason: str) -> dict[str, Any]:
        """A reviewer's correction of one prediction (``<record>-<row>``), with why."""
        return self._call(
            "POST",
            f"/api/v1/predictions/{prediction_id}/override",
            json={"label": label, "reason": reason},
        )
