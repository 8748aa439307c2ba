"""Signed Meta webhooks for tests, built on the real payload shapes in tests/data/webhooks;
and the hostile values an attacker (or a broken client) puts in JSON bodies."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
from functools import cache
from typing import Any

import httpx
from hypothesis import strategies as st

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


def whatsapp_message(
    sender: str, message_id: str, text: str, ts: int = 1764230000
) -> dict[str, Any]:
    return {
        "from": sender,
        "id": message_id,
        "timestamp": str(ts),
        "type": "text",
        "text": {"body": text},
    }


def whatsapp_body(
    messages: list[Any], statuses: list[Any] | None = None, **value: Any
) -> dict[str, Any]:
    """One entry, one change: these messages and receipts (and any other `value` fields)."""
    body = copy.deepcopy(_template("whatsapp_text.json"))
    change = body["entry"][0]["changes"][0]["value"]
    change.pop("contacts")
    change.update(messages=messages, **value)
    if statuses is not None:
        change["statuses"] = statuses
    return body


def instagram_event(sender: str, mid: str, text: str, ts_ms: int = 1764230100000) -> dict[str, Any]:
    return {
        "sender": {"id": sender},
        "recipient": {"id": IG_ACCOUNT},
        "timestamp": ts_ms,
        "message": {"mid": mid, "text": text},
    }


def instagram_body(events: list[Any], ts_ms: int = 1764230100000) -> dict[str, Any]:
    return {
        "object": "instagram",
        "entry": [{"id": IG_ACCOUNT, "time": ts_ms, "messaging": events}],
    }


def encode(body: Any) -> bytes:
    """JSON with everything beyond ASCII as \\u escapes, as Meta writes it: so a lone
    surrogate travels too, as `\\ud83d`."""
    return json.dumps(body).encode()


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


# --- Hostile values (issue 12) ---------------------------------------------------------------

_RAW = re.compile(r'"@@raw:([^"@]*)@@"')
LONE_SURROGATES = ("\ud83d", "\ude00", "\ud800", "\udfff")
MAX_LONG_BYTES = 120_000  # a long string, as escaped JSON


def raw(literal: str) -> str:
    """A JSON literal that `json.dumps` cannot write (1e999, 5000 digits), for `dumps_raw`."""
    return f"@@raw:{literal}@@"


def dumps_raw(body: Any) -> bytes:
    """`encode`, with every `raw(...)` written as the literal itself."""
    return _RAW.sub(r"\1", json.dumps(body)).encode()


def _long(char: str) -> st.SearchStrategy[str]:
    per_char = len(json.dumps(char)) - 2
    return st.integers(1_000, MAX_LONG_BYTES // per_char).map(lambda n: char * n)


def _nested(depth: int, in_objects: bool) -> Any:
    value: Any = "fondo"
    for _ in range(depth):
        value = {"x": value} if in_objects else [value]
    return value


with_lone_surrogate = st.tuples(
    st.text(max_size=5), st.sampled_from(LONE_SURROGATES), st.text(max_size=5)
).map("".join)
hostile_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**30, -(10**30), 2**63, 2**64, -1, 0, 10**19, -5]),
    st.floats(),  # NaN and Infinity too, as Python's json writes them
    st.sampled_from(["1e999", "-1e999", "1E400", "-0", "9" * 5000, "0.5e-400"]).map(raw),
    st.sampled_from(
        ["9" * 30, "²", "١٧٦٤٢٣٠٠٠٠", " 1764230000", "+1764230000", "1e5", "0x10", "-1", "0"]
    ),
    st.text(max_size=20),
    st.text(st.characters(min_codepoint=0x80), min_size=1, max_size=30),  # unicode ids
    with_lone_surrogate,
    st.sampled_from(["x", "ñ", "😊", " ", "\x00"]).flatmap(_long),
)
hostile_values = st.one_of(
    hostile_scalars,
    st.recursive(
        hostile_scalars,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.text(max_size=8) | with_lone_surrogate, inner, max_size=3)
        ),
        max_leaves=6,
    ),
    # Deep, yet within what the JSON reader reads (beyond it a body is refused whole: 400).
    st.builds(_nested, st.integers(20, 400), st.booleans()),
)
