"""Generic webhook: Alertmanager's webhook JSON, optionally signed with HMAC-SHA256 so the
receiver can tell pantau sent it (header `X-Pantau-Signature: sha256=<hex of body>`)."""

from __future__ import annotations

import hashlib
import hmac

import httpx
import orjson

from pantau.alerting.alert import Alert
from pantau.alerting.amconfig import WebhookConfig
from pantau.alerting.notifiers.base import Notifier, NotifyContext, NotifyError, http_error, webhook_payload

SIGNATURE_HEADER = "X-Pantau-Signature"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookNotifier(Notifier):
    kind = "webhook"

    def __init__(self, cfg: WebhookConfig, client: httpx.AsyncClient) -> None:
        super().__init__(cfg.send_resolved)
        self.cfg = cfg
        self.client = client

    async def notify(self, ctx: NotifyContext, alerts: list[Alert]) -> str:
        truncated = 0
        if self.cfg.max_alerts and len(alerts) > self.cfg.max_alerts:
            truncated = len(alerts) - self.cfg.max_alerts
            alerts = alerts[: self.cfg.max_alerts]
        body = orjson.dumps(webhook_payload(ctx, alerts, truncated))
        headers = {"Content-Type": "application/json", "User-Agent": "pantau"}
        if self.cfg.hmac_secret:
            headers[SIGNATURE_HEADER] = sign(self.cfg.hmac_secret, body)
        try:
            resp = await self.client.post(str(self.cfg.url), content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise NotifyError(f"{type(exc).__name__}: {exc}") from None
        if resp.status_code // 100 != 2:
            raise http_error(resp.status_code, resp.text)
        return f"HTTP {resp.status_code}"
