"""E-mail to the owner through SMTP (smtplib in a worker thread): STARTTLS, SSL or plain,
with a login when a user is set — Gmail works with an app password."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

import trio

from sales.settings import Settings
from store.owner_notifications import Notification

SMTP_TIMEOUT = 15.0


class MailError(Exception):
    def __init__(self, reason: str, *, transient: bool) -> None:
        self.reason = reason
        self.transient = transient
        super().__init__(reason)


def compose(settings: Settings, to: str, item: Notification) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = to
    message["Subject"] = item.subject
    message["Message-ID"] = make_msgid(idstring=f"ia-comercial-{item.id}")
    if item.urgent:
        message["X-Priority"] = "1 (Highest)"
        message["Importance"] = "high"
    message.set_content(item.body_text)
    if item.body_html:
        message.add_alternative(item.body_html, subtype="html")
    return message


class Mailer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, message: EmailMessage) -> None:
        # Not abandoned on cancel: a send under way ends (bounded by SMTP_TIMEOUT) and its
        # outcome is recorded.
        await trio.to_thread.run_sync(self._send, message)

    def _send(self, message: EmailMessage) -> None:
        s = self.settings
        assert s.smtp_host is not None
        try:
            if s.smtp_security == "ssl":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.smtp_host, s.smtp_port, timeout=SMTP_TIMEOUT, context=_tls()
                )
            else:
                client = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=SMTP_TIMEOUT)
            with client:
                if s.smtp_security == "starttls":
                    client.starttls(context=_tls())
                if s.smtp_user and s.smtp_password:
                    client.login(s.smtp_user, s.smtp_password)
                client.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            raise MailError(
                f"SMTP rechazó el usuario o la clave ({exc.smtp_code}); revisa SMTP_USER y"
                " SMTP_PASSWORD (en Gmail, una clave de aplicación)",
                transient=False,
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _msg in exc.recipients.values()})
            raise MailError(
                f"SMTP rechazó el destinatario ({', '.join(map(str, codes))})",
                transient=all(400 <= c < 500 for c in codes),
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise MailError(
                f"SMTP respondió {exc.smtp_code}", transient=400 <= exc.smtp_code < 500
            ) from None
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            raise MailError(f"SMTP no disponible: {type(exc).__name__}", transient=True) from None


def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()
