"""PagerDuty Events API v2: `trigger` while the group fires, `resolve` when it is resolved,
`acknowledge` when someone acknowledges in pantau, all with one `dedup_key` per group (the
SHA-256 of the group key, as Alertmanager computes it) so PagerDuty keeps one incident."""

from __future__ import annotations

import hashlib

import httpx

from pantau.alerting.alert import Alert
from pantau.alerting.amconfig import PagerDutyConfig
from pantau.alerting.notifiers.base import Notifier, NotifyContext, NotifyError, http_error

SEVERITIES = ("critical", "error", "warning", "info")


def dedup_key(group_key: str) -> str:
    return hashlib.sha256(group_key.encode()).hexdigest()


class PagerDutyNotifier(Notifier):
    kind = "pagerduty"

    def __init__(self, cfg: PagerDutyConfig, client: httpx.AsyncClient) -> None:
        super().__init__(cfg.send_resolved)
        self.cfg = cfg
        self.client = client

    def payload(self, ctx: NotifyContext, alerts: list[Alert]) -> dict:
        data = ctx.data(alerts)
        r = lambda t: ctx.render(t, data)  # noqa: E731
        if ctx.action == "acknowledge":
            action = "acknowledge"
        else:
            action = "trigger" if data["Status"] == "firing" else "resolve"
        body: dict = {"routing_key": self.cfg.routing_key or self.cfg.service_key,
                      "event_action": action, "dedup_key": dedup_key(ctx.group_key)}
        if action != "trigger":
            return body
        severity = r(self.cfg.severity).strip().lower()
        if severity not in SEVERITIES:
            severity = "error"
        details = {k: r(v) for k, v in self.cfg.details.items()} or {
            "firing": r('{{ template "pagerduty.default.instances" .Alerts.Firing }}'),
            "num_firing": str(len(data["Alerts"].Firing())),
            "num_resolved": str(len(data["Alerts"].Resolved()))}
        payload = {"summary": r(self.cfg.description).strip()[:1024] or "pantau alert",
                   "source": r(self.cfg.source or self.cfg.client).strip() or "pantau",
                   "severity": severity, "custom_details": details}
        for key, tmpl in (("component", self.cfg.component), ("group", self.cfg.group),
                          ("class", self.cfg.class_)):
            if tmpl:
                payload[key] = r(tmpl)
        body["payload"] = payload
        body["client"] = r(self.cfg.client)
        body["client_url"] = r(self.cfg.client_url)
        return body

    async def notify(self, ctx: NotifyContext, alerts: list[Alert]) -> str:
        try:
            resp = await self.client.post(str(self.cfg.url), json=self.payload(ctx, alerts))
        except httpx.HTTPError as exc:
            raise NotifyError(f"{type(exc).__name__}: {exc}") from None
        if resp.status_code // 100 != 2:
            raise http_error(resp.status_code, resp.text)
        return f"HTTP {resp.status_code}"
