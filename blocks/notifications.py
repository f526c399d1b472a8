"""E-mail over SMTP as a Prefect notification block (Prefect's own ``SendgridEmail`` needs a SendGrid account).

It is an Apprise block like ``SlackWebhook``: ``notify(body, subject)`` sends through Apprise's e-mail plugin.
"""

from __future__ import annotations

from typing import Literal

from prefect.blocks.notifications import AbstractAppriseNotificationBlock
from pydantic import Field, SecretStr

_DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "insecure": 25}


class SmtpEmail(AbstractAppriseNotificationBlock):
    """Plain-text e-mail through an SMTP server; the password stays secret."""

    _block_type_name = "Testpilot SMTP Email"
    smtp_host: str = Field(description="SMTP server name or address.")
    smtp_port: int | None = Field(None, ge=1, le=65535,
                                  description="Default: 587 for starttls, 465 for ssl, 25 for insecure.")
    security: Literal["starttls", "ssl", "insecure"] = Field(
        "starttls", description="STARTTLS, implicit TLS, or none (only for a relay on a trusted network).")
    username: str = Field("", description="Login name; empty: send without logging in.")
    password: SecretStr | None = Field(None, description="Login password.")
    from_email: str = Field(description="Sender address.")
    to_emails: list[str] = Field(min_length=1, description="Recipient addresses.")

    def block_initialization(self) -> None:
        from apprise import Apprise, AppriseAsset
        from apprise.plugins.email import NotifyEmail

        # Added as an instance, not a mailto:// URL, so Apprise cannot swap the host for a known provider's.
        email = NotifyEmail(
            host=self.smtp_host, port=self.smtp_port or _DEFAULT_PORTS[self.security], smtp_host=self.smtp_host,
            user=self.username or None, password=self.password.get_secret_value() if self.password else None,
            secure=self.security != "insecure", secure_mode=self.security, from_addr=self.from_email,
            targets=list(self.to_emails), format="text")
        self._apprise_client = Apprise(asset=AppriseAsset(app_id="Testpilot", app_desc="Testpilot",
                                                          app_url="https://prefect.io"))
        self._apprise_client.add(email)
