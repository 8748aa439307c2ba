"""Sends through Meta's Graph API: WhatsApp Cloud API and Instagram Messaging."""

from __future__ import annotations

import json
from typing import Any

import httpx

from sales.settings import Settings
from supervisor.logs import REDACTED

from .errors import GraphError, GraphTransient, NotConfigured, from_response


class GraphClient:
    def __init__(self, http: httpx.AsyncClient, settings: Settings) -> None:
        self.http = http
        self.settings = settings

    async def send_text(self, channel: str, recipient: str, text: str) -> str | None:
        """Send; return the provider's message id."""
        if channel == "whatsapp":
            answer = await self._whatsapp(
                {
                    "messaging_product": "whatsapp",
                    "recipient_type": "individual",
                    "to": recipient,
                    "type": "text",
                    "text": {"preview_url": False, "body": text},
                }
            )
            sent = answer.get("messages") or [{}]
            return str(sent[0].get("id")) if sent[0].get("id") else None
        answer = await self._instagram({"recipient": {"id": recipient}, "message": {"text": text}})
        return str(answer["message_id"]) if answer.get("message_id") else None

    async def send_template(self, recipient: str, spec: str) -> str | None:
        """A WhatsApp template (the only business-initiated message Meta delivers outside
        the 24 h window). `spec` is the stored JSON: name, language, body parameters."""
        data = json.loads(spec)
        template: dict[str, Any] = {
            "name": data["name"],
            "language": {"code": data["language"]},
        }
        if data.get("parameters"):
            template["components"] = [
                {
                    "type": "body",
                    "parameters": [{"type": "text", "text": p} for p in data["parameters"]],
                }
            ]
        answer = await self._whatsapp(
            {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": recipient,
                "type": "template",
                "template": template,
            }
        )
        sent = answer.get("messages") or [{}]
        return str(sent[0].get("id")) if sent[0].get("id") else None

    async def mark_read(self, message_id: str) -> None:
        """WhatsApp: blue ticks on the user's message, and the typing indicator."""
        await self._whatsapp(
            {
                "messaging_product": "whatsapp",
                "status": "read",
                "message_id": message_id,
                "typing_indicator": {"type": "text"},
            }
        )

    async def _whatsapp(self, body: dict[str, Any]) -> dict[str, Any]:
        s = self.settings
        if not (s.whatsapp_access_token and s.whatsapp_phone_number_id):
            raise NotConfigured(
                "WhatsApp no está configurado: WHATSAPP_ACCESS_TOKEN y WHATSAPP_PHONE_NUMBER_ID"
            )
        url = f"{s.meta_graph_url}/{s.whatsapp_phone_number_id}/messages"
        return await self._post(url, s.whatsapp_access_token, body)

    async def _instagram(self, body: dict[str, Any]) -> dict[str, Any]:
        s = self.settings
        if not s.instagram_access_token:
            raise NotConfigured("Instagram no está configurado: INSTAGRAM_ACCESS_TOKEN")
        account = s.instagram_account_id or "me"
        url = f"{s.instagram_graph_url}/{account}/messages"
        return await self._post(url, s.instagram_access_token, body)

    async def _post(self, url: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self.http.post(
                url, json=body, headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.TransportError as exc:  # never the URL or headers: they hold the token
            raise GraphTransient(f"network: {type(exc).__name__}") from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code >= 400 or not isinstance(answer, dict):
            error = answer.get("error") if isinstance(answer, dict) else None
            failure = from_response(
                response.status_code, error if isinstance(error, dict) else None
            )
            # The reason is stored and shown: it never quotes the token back.
            failure.reason = failure.reason.replace(token, REDACTED)
            failure.args = (failure.reason,)
            raise failure
        return answer


__all__ = ["GraphClient", "GraphError"]
