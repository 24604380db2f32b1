"""Real local HTTP servers standing in for Slack, PagerDuty and generic webhook endpoints.

Each validates every payload against the documented schema of the API it imitates, records
it, and answers as the real service would (or with a configured failure status, to test
retries). Validation problems are recorded too, so a test can assert there were none.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

RFC3339 = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"


def _need(cond: bool, problems: list[str], msg: str) -> None:
    if not cond:
        problems.append(msg)


def validate_webhook(body: Any) -> list[str]:
    """Alertmanager's webhook payload, version 4 (prometheus.io/docs/alerting/latest/configuration/#webhook_config)."""
    import re

    p: list[str] = []
    if not isinstance(body, dict):
        return ["body is not an object"]
    for key, typ in (("version", str), ("groupKey", str), ("truncatedAlerts", int), ("status", str),
                     ("receiver", str), ("groupLabels", dict), ("commonLabels", dict),
                     ("commonAnnotations", dict), ("externalURL", str), ("alerts", list)):
        _need(isinstance(body.get(key), typ), p, f"{key} missing or not {typ.__name__}")
    _need(body.get("version") == "4", p, "version != 4")
    _need(body.get("status") in ("firing", "resolved"), p, "bad status")
    for a in body.get("alerts") or []:
        _need(a.get("status") in ("firing", "resolved"), p, "alert status")
        for key in ("labels", "annotations"):
            _need(isinstance(a.get(key), dict), p, f"alert {key}")
        for key in ("startsAt", "endsAt"):
            _need(isinstance(a.get(key), str) and re.match(RFC3339, a[key]) is not None, p, f"alert {key} not RFC 3339")
        _need(isinstance(a.get("generatorURL"), str), p, "alert generatorURL")
        _need(isinstance(a.get("fingerprint"), str) and len(a["fingerprint"]) == 16, p, "alert fingerprint")
    return p


def validate_slack(body: Any) -> list[str]:
    """Slack incoming webhook: text and/or attachments; Block Kit limits (api.slack.com/reference/block-kit)."""
    p: list[str] = []
    if not isinstance(body, dict):
        return ["body is not an object"]
    _need(isinstance(body.get("text"), str) or isinstance(body.get("attachments"), list), p, "text or attachments")
    for att in body.get("attachments") or []:
        _need(isinstance(att.get("color"), str), p, "attachment color")
        _need(isinstance(att.get("fallback"), str), p, "attachment fallback")
        blocks = att.get("blocks") or []
        _need(len(blocks) <= 50, p, "more than 50 blocks")
        for b in blocks:
            t = b.get("type")
            _need(t in ("header", "section", "context", "divider", "actions"), p, f"block type {t}")
            if t == "header":
                _need(b["text"]["type"] == "plain_text" and 0 < len(b["text"]["text"]) <= 150, p, "header text")
            if t == "section":
                _need(b["text"]["type"] in ("mrkdwn", "plain_text") and len(b["text"]["text"]) <= 3000, p,
                      "section text")
            if t == "context":
                _need(0 < len(b["elements"]) <= 10, p, "context elements")
    return p


def validate_pagerduty(body: Any) -> list[str]:
    """PagerDuty Events API v2 (developer.pagerduty.com/docs/events-api-v2/trigger-events)."""
    p: list[str] = []
    if not isinstance(body, dict):
        return ["body is not an object"]
    _need(isinstance(body.get("routing_key"), str) and len(body["routing_key"]) > 0, p, "routing_key")
    action = body.get("event_action")
    _need(action in ("trigger", "acknowledge", "resolve"), p, f"event_action {action}")
    _need(isinstance(body.get("dedup_key"), str) and 0 < len(body["dedup_key"]) <= 255, p, "dedup_key")
    if action == "trigger":
        pl = body.get("payload") or {}
        _need(isinstance(pl.get("summary"), str) and 0 < len(pl["summary"]) <= 1024, p, "payload.summary")
        _need(isinstance(pl.get("source"), str) and pl["source"], p, "payload.source")
        _need(pl.get("severity") in ("critical", "error", "warning", "info"), p, "payload.severity")
        if "custom_details" in pl:
            _need(isinstance(pl["custom_details"], dict), p, "payload.custom_details")
    return p


class Receiver:
    """A threaded HTTP server; `fail_with` set to a status makes it answer that instead."""

    def __init__(self, kind: str = "webhook", hmac_secret: str | None = None) -> None:
        self.kind = kind
        self.hmac_secret = hmac_secret
        self.received: list[dict] = []
        self.problems: list[str] = []
        self.fail_with: int | None = None
        self.attempts = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer._lock:
                    outer.attempts += 1
                    fail = outer.fail_with
                if fail:
                    self.send_response(fail)
                    self.send_header("Content-Length", "20")
                    self.end_headers()
                    self.wfile.write(b"down for maintenance")
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                validator = {"webhook": validate_webhook, "slack": validate_slack,
                             "pagerduty": validate_pagerduty}[outer.kind]
                problems = validator(body)
                if outer.hmac_secret is not None:
                    want = "sha256=" + hmac.new(outer.hmac_secret.encode(), raw, hashlib.sha256).hexdigest()
                    if self.headers.get("X-Pantau-Signature") != want:
                        problems.append("bad or missing HMAC signature")
                with outer._lock:
                    outer.problems += problems
                    if not problems:
                        outer.received.append(body)
                if problems:
                    out = json.dumps(problems).encode()
                    self.send_response(400)
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                    return
                if outer.kind == "pagerduty":
                    self.send_response(202)
                    out = json.dumps({"status": "success", "message": "Event processed",
                                      "dedup_key": body["dedup_key"]}).encode()
                elif outer.kind == "slack":
                    self.send_response(200)
                    out = b"ok"
                else:
                    self.send_response(200)
                    out = b""
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # a burst of group flushes connects at once

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def alerts(self) -> list[tuple[str, str]]:
        """(status, alertname) of every alert in every webhook payload received."""
        with self._lock:
            return [(a["status"], a["labels"].get("alertname", "")) for b in self.received for a in b["alerts"]]
