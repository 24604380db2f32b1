"""Local receivers: the hub's log (console) and a file of JSON lines, for trying rules out
without any external service."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import orjson

from pantau.alerting.alert import Alert
from pantau.alerting.notifiers.base import Notifier, NotifyContext, NotifyError, webhook_payload

log = logging.getLogger("pantau.alerting.console")


class ConsoleNotifier(Notifier):
    kind = "console"

    async def notify(self, ctx: NotifyContext, alerts: list[Alert]) -> str:
        firing = [a for a in alerts if not a.resolved_at(ctx.now)]
        names = ", ".join(sorted({a.name for a in alerts}))
        log.warning("[%s] %s: %d firing, %d resolved (%s)", ctx.receiver,
                    "FIRING" if firing else "RESOLVED", len(firing), len(alerts) - len(firing), names)
        return "logged"


class FileNotifier(Notifier):
    kind = "file"

    def __init__(self, path: str, send_resolved: bool) -> None:
        super().__init__(send_resolved)
        self.path = Path(path)

    async def notify(self, ctx: NotifyContext, alerts: list[Alert]) -> str:
        line = orjson.dumps(webhook_payload(ctx, alerts)) + b"\n"

        def write() -> None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as f:
                f.write(line)

        try:
            await asyncio.to_thread(write)
        except OSError as exc:
            raise NotifyError(f"cannot write {self.path}: {exc.strerror}") from None
        return f"appended to {self.path}"
