"""Sending email over SMTP (stdlib smtplib) for rota reminders and alerts.

`CLIPPER_SMTP_URL` is admin configuration: its host is trusted as given and is *not* vetted
like flag URLs (no private-address rule, no guard proxy). `smtp://` upgrades with STARTTLS
whenever the server offers it (certificate and host name verified); `smtps://` is TLS from the
first byte. Credentials in the URL are sent only over TLS.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit


class MailError(Exception):
    """An email could not be sent; the message says why (never the password)."""


def _parse(url: str) -> tuple[str, str, int, str, str]:
    parts = urlsplit((url or "").strip())
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps") or not parts.hostname:
        raise MailError("CLIPPER_SMTP_URL must look like smtp://user:pass@host:587 or "
                        "smtps://host:465.")
    try:
        port = parts.port or (465 if scheme == "smtps" else 25)
    except ValueError:
        raise MailError("CLIPPER_SMTP_URL has a bad port.") from None
    return (scheme, parts.hostname, port, unquote(parts.username or ""),
            unquote(parts.password or ""))


def send_mail(url: str, sender: str, to: list[str], subject: str, body: str, *,
              timeout: float = 10.0, context: ssl.SSLContext | None = None) -> None:
    """Send one plain-text email to `to`; MailError with the reason when it fails."""
    scheme, host, port, user, password = _parse(url)
    if not to:
        return
    context = context or ssl.create_default_context()
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, ", ".join(to), subject
    msg.set_content(body)
    where = f"{host}:{port}"
    try:
        if scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(host, port, timeout=timeout)
        with client:
            client.ehlo()
            tls = scheme == "smtps"
            if not tls and client.has_extn("starttls"):
                client.starttls(context=context)
                client.ehlo()
                tls = True
            if user:
                if not tls:
                    raise MailError(f"SMTP server {where} offers no STARTTLS: not sending the "
                                    "password in the clear.")
                client.login(user, password)
            client.send_message(msg)
    except MailError:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise MailError(f"SMTP server {where} refused the login ({exc.smtp_code}).") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise MailError(f"SMTP server {where} refused the recipients "
                        f"{sorted(exc.recipients)}.") from None
    except ssl.SSLError as exc:
        raise MailError(f"TLS with SMTP server {where} failed: {exc}.") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise MailError(f"Sending mail through {where} failed: {exc}.") from None
