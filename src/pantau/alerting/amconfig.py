"""The Alertmanager configuration file, read as Alertmanager reads it.

Teams move from Alertmanager by pointing `alertmanager_config:` at the file they have: the
global defaults, `route` tree, `receivers`, `inhibit_rules`, `time_intervals`, `templates`.
Receivers of kinds pantau does not implement are kept and reported (they stay silent) rather
than failing the whole file. pantau additions: `console_configs` and `file_configs`
receivers, and `hmac_secret`/`hmac_secret_file` on webhooks. Secrets may be `*_file` (as in
Alertmanager) or `${ENV_VAR}` references, expanded when the file is read.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pantau.alerting import matchers as m
from pantau.alerting.timeintervals import NamedTimeInterval
from pantau.config import Duration
from pantau.store.base import Matcher

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class AMConfigError(ValueError):
    pass


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _Lenient(BaseModel):
    # notifier sections carry many options (http_config, tls_config, ...) pantau does not use
    model_config = ConfigDict(extra="allow", populate_by_name=True)


def _secret(value: str | None, path: str | None) -> str | None:
    if value:
        return value
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from None
    return None


class GlobalConfig(_Model):
    resolve_timeout: Duration = 300.0
    smtp_from: str | None = None
    smtp_hello: str = "localhost"
    smtp_smarthost: str | None = None
    smtp_auth_username: str | None = None
    smtp_auth_password: str | None = None
    smtp_auth_password_file: str | None = None
    smtp_auth_identity: str | None = None
    smtp_auth_secret: str | None = None
    smtp_require_tls: bool = True
    slack_api_url: str | None = None
    slack_api_url_file: str | None = None
    pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"
    http_config: dict[str, Any] | None = None
    # accepted, unused: receivers pantau does not implement
    opsgenie_api_url: str | None = None
    opsgenie_api_key: str | None = None
    opsgenie_api_key_file: str | None = None
    wechat_api_url: str | None = None
    wechat_api_secret: str | None = None
    wechat_api_corp_id: str | None = None
    victorops_api_url: str | None = None
    victorops_api_key: str | None = None
    victorops_api_key_file: str | None = None
    telegram_api_url: str | None = None
    webex_api_url: str | None = None


class EmailConfig(_Lenient):
    send_resolved: bool = False
    to: str
    from_: str | None = Field(None, alias="from")
    smarthost: str | None = None
    hello: str | None = None
    auth_username: str | None = None
    auth_password: str | None = None
    auth_password_file: str | None = None
    auth_identity: str | None = None
    require_tls: bool | None = None
    tls_config: dict[str, Any] = {}
    html: str = '{{ template "email.default.html" . }}'
    text: str = '{{ template "email.default.text" . }}'
    headers: dict[str, str] = {}


class SlackField(_Lenient):
    title: str
    value: str
    short: bool | None = None


class SlackConfig(_Lenient):
    send_resolved: bool = True
    api_url: str | None = None
    api_url_file: str | None = None
    channel: str | None = None
    username: str = '{{ template "slack.default.username" . }}'
    color: str | None = None  # None: pantau colours by severity (danger/warning/good)
    title: str = '{{ template "slack.default.title" . }}'
    title_link: str = '{{ template "slack.default.titlelink" . }}'
    pretext: str = '{{ template "slack.default.pretext" . }}'
    text: str = '{{ template "slack.default.text" . }}'
    fallback: str = '{{ template "slack.default.fallback" . }}'
    icon_emoji: str | None = None
    icon_url: str | None = None
    fields: list[SlackField] = []


class PagerDutyConfig(_Lenient):
    send_resolved: bool = True
    routing_key: str | None = None
    routing_key_file: str | None = None
    service_key: str | None = None
    service_key_file: str | None = None
    url: str | None = None
    client: str = '{{ template "pagerduty.default.client" . }}'
    client_url: str = '{{ template "pagerduty.default.clientURL" . }}'
    description: str = '{{ template "pagerduty.default.description" .}}'
    severity: str = "error"
    details: dict[str, str] = {}
    component: str | None = None
    group: str | None = None
    class_: str | None = Field(None, alias="class")
    source: str | None = None


class WebhookConfig(_Lenient):
    send_resolved: bool = True
    url: str | None = None
    url_file: str | None = None
    max_alerts: int = 0
    hmac_secret: str | None = None  # pantau: sign the body (X-Pantau-Signature: sha256=<hex>)
    hmac_secret_file: str | None = None


class ConsoleConfig(_Model):
    """pantau: print notifications to the hub's log (stderr), for local use."""
    send_resolved: bool = True


class FileConfig(_Model):
    """pantau: append each notification (webhook JSON, one line) to a file."""
    send_resolved: bool = True
    path: str


class Receiver(_Lenient):
    name: str
    email_configs: list[EmailConfig] = []
    slack_configs: list[SlackConfig] = []
    pagerduty_configs: list[PagerDutyConfig] = []
    webhook_configs: list[WebhookConfig] = []
    console_configs: list[ConsoleConfig] = []
    file_configs: list[FileConfig] = []

    def unsupported(self) -> list[str]:
        return sorted(k for k in (self.model_extra or {}) if k.endswith("_configs"))


class RouteConfig(_Model):
    receiver: str | None = None
    group_by: list[str] | None = None
    continue_: bool = Field(False, alias="continue")
    matchers: list[str] = []
    match: dict[str, str] = {}
    match_re: dict[str, str] = {}
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    mute_time_intervals: list[str] = []
    active_time_intervals: list[str] = []
    routes: list[RouteConfig] = []

    @field_validator("matchers")
    @classmethod
    def _matchers(cls, v: list[str]) -> list[str]:
        for text in v:
            m.parse_matchers(text)
        return v


