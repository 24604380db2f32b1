"""The `anomaly:` section of pantau.yaml: which series to watch, how often, the detectors'
settings and the business rules. Unknown keys are errors, as everywhere in pantau.yaml."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pantau.anomaly.changepoint import CUSUMParams
from pantau.anomaly.context import ContextParams
from pantau.anomaly.duration import Duration
from pantau.anomaly.ensemble import DETECTORS, EnsembleParams
from pantau.anomaly.ewma import EWMAParams
from pantau.anomaly.iqr import IQRParams
from pantau.anomaly.robust_z import RobustZParams
from pantau.anomaly.seasonal import SeasonalParams


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class _Band(_Strict):
    z_min: float = Field(3.0, gt=0, description="deviation below which the score is 0")
    z_half: float = Field(6.0, gt=0, description="deviation at which the score is 0.5")

    @model_validator(mode="after")
    def _ordered(self):
        if self.z_half <= self.z_min:
            raise ValueError(f"z_half ({self.z_half}) must be greater than z_min ({self.z_min})")
        return self


class RobustZConfig(_Band):
    z_min: float = Field(3.0, gt=0, description="MADs from the window's median where scoring starts")
    z_half: float = Field(6.0, gt=0, description="MADs at which the score is 0.5")


class IQRConfig(_Strict):
    k: float = Field(1.5, gt=0, description="Tukey's inner fence (IQRs beyond the quartiles)")
    k_half: float = Field(3.0, gt=0, description="fence at which the score is 0.5")


class EWMAConfig(_Band):
    alpha: float = Field(0.05, gt=0, lt=1, description="weight of each new point")


class CUSUMConfig(_Strict):
    k: float = Field(0.5, ge=0, description="allowance per point (robust z units)")
    h: float = Field(12.0, gt=0, description="decision level (score 0.5)")
    clip: float = Field(4.0, gt=0, description="largest step one point may add")
    drain: float = Field(3.0, ge=0, description="extra decrease per point that does not push the sum (a shift "
                         "that ended is forgotten fast, so its anomaly ends)")


class SeasonalConfig(_Band):
    z_min: float = Field(2.5, gt=0, description="standard deviations from the usual level where scoring starts")
    z_half: float = Field(5.0, gt=0, description="standard deviations at which the score is 0.5")
    week_beta: float = Field(0.5, gt=0, le=1, description="weight of the newest week in an hour-of-week slot")
    day_beta: float = Field(0.2, gt=0, le=1, description="weight of the newest day in an hour-of-day slot")
    min_weeks: int = Field(2, ge=1, description="observations before an hour-of-week slot is trusted")
    min_days: int = Field(2, ge=1, description="observations before an hour-of-day slot is trusted")
    pool: float = Field(0.0, ge=0, le=1, description="a slot's variance is at least this share of its "
                        "neighbourhood's (few weeks are too few to estimate one hour's spread alone)")


class DetectorsConfig(_Strict):
    window: int = Field(256, ge=8, le=4096, description="trailing window (points) of robust_z and iqr")
    min_points: int = Field(24, ge=2, description="points before any score")
    refractory: int = Field(200, ge=0, description="points the onset score stays 0 after an onset")
    refractory_level: float = Field(0.2, gt=0, le=1, description="onset score that starts the refractory period")
    seasonal_gate: bool = Field(True, description="a value usual for its hour of the week is not anomalous")
    seasonal_alone: float = Field(0.999, gt=0, le=1, description="seasonal score at which a value is anomalous "
                                  "even inside the recent range (~10 standard deviations from its hour's level)")
    records: bool = Field(True, description="a value beyond the series' all-time range is not capped by the "
                          "seasonal score (the first spike higher than all the usual ones)")
    record_margin: float = Field(0.02, ge=0, description="... beyond it by this share of the all-time range")
    context: bool = Field(True, description="cap the onset score by how new the point's transition is (a burst "
                          "the series has made often is a habit, not an onset); events are not affected")
    context_decay_every: int = Field(4096, ge=0, description="points between halvings of the transition counts")
    weights: dict[str, float] = Field(default_factory=lambda: {
        "robust_z": 1.0, "iqr": 0.8, "ewma": 0.8, "cusum": 1.0, "seasonal": 1.0})
    robust_z: RobustZConfig = RobustZConfig()
    iqr: IQRConfig = IQRConfig()
    ewma: EWMAConfig = EWMAConfig()
    cusum: CUSUMConfig = CUSUMConfig()
    seasonal: SeasonalConfig = SeasonalConfig()

    @field_validator("weights")
    @classmethod
    def _known(cls, v: dict[str, float]) -> dict[str, float]:
        for name, w in v.items():
            if name not in DETECTORS:
                raise ValueError(f"unknown detector {name!r} (known: {', '.join(DETECTORS)})")
            if not 0 <= w <= 1:
                raise ValueError(f"weight of {name} must be within [0, 1]")
        return v

    def params(self, only: str | None = None) -> EnsembleParams:
        return EnsembleParams(
            window=self.window, min_points=self.min_points, refractory=self.refractory,
            refractory_level=self.refractory_level,
            seasonal_gate=self.seasonal_gate, seasonal_alone=self.seasonal_alone, weights=dict(self.weights),
            records=self.records, record_margin=self.record_margin,
            context=ContextParams(decay_every=self.context_decay_every) if self.context else None,
            only=only,
            robust_z=RobustZParams(**self.robust_z.model_dump()),
            iqr=IQRParams(**self.iqr.model_dump()),
            ewma=EWMAParams(**self.ewma.model_dump(), min_points=self.min_points),
            cusum=CUSUMParams(**self.cusum.model_dump()),
            seasonal=SeasonalParams(**self.seasonal.model_dump()),
        )


_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.:-]*$")


class WatchConfig(_Strict):
    """A PromQL expression whose every output series gets its own baseline."""

    name: str
    expr: str
    description: str = ""  # how reasons name it ("p99 latency"); default: the name
    unit: str = ""  # "s", "ms", "%", "" ...

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"invalid watch name {v!r} (letters, digits, _ . : -)")
        return v

    @field_validator("expr")
    @classmethod
    def _expr(cls, v: str) -> str:
        from pantau.query.promql.engine import parse

        try:
            parse(v)
        except ValueError as exc:
            raise ValueError(f"invalid PromQL {v!r}: {exc}") from None
        return v


def _latency(name: str, metric: str, unit: str, what: str) -> WatchConfig:
    return WatchConfig(name=name, unit=unit, description=what,
                       expr=f"histogram_quantile(0.99, sum by (job, le) (rate({metric}_bucket[5m])))")


# Request rate, error rate and latency of every service, under both names the OpenTelemetry
# HTTP semantic conventions have used, and pantau's business metrics.
DEFAULT_WATCHES = [
    WatchConfig(name="request_rate", description="request rate", unit="req/s",
                expr="sum by (job) (rate(http_server_request_duration_seconds_count[5m]))"),
    WatchConfig(name="request_rate_legacy", description="request rate", unit="req/s",
                expr="sum by (job) (rate(http_server_duration_milliseconds_count[5m]))"),
    WatchConfig(name="error_rate", description="5xx responses", unit="/s",
                expr='sum by (job) (rate(http_server_request_duration_seconds_count'
                     '{http_response_status_code=~"5.."}[5m]))'),
    WatchConfig(name="error_rate_legacy", description="5xx responses", unit="/s",
                expr='sum by (job) (rate(http_server_duration_milliseconds_count{http_status_code=~"5.."}[5m]))'),
    _latency("latency_p99", "http_server_request_duration_seconds", "s", "p99 latency"),
    _latency("latency_p99_legacy", "http_server_duration_milliseconds", "ms", "p99 latency"),
    WatchConfig(name="signing_rate", description="signing operations", unit="/s",
                expr="sum by (job) (rate(pantau_signing_operations_total[5m]))"),
    WatchConfig(name="chain_integrity", description="chain integrity", unit="%",
                expr="pantau_chain_integrity_percent"),
    WatchConfig(name="equity_score", description="equity score", expr="pantau_equity_score"),
]


class AnomalyConfig(_Strict):
    enabled: bool = True
    evaluation_interval: Duration = Field(60.0, description="how often new points are scored")
    step: Duration = Field(60.0, description="resolution of the watched series (range-query step)")
    warmup: Duration = Field(7 * 86400.0, description="history learned from when a series is first seen")
    max_catchup: Duration = Field(86400.0, description="longest gap scored after a restart")
    threshold: float = Field(0.5, gt=0, le=1, description="score at which an anomaly event opens")
    close_threshold: float = Field(0.3, ge=0, le=1, description="score under which it may end ...")
    close_after: int = Field(3, ge=1, description="... after this many points in a row")
    default_watches: bool = Field(True, description="watch the HTTP and business metrics listed in the README")
    watches: list[WatchConfig] = []
    detectors: DetectorsConfig = DetectorsConfig()
    rules: list[dict] = Field(default_factory=list, description="business rules (see pantau.anomaly.rules)")
    checkpoint_interval: Duration = Field(600.0, description="how often learned state is saved (after a "
                                          "crash the steps since are scored again; events keep their ids)")
    history_points: int = Field(720, ge=10, description="points of the series and band the API returns")

    @model_validator(mode="after")
    def _check(self) -> AnomalyConfig:
        if self.close_threshold > self.threshold:
            raise ValueError("close_threshold must not be above threshold")
        if self.step <= 0 or self.evaluation_interval <= 0:
            raise ValueError("step and evaluation_interval must be positive")
        names = [w.name for w in self.all_watches()]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"watch name {sorted(dupes)[0]!r} is used twice")
        from pantau.anomaly.rules import parse_rules

        parse_rules(self.rules)
        return self

    def all_watches(self) -> list[WatchConfig]:
        return (list(DEFAULT_WATCHES) if self.default_watches else []) + list(self.watches)
