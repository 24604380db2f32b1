"""`pantau.yaml`: the hub's configuration, validated with pydantic.

Durations are written as Prometheus writes them (`15s`, `5m`, `30d`, `1h30m`), sizes as
numbers of bytes or with a unit (`16MiB`, `512KB`). Unknown keys are errors: a typo should
not silently fall back to a default.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pantau.logs.service import LogsConfig
from pantau.logs.severity import severity_class

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


class ConfigError(ValueError):
    """A configuration problem, with where it is (file, key path) in the message."""


def parse_duration(value: Any) -> float:
    """Seconds from `30d`, `1h30m`, `250ms`, or a plain number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a duration such as 15s, 5m or 30d, got {value!r}")
    text = value.strip()
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text):
        raise ValueError(f"invalid duration {value!r}: use a number with a unit (ms, s, m, h, d, w, y)")
    return total


def parse_size(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise ValueError(f"invalid size {value!r}: use bytes or a unit such as 512KiB or 16MiB")
    return int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()])


Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=True)


class ServerConfig(_Strict):
    bind: str = "127.0.0.1"
    port: int = Field(3000, ge=0, le=65535, description="API and UI")
    otlp_http_port: int = Field(4318, ge=0, le=65535)
    otlp_grpc_port: int = Field(4317, ge=0, le=65535)
    shutdown_grace: Duration = 10.0


class RetentionConfig(_Strict):
    spans: Duration = 30 * 86400
    logs: Duration = 30 * 86400
    logs_by_severity: dict[str, Duration] = Field(
        {}, description="log retention per severity (trace, debug, info, warn, error, fatal); the rest keep `logs`")
    metrics: Duration = Field(30 * 86400, description="raw samples")
    metrics_1m: Duration = Field(90 * 86400, description="1-minute rollups (long-range queries)")
    metrics_1h: Duration = Field(365 * 86400, description="1-hour rollups")


    @field_validator("logs_by_severity")
    @classmethod
    def _severity_names(cls, v: dict[str, float]) -> dict[str, float]:
        return {severity_class(name): seconds for name, seconds in v.items()}


class StorageConfig(_Strict):
    data_dir: Path = Path("pantau-data")
    partition: Duration = 86400
    retention: RetentionConfig = RetentionConfig()
    fsync: bool = Field(False, description="fsync every commit (survives power loss, not only crashes)")
    archive_dir: Path | None = Field(
        None, description="write expiring span and log partitions here as Parquet before dropping them")

    @field_validator("partition")
    @classmethod
    def _whole_seconds(cls, v: float) -> float:
        if v < 60 or v != int(v):
            raise ValueError("partition must be a whole number of seconds, at least 1m")
        return v


class LimitsConfig(_Strict):
    max_request_bytes: Size = 16 * 2**20
    max_attribute_value_bytes: Size = 64 * 2**10
    max_log_body_bytes: Size = 256 * 2**10
    write_queue_items: int = Field(1_000_000, ge=1000)
    future_tolerance: Duration = 86400


# --- scraping: a subset of prometheus.yml, same shape -------------------------------------

