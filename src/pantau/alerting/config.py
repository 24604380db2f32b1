"""The `alerting:` section of pantau.yaml (rule files and the Alertmanager file are named
at the top level, `rule_files:` and `alertmanager_config:`, as in prometheus.yml)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pantau.alerting.durations import Duration
from pantau.alerting.escalation import EscalationPolicy


class AlertingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    evaluation_interval: Duration = Field(60.0, description="rule groups without their own interval")
    external_url: str | None = Field(None, description="pantau's URL as users reach it (links in notifications)")
    external_labels: dict[str, str] = {}
    resend_delay: Duration = Field(60.0, description="how often rules re-send firing alerts (Prometheus: 1m)")
    outage_tolerance: Duration = Field(3600.0, description="restore `for` state after a restart shorter than this")
    signing_key: str | None = Field(None, description="HMAC key of acknowledge/resolve links "
                                    "(default: generated once and kept in the store)")
    signing_key_file: str | None = None
    link_ttl: Duration = Field(7 * 86400.0, description="how long a signed link in a notification works")
    flap_window: Duration = 300.0
    flap_threshold: int = Field(4, ge=2, description="changes within flap_window that make an alert flapping")
    reload_interval: Duration = Field(1.0, description="how often rule and Alertmanager files are checked for changes")
    retry_initial: Duration = 0.5
    retry_max: Duration = 60.0
    escalations: list[EscalationPolicy] = []

    @field_validator("escalations")
    @classmethod
    def _unique(cls, v: list[EscalationPolicy]) -> list[EscalationPolicy]:
        names = [p.name for p in v]
        if len(set(names)) != len(names):
            raise ValueError("escalation policy names must be unique")
        return v
