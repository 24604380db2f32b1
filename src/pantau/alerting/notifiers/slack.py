"""Slack incoming webhooks: one attachment coloured by severity (or resolution) carrying the
templated title and text, plus Block Kit blocks for clients that render them."""

from __future__ import annotations

import httpx

from pantau.alerting.alert import Alert
from pantau.alerting.amconfig import SlackConfig
from pantau.alerting.notifiers.base import Notifier, NotifyContext, NotifyError, http_error

COLORS = {"critical": "danger", "error": "danger", "warning": "warning", "info": "#439FE0"}


def severity_color(status: str, labels: dict[str, str]) -> str:
    if status == "resolved":
        return "good"
    return COLORS.get(labels.get("severity", "").lower(), "danger")


class SlackNotifier(Notifier):
    kind = "slack"

    def __init__(self, cfg: SlackConfig, client: httpx.AsyncClient) -> None:
        super().__init__(cfg.send_resolved)
        self.cfg = cfg
        self.client = client

    def payload(self, ctx: NotifyContext, alerts: list[Alert]) -> dict:
        data = ctx.data(alerts)
        r = lambda t: ctx.render(t, data)  # noqa: E731
        title, text = r(self.cfg.title).strip(), r(self.cfg.text).strip()
        color = r(self.cfg.color) if self.cfg.color else severity_color(data["Status"], data["CommonLabels"])
        link = r(self.cfg.title_link)
        blocks: list[dict] = [{"type": "header", "text": {"type": "plain_text", "text": title[:150] or " "}}]
        if text:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
        if link:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{link}|Open in pantau>"}]})
        attachment = {"color": color, "title": title, "title_link": link, "text": text,
                      "fallback": r(self.cfg.fallback), "mrkdwn_in": ["fallback", "pretext", "text"],
                      "blocks": blocks}
        pretext = r(self.cfg.pretext)
        if pretext:
            attachment["pretext"] = pretext
        if self.cfg.fields:
            attachment["fields"] = [{"title": r(f.title), "value": r(f.value), "short": bool(f.short)}
                                    for f in self.cfg.fields]
        body: dict = {"text": title, "attachments": [attachment], "username": r(self.cfg.username)}
        if self.cfg.channel:
            body["channel"] = r(self.cfg.channel)
        if self.cfg.icon_emoji:
            body["icon_emoji"] = r(self.cfg.icon_emoji)
        if self.cfg.icon_url:
            body["icon_url"] = r(self.cfg.icon_url)
        return body

    async def notify(self, ctx: NotifyContext, alerts: list[Alert]) -> str:
        try:
            resp = await self.client.post(str(self.cfg.api_url), json=self.payload(ctx, alerts))
        except httpx.HTTPError as exc:
            raise NotifyError(f"{type(exc).__name__}: {exc}") from None
        if resp.status_code // 100 != 2:
            raise http_error(resp.status_code, resp.text)
        return f"HTTP {resp.status_code}"
