"""What every notifier shares: the template data of a notification (Alertmanager's
`template.Data`, plus pantau's signed acknowledge/resolve links) and the error type."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pantau.alerting.alert import Alert, rfc3339
from pantau.alerting.templates import Template


class NotifyError(Exception):
    """A failed send. `retry` False means retrying cannot help (e.g. HTTP 400: bad payload)."""

    def __init__(self, message: str, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


class KV(dict):
    """A label map with the helpers Alertmanager templates call (`.SortedPairs`, `.Names`...)."""

    def SortedPairs(self) -> Pairs:
        return Pairs([{"Name": k, "Value": self[k]} for k in sorted(self)])

    def Names(self) -> list[str]:
        return sorted(self)

    def Values(self) -> list[str]:
        return [self[k] for k in sorted(self)]


class Pairs(list):
    def Names(self) -> list[str]:
        return [p["Name"] for p in self]

    def Values(self) -> list[str]:
        return [p["Value"] for p in self]


class AlertList(list):
    def Firing(self) -> AlertList:
        return AlertList(a for a in self if a["Status"] == "firing")

    def Resolved(self) -> AlertList:
        return AlertList(a for a in self if a["Status"] == "resolved")


@dataclass
class NotifyContext:
    """Everything a notifier needs besides the alerts."""

    receiver: str
    group_key: str
    group_labels: dict[str, str]
    now: float
    external_url: str = ""
    templates: Template = field(default_factory=Template)
    # signed acknowledge / resolve links for an alert fingerprint: (ack_url, resolve_url)
    links: Callable[[str], tuple[str, str]] | None = None
    # "trigger" normally; "acknowledge" when pantau relays an acknowledgement (PagerDuty)
    action: str = "notify"

    def data(self, alerts: list[Alert]) -> dict[str, Any]:
        items = AlertList()
        for a in alerts:
            ack, resolve = self.links(a.fingerprint) if self.links else ("", "")
            items.append({"Status": a.status(self.now), "Labels": KV(a.labels), "Annotations": KV(a.annotations),
                          "StartsAt": rfc3339(a.starts_at), "EndsAt": rfc3339(a.ends_at),
                          "GeneratorURL": a.generator_url, "Fingerprint": a.fingerprint,
                          "AckURL": ack, "ResolveURL": resolve})
        common_labels = KV(_common([a.labels for a in alerts]))
        common_ann = KV(_common([a.annotations for a in alerts]))
        firing = any(x["Status"] == "firing" for x in items)
        return {"Receiver": _receiver_name(self.receiver), "Status": "firing" if firing else "resolved",
                "Alerts": items, "GroupLabels": KV(self.group_labels), "CommonLabels": common_labels,
                "CommonAnnotations": common_ann, "ExternalURL": self.external_url, "GroupKey": self.group_key}

    def render(self, text: str, data: dict[str, Any]) -> str:
        return self.templates.render(text, data)


def _receiver_name(name: str) -> str:
    # Alertmanager strips characters that are not safe in a URL from the receiver name here
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name) if name else name


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    out = dict(maps[0])
    for m in maps[1:]:
        for k in list(out):
            if m.get(k) != out[k]:
                del out[k]
    return out


def webhook_payload(ctx: NotifyContext, alerts: list[Alert], truncated: int = 0) -> dict[str, Any]:
    """Alertmanager's webhook JSON (version 4)."""
    firing = any(not a.resolved_at(ctx.now) for a in alerts)
    return {"receiver": _receiver_name(ctx.receiver), "status": "firing" if firing else "resolved",
            "alerts": [a.webhook_json(ctx.now) for a in alerts], "groupLabels": ctx.group_labels,
            "commonLabels": _common([a.labels for a in alerts]),
            "commonAnnotations": _common([a.annotations for a in alerts]),
            "externalURL": ctx.external_url, "version": "4", "groupKey": ctx.group_key,
            "truncatedAlerts": truncated}


class Notifier(ABC):
    """One integration of a receiver (one entry of e.g. `slack_configs`)."""

    kind: str = ""

    def __init__(self, send_resolved: bool) -> None:
        self.send_resolved = send_resolved

    @abstractmethod
    async def notify(self, ctx: NotifyContext, alerts: list[Alert]) -> str:
        """Send; return a short description of the result (for the history). Raise NotifyError."""

    async def close(self) -> None:  # noqa: B027 (optional hook)
        pass


def http_error(status: int, body: str) -> NotifyError:
    """Retry on 5xx and 429, as Alertmanager does; 4xx means the payload was refused."""
    retry = status >= 500 or status == 429
    return NotifyError(f"HTTP {status}: {body[:200]}", retry=retry)
