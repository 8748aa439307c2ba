"""A real SMTP server on 127.0.0.1 (aiosmtpd, in its own thread): records what it accepts,
can require a login, refuse for a while (451), or hold a message mid-DATA."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.e2e.process import free_port


@dataclass
class FakeSMTP:
    user: str | None = None
    password: str | None = None
    refuse: int = 0  # the next DATA commands answer 451 (try later)
    hold: threading.Event | None = None  # DATA waits here after the message is recorded
    messages: list[EmailMessage] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    controller: Controller | None = None

    def start(self) -> FakeSMTP:
        kwargs: dict[str, Any] = {}
        if self.user:
            kwargs = {
                "authenticator": self._authenticate,
                "auth_required": True,
                "auth_require_tls": False,
            }
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, **kwargs)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def env(self, owner: str = "dueno@cordilleraclima.cl") -> dict[str, str]:
        env = {
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(self.port),
            "SMTP_SECURITY": "none",
            "OWNER_EMAIL": owner,
            "EMAIL_FROM": "alertas@cordilleraclima.cl",
        }
        if self.user and self.password:
            env |= {"SMTP_USER": self.user, "SMTP_PASSWORD": self.password}
        return env

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == self.user
            and data.password.decode() == self.password
        )
        self.logins.append(data.login.decode() if isinstance(data, LoginPassword) else "?")
        return AuthResult(success=ok, handled=False)  # the server answers 235 or 535

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse > 0:
            self.refuse -= 1
            return "451 4.3.0 Intente más tarde"
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        if self.hold is not None:
            while not self.hold.is_set():
                await asyncio.sleep(0.05)
        return "250 2.0.0 OK"

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]