class InhibitRule(_Model):
    source_matchers: list[str] = []
    target_matchers: list[str] = []
    source_match: dict[str, str] = {}
    source_match_re: dict[str, str] = {}
    target_match: dict[str, str] = {}
    target_match_re: dict[str, str] = {}
    equal: list[str] = []

    def sources(self) -> list[Matcher]:
        return m.from_config(self.source_matchers, self.source_match, self.source_match_re)

    def targets(self) -> list[Matcher]:
        return m.from_config(self.target_matchers, self.target_match, self.target_match_re)


class AlertmanagerConfig(_Model):
    global_: GlobalConfig = Field(GlobalConfig(), alias="global")
    route: RouteConfig | None = None
    receivers: list[Receiver] = []
    inhibit_rules: list[InhibitRule] = []
    time_intervals: list[NamedTimeInterval] = []
    mute_time_intervals: list[NamedTimeInterval] = []
    templates: list[str] = []
    original: str = ""
    base_dir: str = "."

    @model_validator(mode="after")
    def _check(self) -> AlertmanagerConfig:
        names = [r.name for r in self.receivers]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"notification config name {sorted(dup)[0]!r} is not unique")
        if self.route is None:
            raise ValueError("no routes provided")
        if not self.route.receiver:
            raise ValueError("root route must specify a default receiver")
        if self.route.matchers or self.route.match or self.route.match_re:
            raise ValueError("root route must not have any matchers")
        if self.route.mute_time_intervals or self.route.active_time_intervals:
            raise ValueError("root route must not have any mute or active time intervals")
        intervals = {t.name for t in self.time_intervals + self.mute_time_intervals}

        def walk(r: RouteConfig) -> None:
            if r.receiver and r.receiver not in names:
                raise ValueError(f'undefined receiver "{r.receiver}" used in route')
            for ti in r.mute_time_intervals + r.active_time_intervals:
                if ti not in intervals:
                    raise ValueError(f'undefined time interval "{ti}" used in route')
            for child in r.routes:
                walk(child)

        walk(self.route)
        return self

    def receiver(self, name: str) -> Receiver:
        return next(r for r in self.receivers if r.name == name)

    def template_files(self) -> list[Path]:
        out: list[Path] = []
        for pattern in self.templates:
            p = pattern if os.path.isabs(pattern) else os.path.join(self.base_dir, pattern)
            out += [Path(x) for x in sorted(glob.glob(p))]
        return out

    def resolve_secrets(self) -> None:
        """Fill secrets given as files and the global defaults into each notifier config,
        as Alertmanager does when it loads the file."""
        g = self.global_
        for r in self.receivers:
            for e in r.email_configs:
                e.from_ = e.from_ or g.smtp_from
                e.smarthost = e.smarthost or g.smtp_smarthost
                e.hello = e.hello or g.smtp_hello
                e.auth_username = e.auth_username or g.smtp_auth_username
                e.auth_password = _secret(e.auth_password, e.auth_password_file) or _secret(
                    g.smtp_auth_password, g.smtp_auth_password_file)
                e.auth_identity = e.auth_identity or g.smtp_auth_identity
                if e.require_tls is None:
                    e.require_tls = g.smtp_require_tls
                if not e.smarthost:
                    raise ValueError(f"receiver {r.name!r}: no global SMTP smarthost set")
                if not e.from_:
                    raise ValueError(f"receiver {r.name!r}: no global SMTP from set")
            for s in r.slack_configs:
                s.api_url = _secret(s.api_url, s.api_url_file) or _secret(g.slack_api_url, g.slack_api_url_file)
                if not s.api_url:
                    raise ValueError(f"receiver {r.name!r}: no global Slack API URL set")
            for p in r.pagerduty_configs:
                p.routing_key = _secret(p.routing_key, p.routing_key_file)
                p.service_key = _secret(p.service_key, p.service_key_file)
                if not p.routing_key and not p.service_key:
                    raise ValueError(f"receiver {r.name!r}: missing service or routing key in PagerDuty config")
                p.url = p.url or g.pagerduty_url
            for w in r.webhook_configs:
                w.url = _secret(w.url, w.url_file)
                w.hmac_secret = _secret(w.hmac_secret, w.hmac_secret_file)
                if not w.url:
                    raise ValueError(f"receiver {r.name!r}: one of url or url_file must be configured")


def load(path: str | Path) -> AlertmanagerConfig:
    """Read and validate an Alertmanager configuration file; AMConfigError names the file
    and, for YAML errors, the line."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise AMConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return loads(text, str(path))


def loads(text: str, name: str = "<alertmanager config>") -> AlertmanagerConfig:
    expanded = _ENV.sub(lambda mm: os.environ.get(mm.group(1), ""), text)
    try:
        doc = yaml.safe_load(expanded) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise AMConfigError(f"{name}{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(doc, dict):
        raise AMConfigError(f"{name}: expected a mapping")
    try:
        cfg = AlertmanagerConfig.model_validate(doc)
        cfg.original = text
        cfg.base_dir = str(Path(name).parent)
        cfg.resolve_secrets()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise AMConfigError(f"{name}: {problems}") from None
    except ValueError as exc:
        raise AMConfigError(f"{name}: {exc}") from None
    return cfg


def default() -> AlertmanagerConfig:
    """Without an Alertmanager file: every alert to one receiver that logs to the console."""
    return loads("route: {receiver: console, group_by: [alertname]}\n"
                 "receivers: [{name: console, console_configs: [{}]}]\n")
