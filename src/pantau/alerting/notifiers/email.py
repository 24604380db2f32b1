"""E-mail over SMTP: STARTTLS (port 587 style, `require_tls`) or implicit TLS (port 465),
optional AUTH, a multipart/alternative message with plain-text and HTML parts from templates.

smtplib is blocking, so each send runs in a worker thread; a notification is a handful of
messages a minute, not a throughput path.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from pantau.alerting.alert import Alert
from pantau.alerting.amconfig import EmailConfig
from pantau.alerting.notifiers.base import Notifier, NotifyContext, NotifyError

DEFAULT_SUBJECT = '{{ template "email.default.subject" . }}'


class EmailNotifier(Notifier):
    kind = "email"

    def __init__(self, cfg: EmailConfig, timeout: float = 30.0) -> None:
        super().__init__(cfg.send_resolved)
        self.cfg = cfg
        self.timeout = timeout

    def build(self, ctx: NotifyContext, alerts: list[Alert]) -> EmailMessage:
        data = ctx.data(alerts)
        msg = EmailMessage()
        headers = {"Subject": DEFAULT_SUBJECT, "To": self.cfg.to, "From": self.cfg.from_ or ""}
        headers.update(self.cfg.headers)
        for name, value in headers.items():
            msg[name] = ctx.render(value, data).strip()
        msg["Date"] = formatdate(ctx.now)
        msg["Message-Id"] = make_msgid(domain="pantau")
        msg.set_content(ctx.render(self.cfg.text, data))
        if self.cfg.html:
            msg.add_alternative(ctx.render(self.cfg.html, data), subtype="html")
        return msg

    def _send(self, msg: EmailMessage) -> str:
        host, _, port_text = str(self.cfg.smarthost).rpartition(":")
        port = int(port_text or 25)
        tls_cfg = self.cfg.tls_config or {}
        context = ssl.create_default_context()
        if tls_cfg.get("insecure_skip_verify"):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if tls_cfg.get("ca_file"):
            context.load_verify_locations(tls_cfg["ca_file"])
        try:
            if port == 465:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, local_hostname=self.cfg.hello,
                                                      timeout=self.timeout, context=context)
            else:
                smtp = smtplib.SMTP(host, port, local_hostname=self.cfg.hello, timeout=self.timeout)
            with smtp:
                smtp.ehlo()
                if port != 465:
                    if smtp.has_extn("starttls"):
                        smtp.starttls(context=context)
                        smtp.ehlo()
                    elif self.cfg.require_tls:
                        raise NotifyError(f"'require_tls' is true (default) but {host}:{port} does not "
                                          "advertise the STARTTLS extension", retry=False)
                if self.cfg.auth_username:
                    smtp.login(self.cfg.auth_username, self.cfg.auth_password or "")
                refused = smtp.send_message(msg)
        except smtplib.SMTPAuthenticationError as exc:
            raise NotifyError(f"SMTP authentication failed: {exc.smtp_code} {exc.smtp_error!r}", retry=False) from None
        except smtplib.SMTPResponseException as exc:
            raise NotifyError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", retry=exc.smtp_code < 500) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise NotifyError(f"SMTP {host}:{port}: {exc}") from None
        if refused:
            raise NotifyError(f"recipients refused: {sorted(refused)}", retry=False)
        return f"sent to {self.cfg.to}"

    async def notify(self, ctx: NotifyContext, alerts: list[Alert]) -> str:
        msg = self.build(ctx, alerts)
        return await asyncio.to_thread(self._send, msg)
