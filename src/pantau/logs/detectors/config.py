"""Settings of the built-in log detectors. Every key has a default; unknown keys are errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBurstConfig(_Strict):
    enabled: bool = True
    window_seconds: float = Field(60, gt=0, description="errors are counted over this sliding window")
    min_count: int = Field(20, ge=1, description="a burst needs at least this many errors in the window")
    factor: float = Field(5.0, ge=1, description="... and this many times the service's usual errors per window")
    baseline_windows: int = Field(60, ge=1, description="windows of history the usual rate is taken over")
    warmup_windows: int = Field(5, ge=0, description="no bursts until a service has this much history")
    min_severity: int = Field(17, ge=1, le=24, description="OpenTelemetry severity number (17 = ERROR)")


class BruteForceConfig(_Strict):
    enabled: bool = True
    window_seconds: float = Field(300, gt=0)
    threshold: int = Field(10, ge=2, description="failed logins per actor or per source IP in the window")


class InjectionConfig(_Strict):
    enabled: bool = True
    sql_injection: bool = True
    path_traversal: bool = True
    window_seconds: float = Field(300, gt=0, description="hits from one source are reported as one event per window")


class PrivilegeConfig(_Strict):
    enabled: bool = True


class SilenceConfig(_Strict):
    enabled: bool = True
    silent_after_seconds: float = Field(300, gt=0, description="no log line for this long is silence")
    min_lines_per_minute: float = Field(1.0, gt=0, description="only services that usually log at least this much")
    history_minutes: int = Field(30, ge=1, description="the usual volume is measured over this many minutes")


class DetectorsConfig(_Strict):
    """`logs.detectors` in pantau.yaml."""

    error_burst: ErrorBurstConfig = ErrorBurstConfig()
    brute_force: BruteForceConfig = BruteForceConfig()
    injection: InjectionConfig = InjectionConfig()
    privilege: PrivilegeConfig = PrivilegeConfig()
    silence: SilenceConfig = SilenceConfig()
    samples: int = Field(5, ge=1, le=100, description="sample records kept as evidence per event")
