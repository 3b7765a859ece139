"""Every setting, declared once as data.

Each :class:`Setting` has a name, a type, a default and a help text. Values come from, in
order of precedence: explicit overrides (CLI flags), the environment (``SLIPWAY_<NAME>``),
the TOML file ``$SLIPWAY_HOME/slipway.toml`` (or ``SLIPWAY_CONFIG``), then the default.
The same declarations feed ``slipway settings`` and the docs.

Secrets are given by reference (``env:NAME`` or ``file:PATH``), never inline.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slipway.errors import ValidationFailed
from slipway.serving.limits import RANGES as LIMIT_RANGES


@dataclass(frozen=True)
class Setting:
    name: str
    type: type
    default: Any
    help: str

    @property
    def env_var(self) -> str:
        return "SLIPWAY_" + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("home", str, "~/.slipway", "Directory for the SQLite store, artifacts and config."),
    Setting(
        "database_url",
        str,
        "",
        "SQLAlchemy URL of the store; empty means SQLite at $SLIPWAY_HOME/slipway.db. "
        "PostgreSQL: postgresql+psycopg://user@host/db",
    ),
    Setting(
        "artifact_url",
        str,
        "",
        "Where artifacts live: a local directory or any fsspec URL; "
        "empty means $SLIPWAY_HOME/artifacts.",
    ),
    Setting("host", str, "127.0.0.1", "Address the server listens on."),
    Setting("port", int, 8750, "Port the server listens on."),
    Setting("url", str, "", "Server URL for the CLI and SDK; empty means http://host:port."),
    Setting("token", str, "", "API token for the CLI/SDK, as env:NAME or file:PATH or raw."),
    Setting("max_upload_mb", int, 512, "Largest artifact upload accepted, in MiB."),
    Setting("max_request_mb", int, 16, "Largest JSON request body accepted, in MiB."),
    Setting("sandbox_memory_mb", int, 4096, "Address-space limit of the smoke-test process."),
    Setting("sandbox_timeout_s", float, 120.0, "Wall-clock limit of the smoke-test process."),
    Setting(
        "pyfunc_trusted_modules",
        str,
        "",
        "Comma-separated module prefixes whose classes the pyfunc flavor may import. "
        "Empty trusts none: pyfunc is off by default.",
    ),
    Setting("record_batch_max", int, 512, "Most prediction records committed in one batch."),
    Setting(
        "record_flush_ms",
        float,
        0.0,
        "Longest wait to gather more records into one commit (ms). 0: commit at once; "
        "records arriving during a commit share the next one.",
    ),
    Setting(
        "store_busy_timeout_s",
        float,
        30.0,
        "SQLite: longest wait for a write lock another process holds before giving up "
        "(a prediction whose record cannot be written in time is answered 503).",
    ),
    Setting("predict_threads", int, 4, "Threads that run model predictions."),
    Setting(
        "inline_call_ms",
        float,
        1.0,
        "A model call of a built-in flavor measured to take at most this much CPU runs on "
        "the event loop instead of a predict thread, whose hand-off costs about 0.1 ms; a "
        "micro-batch does so only when its request is the only one the worker is running. "
        "0 runs every call on a thread.",
    ),
    Setting("sync_interval_s", float, 1.0, "How often a server re-reads endpoint deployments."),
    Setting("shutdown_grace_s", float, 30.0, "Time in-flight requests get after SIGTERM."),
    Setting("log_level", str, "info", "Log level: debug, info, warning, error."),
    Setting(
        "auth",
        bool,
        True,
        "Require tokens. Turning it off is refused unless the server listens on loopback.",
    ),
    Setting("rate_limit_rps", float, 0.0, "Default requests/s per token; 0 means unlimited."),
    Setting("max_concurrent", int, 0, "Default concurrent requests per token; 0: unlimited."),
    Setting(
        "audit_dir",
        str,
        "",
        "Where signed audit checkpoints and the signing key live, outside the store; "
        "empty means $SLIPWAY_HOME/audit.",
    ),
    Setting(
        "quarantine_key",
        str,
        "",
        "Key that masks pii fields (keyed hash) and seals quarantined rows for replay, as "
        "env:NAME or file:PATH; empty means $SLIPWAY_HOME/quarantine.key, created on first "
        "use. Replicas must share it.",
    ),
    Setting("audit_checkpoint_events", int, 1000, "Write a checkpoint every N audit events."),
    Setting("audit_checkpoint_s", float, 60.0, "...or every T seconds when events arrived."),
    Setting(
        "max_inflight",
        int,
        64,
        "Requests one endpoint runs at once in a worker; more wait in its queue.",
    ),
    Setting(
        "max_queue",
        int,
        256,
        "Requests that may wait per endpoint and worker; beyond it: 503 with Retry-After.",
    ),
    Setting(
        "request_timeout_s",
        float,
        30.0,
        "Deadline of an inference request from its arrival; a request still waiting at "
        "its deadline is not run (504). A caller may ask for less with the header "
        "X-Slipway-Timeout-Ms.",
    ),
    Setting(
        "batch_max_rows",
        int,
        64,
        "Micro-batching: most rows of concurrent requests merged into one model call; "
        "0 turns it off.",
    ),
    Setting(
        "batch_wait_ms",
        float,
        0.0,
        "Micro-batching: longest wait for more requests when the model is idle (0: a "
        "lone request runs at once; under load batches form by themselves).",
    ),
    Setting(
        "monitor_interval_s",
        float,
        60.0,
        "How often monitors are evaluated (and alerts raised or resolved); 0 turns it off.",
    ),
    Setting(
        "monitor_flush_s",
        float,
        5.0,
        "How often closed one-minute monitoring windows are written to the store.",
    ),
    Setting(
        "rollout_interval_s",
        float,
        2.0,
        "How often the rollout controller judges canaries (and writes the open windows "
        "of endpoints under rollout); 0 turns it off.",
    ),
    # -- governance: retention (governance/retention.py)
    Setting(
        "retention_days_low",
        int,
        90,
        "Days prediction records, their feedback and quarantined rows of a low-risk model "
        "are kept before the retention job purges them (1 to 36500).",
    ),
    Setting(
        "retention_days_medium",
        int,
        183,
        "Days records of a medium-risk model are kept (1 to 36500).",
    ),
    Setting(
        "retention_days_high",
        int,
        365,
        "Days records of a high-risk model are kept (1 to 36500; keep at least 183, "
        "about six months, for high-risk systems).",
    ),
    Setting(
        "retention_interval_s",
        float,
        3600.0,
        "How often the retention job purges records past retention (models under legal "
        "hold are skipped); 0 turns it off.",
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def _coerce(setting: Setting, raw: Any) -> Any:
    try:
        if setting.type is bool and isinstance(raw, str):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        return setting.type(raw)
    except (TypeError, ValueError):
        raise ValidationFailed.field(
            setting.env_var, f"expected {setting.type.__name__}, got {raw!r}"
        ) from None


def resolve_secret(value: str) -> str:
    """Resolve ``env:NAME`` / ``file:PATH`` references; other values are returned as-is."""
    if value.startswith("env:"):
        return os.environ.get(value[4:], "")
    if value.startswith("file:"):
        return Path(value[5:]).expanduser().read_text().strip()
    return value


class Settings:
    """Resolved settings; attribute access by setting name (``settings.port``)."""

    def __init__(
        self,
        overrides: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        for key in given:
            if key not in _BY_NAME:
                raise ValidationFailed.field(key, "unknown setting")
        values: dict[str, Any] = {}
        # home first: it locates the TOML file that may define everything else.
        home_setting = _BY_NAME["home"]
        home = given.get("home") or env.get(home_setting.env_var) or home_setting.default
        file_values = self._read_file(env.get("SLIPWAY_CONFIG") or str(Path(home) / "slipway.toml"))
        for s in SETTINGS:
            if s.name in given:
                raw = given[s.name]
            elif s.env_var in env:
                raw = env[s.env_var]
            elif s.name in file_values:
                raw = file_values[s.name]
            else:
                raw = s.default
            values[s.name] = _coerce(s, raw)
        values["home"] = str(Path(values["home"]).expanduser())
        # The serving limits accept what an endpoint's own overrides accept.
        for name, allowed in LIMIT_RANGES.items():
            values[name] = allowed.check(_BY_NAME[name].env_var, values[name])
        self._values = values

    @staticmethod
    def _read_file(path: str) -> dict[str, Any]:
        p = Path(path).expanduser()
        if not p.is_file():
            return {}
        with p.open("rb") as f:
            data = tomllib.load(f)
        section = data.get("slipway", data)
        unknown = set(section) - set(_BY_NAME)
        if unknown:
            raise ValidationFailed.field(str(p), f"unknown settings: {', '.join(sorted(unknown))}")
        return dict(section)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def home_path(self) -> Path:
        return Path(self.home)

    @property
    def resolved_database_url(self) -> str:
        return str(self.database_url) or f"sqlite:///{self.home_path / 'slipway.db'}"

    @property
    def resolved_artifact_url(self) -> str:
        return str(self.artifact_url) or str(self.home_path / "artifacts")

    @property
    def resolved_audit_dir(self) -> Path:
        return (
            Path(str(self.audit_dir)).expanduser() if self.audit_dir else self.home_path / "audit"
        )

    @property
    def server_url(self) -> str:
        return str(self.url) or f"http://{self.host}:{self.port}"

    @property
    def trusted_pyfunc_modules(self) -> tuple[str, ...]:
        return tuple(m.strip() for m in str(self.pyfunc_trusted_modules).split(",") if m.strip())

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)