_JOB_NAME = re.compile(r"^[a-zA-Z0-9_.:/-]+$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class GlobalConfig(_Strict):
    """Defaults for every scrape job (Prometheus's defaults: scrape every 1m, 10s timeout)."""

    scrape_interval: Duration = 60.0
    scrape_timeout: Duration | None = None  # None: 10s, or the interval when that is shorter

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> GlobalConfig:
        if self.scrape_timeout is None:
            self.scrape_timeout = min(10.0, self.scrape_interval)
        elif self.scrape_timeout > self.scrape_interval:
            raise ValueError("global scrape_timeout is greater than scrape_interval")
        return self


class StaticConfig(_Strict):
    targets: list[str] = []  # host:port, as in prometheus.yml (no scheme, no path)
    labels: dict[str, str] = {}

    @field_validator("targets")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        for target in v:
            if not target or "/" in target or any(c.isspace() for c in target):
                raise ValueError(f"target {target!r} is not a host:port address (scheme and path are set by "
                                 "the job's scheme and metrics_path)")
        return v

    @field_validator("labels")
    @classmethod
    def _label_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if not _LABEL_NAME.match(name):
                raise ValueError(f"invalid label name {name!r}")
        return v


class ScrapeConfig(_Strict):
    job_name: str
    scrape_interval: Duration | None = None  # None: global.scrape_interval
    scrape_timeout: Duration | None = None  # None: global.scrape_timeout, capped at the interval
    metrics_path: str = "/metrics"
    scheme: Literal["http", "https"] = "http"
    honor_labels: bool = False
    honor_timestamps: bool = True
    static_configs: list[StaticConfig] = []

    @field_validator("job_name")
    @classmethod
    def _job_name(cls, v: str) -> str:
        if not v or not _JOB_NAME.match(v):
            raise ValueError(f"invalid job_name {v!r}")
        return v

    @field_validator("metrics_path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("metrics_path must start with /")
        return v

    def resolved(self, defaults: GlobalConfig) -> ScrapeConfig:
        """Interval and timeout filled in from `global`, exactly as Prometheus does it."""
        interval = self.scrape_interval or defaults.scrape_interval
        timeout = self.scrape_timeout
        if timeout is None:
            timeout = min(defaults.scrape_timeout or 10.0, interval)
        if timeout > interval:
            raise ValueError(f"scrape_configs job {self.job_name!r}: scrape_timeout ({timeout:g}s) is greater "
                             f"than scrape_interval ({interval:g}s)")
        return self.model_copy(update={"scrape_interval": interval, "scrape_timeout": timeout})


class RedactionConfig(_Strict):
    """PII redaction of log bodies and attributes at ingest (the SDK's rules, one implementation)."""

    enabled: bool = True
    disable_rules: list[str] = Field([], description="rules to switch off: email, phone, card, nik, jwt, "
                                                     "bearer, secret")
    exempt_attributes: list[str] = Field([], description="attributes never redacted")
    force_attributes: list[str] = Field([], description="attributes whose whole value is always redacted")
    secret_keys: bool = Field(True, description="redact whole values of attributes named like secrets")

    @field_validator("disable_rules")
    @classmethod
    def _known_rules(cls, v: list[str]) -> list[str]:
        from pantau.redaction import default_rules

        known = [r.name for r in default_rules()]
        for name in v:
            if name not in known:
                raise ValueError(f"unknown redaction rule {name!r}: use one of {', '.join(known)}")
        return v


from pantau.alerting.config import AlertingConfig  # noqa: E402 (needs Duration above)
from pantau.anomaly.config import AnomalyConfig  # noqa: E402  (it uses Duration, defined above)


class PantauConfig(_Strict):
    server: ServerConfig = ServerConfig()
    storage: StorageConfig = StorageConfig()
    limits: LimitsConfig = LimitsConfig()
    global_: GlobalConfig = Field(GlobalConfig(), alias="global")
    scrape_configs: list[ScrapeConfig] = []
    redaction: RedactionConfig = RedactionConfig()
    anomaly: AnomalyConfig = AnomalyConfig()
    # alerting: Prometheus rule files (globs), an Alertmanager config file, pantau's additions
    rule_files: list[str] = []
    alertmanager_config: str | None = None
    alerting: AlertingConfig = AlertingConfig()
    logs: LogsConfig = LogsConfig()

    @model_validator(mode="after")
    def _scrape_jobs(self) -> PantauConfig:
        seen: set[str] = set()
        resolved = []
        for job in self.scrape_configs:
            if job.job_name in seen:
                raise ValueError(f"scrape_configs: job_name {job.job_name!r} is used twice")
            seen.add(job.job_name)
            resolved.append(job.resolved(self.global_))
        self.scrape_configs = resolved
        return self


def load_config(path: Path | None) -> PantauConfig:
    if path is None:
        return PantauConfig()
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f":{mark.line + 1}:{mark.column + 1}"
        raise ConfigError(f"{path}{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: the configuration must be a mapping of sections")
    try:
        cfg = PantauConfig.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"{path}: {problems}") from None
    # rule and Alertmanager files are relative to the configuration file, as in prometheus.yml
    base = Path(path).parent
    cfg.rule_files = [str(base / f) for f in cfg.rule_files]
    if cfg.alertmanager_config:
        cfg.alertmanager_config = str(base / cfg.alertmanager_config)
    return cfg
