"""Signed Meta webhooks for tests, built on the real payload shapes in tests/data/webhooks."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from functools import cache
from typing import Any

import httpx

from tests.conftest import DATA

APP_SECRET = "meta-app-secret-KNOWN-0123456789"
WHATSAPP_TOKEN = "EAAGwhatsappKNOWNtoken0123456789abcdef"
INSTAGRAM_TOKEN = "IGQVinstagramKNOWNtoken0123456789abcdef"
IG_ACCOUNT = "17841400000000000"
META_ENV = {
    "META_APP_SECRET": APP_SECRET,
    "WHATSAPP_VERIFY_TOKEN": "verify-wa-123",
    "INSTAGRAM_VERIFY_TOKEN": "verify-ig-456",
    "INSTAGRAM_ACCOUNT_ID": IG_ACCOUNT,
    "DEBOUNCE_SECONDS": "0",
}


def channel_env(graph_url: str) -> dict[str, str]:
    return {
        **META_ENV,
        "WHATSAPP_ACCESS_TOKEN": WHATSAPP_TOKEN,
        "WHATSAPP_PHONE_NUMBER_ID": "106540352242922",
        "INSTAGRAM_ACCESS_TOKEN": INSTAGRAM_TOKEN,
        "META_GRAPH_URL": graph_url,
        "INSTAGRAM_GRAPH_URL": graph_url,
    }


def sign(raw: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


@cache
def _template(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / "webhooks" / name).read_text())
    return data


def whatsapp_text(sender: str, message_id: str, text: str, ts: int = 1764230000) -> bytes:
    body = copy.deepcopy(_template("whatsapp_text.json"))
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = sender
    value["messages"][0].update(
        {"from": sender, "id": message_id, "timestamp": str(ts), "text": {"body": text}}
    )
    return json.dumps(body, ensure_ascii=False).encode()


def instagram_text(sender: str, mid: str, text: str, ts_ms: int = 1764230100000) -> bytes:
    body = {
        "object": "instagram",
        "entry": [
            {
                "id": IG_ACCOUNT,
                "time": ts_ms,
                "messaging": [
                    {
                        "sender": {"id": sender},
                        "recipient": {"id": IG_ACCOUNT},
                        "timestamp": ts_ms,
                        "message": {"mid": mid, "text": text},
                    }
                ],
            }
        ],
    }
    return json.dumps(body, ensure_ascii=False).encode()


async def post_signed(
    client: httpx.AsyncClient, channel: str, raw: bytes, signature: str | None = None
) -> httpx.Response:
    return await client.post(
        f"/api/{channel}/webhook",
        content=raw,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": signature if signature is not None else sign(raw),
        },
    )
