"""Notifiers against real peers: an SMTP server (aiosmtpd, STARTTLS and AUTH) receives the
e-mail; local HTTP servers standing in for Slack and PagerDuty validate every payload against
the documented schema. The acknowledge link inside the Slack message works, and PagerDuty
hears trigger, acknowledge and resolve for one dedup_key."""

from __future__ import annotations

import email
import re
import shutil
import ssl
import subprocess
from email import policy
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.alerting_receivers import Receiver
from tests.conftest import free_port, wait_until

pytestmark = pytest.mark.e2e


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


def _certificate(tmp_path: Path) -> ssl.SSLContext:
    if shutil.which("openssl") is None:
        pytest.skip("needs `openssl` (Debian package: openssl)")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


@pytest.fixture
def smtp(tmp_path: Path):
    box = _Mailbox()

    def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"pantau" and auth_data.password == b"pw-9"
        if ok:
            box.logins.append(auth_data.login.decode())
        return AuthResult(success=ok)

    port = free_port()
    ctl = Controller(box, hostname="127.0.0.1", port=port, tls_context=_certificate(tmp_path),
                     require_starttls=True, authenticator=authenticator, auth_require_tls=True)
    ctl.start()
    yield box, port
    ctl.stop()


AM = """
global:
  smtp_smarthost: 127.0.0.1:{smtp_port}
  smtp_from: pantau@example.org
  smtp_auth_username: pantau
  smtp_auth_password: ${{PANTAU_TEST_SMTP_PASSWORD}}
  slack_api_url_file: {slack_file}
route:
  receiver: everyone
  group_by: [alertname, service]
  group_wait: 200ms
  group_interval: 1s
receivers:
- name: everyone
  email_configs:
  - to: oncall@example.org
    send_resolved: true
    tls_config: {{insecure_skip_verify: true}}
    headers: {{Subject: '[pantau] {{{{ .Status | toUpper }}}} {{{{ .CommonLabels.alertname }}}}'}}
  slack_configs:
  - channel: '#alerts'
  pagerduty_configs:
  - routing_key_file: {pd_key}
    url: {pd_url}
    severity: '{{{{ .CommonLabels.severity }}}}'
"""


def test_email_slack_pagerduty_and_signed_ack_link(hub_factory, tmp_path: Path, smtp, monkeypatch) -> None:
    box, smtp_port = smtp
    slack, pd = Receiver("slack"), Receiver("pagerduty")
    try:
        (tmp_path / "slack_url").write_text(slack.url + "\n")
        (tmp_path / "pd_key").write_text("R0UTINGKEY\n")
        (tmp_path / "am.yml").write_text(AM.format(smtp_port=smtp_port, slack_file=tmp_path / "slack_url",
                                                   pd_key=tmp_path / "pd_key", pd_url=pd.url))
        monkeypatch.setenv("PANTAU_TEST_SMTP_PASSWORD", "pw-9")  # inherited by the hub process
        hub = hub_factory(f"alertmanager_config: {tmp_path}/am.yml\n").start()
        r = httpx.post(f"{hub.api}/api/v2/alerts", json=[{
            "labels": {"alertname": "PaymentsDown", "service": "pay", "severity": "critical"},
            "annotations": {"summary": "payments fail", "description": "5xx > 50%"}}])
        assert r.status_code == 200

        assert wait_until(lambda: box.messages and slack.received and pd.received, timeout=20), hub.log()
        # e-mail: STARTTLS + AUTH, subject from the template, text and HTML parts
        msg = box.messages[0]
        assert box.logins == ["pantau"]
        assert msg["Subject"] == "[pantau] FIRING PaymentsDown"
        assert msg["To"] == "oncall@example.org" and msg["From"] == "pantau@example.org"
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        assert "summary = payments fail" in text and "Acknowledge: http" in text
        assert "<b>PaymentsDown</b>" in html and "Acknowledge</a>" in html

        # Slack: Block Kit payload, red for critical, links to acknowledge/resolve
        s = slack.received[0]
        assert s["channel"] == "#alerts" and s["attachments"][0]["color"] == "danger"
        assert s["attachments"][0]["blocks"][0]["text"]["text"].startswith("[FIRING:1] PaymentsDown pay")
        ack_url = re.search(r"<(http[^|>]+/ack\?[^|>]+)\|Acknowledge>", s["attachments"][0]["text"]).group(1)

        # PagerDuty: a trigger with the group's dedup_key
        p = pd.received[0]
        assert p["event_action"] == "trigger" and p["routing_key"] == "R0UTINGKEY"
        assert p["payload"]["severity"] == "critical" and "PaymentsDown" in p["payload"]["summary"]

        # a tampered link is refused; the real one acknowledges, and PagerDuty hears it
        assert httpx.get(ack_url.replace("sig=", "sig=0")).status_code == 403
        page = httpx.get(ack_url)
        assert page.status_code == 200 and "acknowledged" in page.text
        assert wait_until(lambda: len(pd.received) >= 2, timeout=10)
        assert pd.received[1]["event_action"] == "acknowledge"
        assert pd.received[1]["dedup_key"] == p["dedup_key"]

        # resolved: e-mail, green Slack message, PagerDuty resolve
        fp = hub.get("/api/v2/alerts").json()[0]["fingerprint"]
        assert httpx.post(f"{hub.api}/api/pantau/alerts/{fp}/resolve").status_code == 200
        assert wait_until(lambda: len(pd.received) >= 3 and len(slack.received) >= 2 and len(box.messages) >= 2,
                          timeout=10)
        assert pd.received[2]["event_action"] == "resolve" and pd.received[2]["dedup_key"] == p["dedup_key"]
        assert slack.received[1]["attachments"][0]["color"] == "good"
        assert box.messages[1]["Subject"] == "[pantau] RESOLVED PaymentsDown"
        assert slack.problems == [] and pd.problems == []
        who = hub.get("/api/pantau/notifications", integration="email").json()
        assert who and all(n["labels"]["receiver"] == "everyone" for n in who)
    finally:
        slack.close()
        pd.close()
