"""The notifier against a fake Graph API on 127.0.0.1: replies delivered in order, transient
failures retried, permanent ones failed with the reason, the 24 h window respected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from store import conversations, messages, outbox
from store.db import Database, open_database
from tests.conftest import KNOWN_SECRET, make_settings, running_suite, wait_for
from tests.fakes.graph_server import Fail, FakeGraph
from tests.fakes.openai_server import Answer, FakeOpenAI, lead_json
from tests.meta import (
    INSTAGRAM_TOKEN,
    WHATSAPP_TOKEN,
    channel_env,
    instagram_text,
    post_signed,
    whatsapp_text,
)


def outbox_rows(db: Database | None) -> list[dict[str, Any]]:
    assert db is not None
    return db.all(
        "SELECT kind, status, part, attempts, provider_message_id, error FROM outbox ORDER BY id"
    )


async def test_whatsapp_reply_is_delivered_with_a_read_receipt(
    tmp_path: Path, fake_graph: FakeGraph
) -> None:
    settings = make_settings(tmp_path, **channel_env(fake_graph.url))
    async with running_suite(settings) as (suite, client):
        r = await post_signed(
            client, "whatsapp", whatsapp_text("56911112222", "wamid.in-1", "Hola, ¿horario?")
        )
        assert r.status_code == 200
        await wait_for(lambda: fake_graph.texts())
        read, text = fake_graph.sends[0], fake_graph.sends[1]
        assert read == {
            "sender": "106540352242922",
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": "wamid.in-1",
            "typing_indicator": {"type": "text"},
        }
        assert text["to"] == "56911112222" and text["type"] == "text"
        assert "lunes: 09:00 a 19:00" in text["text"]["body"]
        assert set(fake_graph.tokens) == {f"Bearer {WHATSAPP_TOKEN}"}
        await wait_for(lambda: outbox_rows(suite.db)[-1]["status"] == "sent")
        rows = outbox_rows(suite.db)
        assert [(row["kind"], row["status"]) for row in rows] == [
            ("read", "sent"),
            ("text", "sent"),
        ]
        provider_id = rows[1]["provider_message_id"]
        assert provider_id.startswith("wamid.fake-")
        # Meta's status webhooks find our send by that id.
        status = (
            b'{"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{'
            b'"field": "messages", "value": {"messaging_product": "whatsapp", "statuses": [{'
            b'"id": "' + provider_id.encode() + b'", "status": "delivered", '
            b'"timestamp": "1764230100", "recipient_id": "56911112222"}]}}]}]}'
        )
        assert (await post_signed(client, "whatsapp", status)).status_code == 200
        assert suite.db is not None
        assert suite.db.all(
            "SELECT d.status FROM delivery_statuses d JOIN outbox o"
            " ON o.provider_message_id = d.provider_message_id"
        ) == [{"status": "delivered"}]


async def test_instagram_reply_is_delivered(tmp_path: Path, fake_graph: FakeGraph) -> None:
    settings = make_settings(tmp_path, **channel_env(fake_graph.url))
    async with running_suite(settings) as (_suite, client):
        r = await post_signed(
            client, "instagram", instagram_text("6123450000000001", "mid.in-1", "hola! precios?")
        )
        assert r.status_code == 200
        await wait_for(lambda: fake_graph.texts("instagram"))
        ((recipient, text),) = fake_graph.texts("instagram")
        assert recipient == "6123450000000001" and "Precios" in text
        assert fake_graph.sends[0]["sender"] == "17841400000000000"
        assert fake_graph.tokens == [f"Bearer {INSTAGRAM_TOKEN}"]


async def test_transient_failures_are_retried_and_parts_keep_their_order(
    tmp_path: Path, fake_graph: FakeGraph, fake_llm: FakeOpenAI
) -> None:
    sentences = [f"Frase número {i} de una respuesta muy larga." for i in range(200)]
    long_reply = " ".join(sentences)  # ~9,000 characters: three WhatsApp messages
    fake_llm.script = [Answer(lead_json(long_reply))]
    fake_graph.failures = [
        Fail(500, 2, "Service temporarily unavailable"),
        Fail(400, 130429, "Rate limit hit"),
    ]
    settings = make_settings(
        tmp_path,
        OPENAI_API_KEY=KNOWN_SECRET,
        OPENAI_BASE_URL=fake_llm.url,
        **channel_env(fake_graph.url),
    )
    async with running_suite(settings) as (suite, client):
        await post_signed(
            client, "whatsapp", whatsapp_text("56911112222", "wamid.long", "cuéntame todo")
        )
        await wait_for(lambda: len(fake_graph.texts()) == 3, seconds=30)
        parts = [text for _to, text in fake_graph.texts()]
        assert all(len(p) <= 4096 for p in parts)
        assert " ".join(parts) == long_reply  # cut between sentences, in order

        def texts() -> list[dict[str, Any]]:
            return [r for r in outbox_rows(suite.db) if r["kind"] == "text"]

        # Marked sent once Graph's answer is read (a moment after the fake has the text).
        await wait_for(lambda: [r["status"] for r in texts()] == ["sent"] * 3)
        rows = texts()
        # The read receipt took the first failure (never retried: it is a courtesy);
        # the first part took the second and went on its retry.
        assert rows[0]["attempts"] == 2


async def test_permanent_failure_ends_failed_with_the_reason(
    tmp_path: Path, fake_graph: FakeGraph
) -> None:
    fake_graph.failures = [
        Fail(400, 131026, "Message undeliverable"),
        Fail(400, 131026, "Message undeliverable"),
    ]
    settings = make_settings(tmp_path, **channel_env(fake_graph.url))
    async with running_suite(settings) as (suite, client):
        await post_signed(client, "whatsapp", whatsapp_text("56900000000", "wamid.x", "hola"))
        await wait_for(
            lambda: (
                all(r["status"] == "failed" for r in outbox_rows(suite.db))
                and len(outbox_rows(suite.db)) == 2
            )
        )
        text_row = outbox_rows(suite.db)[1]
        assert text_row["error"] == "131026: Message undeliverable"
        assert text_row["attempts"] == 1
        channels = (await client.get("/health/detailed")).json()["channels"]
        assert channels["whatsapp"] == {
            "configured": True,
            "inboundPending": 0,
            "outboxPending": 0,
            "outboxFailed": 2,
            "lastSendError": "131026: Message undeliverable",
        }
        assert channels["instagram"]["configured"] is True
        await trio.sleep(1.5)
        assert len(fake_graph.attempts) == 2  # not retried


def seed(tmp_path: Path, user_hours_ago: float, next_attempt_in: float = 0) -> None:
    """A conversation whose last user message is `user_hours_ago` old, with a reply queued."""
    db = open_database(tmp_path / "db" / "leads.db")
    conv = conversations.open_conversation(db, "whatsapp", "56944445555")
    msg = messages.add_inbound(db, conv.id, "whatsapp", "hola", "wamid.old")
    assert msg is not None
    db.execute(
        "UPDATE messages SET status = 'handled', created_at ="
        " strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?) WHERE id = ?",
        (f"-{user_hours_ago * 3600} seconds", msg.id),
    )
    outbox.enqueue(db, conv.id, "whatsapp", "56944445555", "text", ["¿Sigues interesado?"])
    db.execute(
        "UPDATE outbox SET next_attempt_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?)",
        (f"+{next_attempt_in} seconds",),
    )
    db.close()


async def test_no_free_form_text_outside_the_24_hour_window(
    tmp_path: Path, fake_graph: FakeGraph
) -> None:
    seed(tmp_path, user_hours_ago=25)
    settings = make_settings(tmp_path, **channel_env(fake_graph.url))
    async with running_suite(settings) as (suite, _client):
        await wait_for(lambda: outbox_rows(suite.db)[0]["status"] != "pending")
        row = outbox_rows(suite.db)[0]
        assert row["status"] == "skipped"
        assert "24 h" in row["error"]
    assert fake_graph.attempts == []


async def test_a_retry_schedule_survives_a_restart(tmp_path: Path, fake_graph: FakeGraph) -> None:
    seed(tmp_path, user_hours_ago=1, next_attempt_in=3600)
    settings = make_settings(tmp_path, **channel_env(fake_graph.url))
    async with running_suite(settings) as (suite, _client):
        await trio.sleep(2.5)  # a couple of notifier polls
        assert fake_graph.attempts == []
        assert outbox_rows(suite.db)[0]["status"] == "pending"
    seed_due = open_database(tmp_path / "db" / "leads.db")
    seed_due.execute("UPDATE outbox SET next_attempt_at = '2000-01-01T00:00:00.000Z'")
    seed_due.close()
    async with running_suite(settings) as (suite, _client):
        await wait_for(lambda: fake_graph.texts() == [("56944445555", "¿Sigues interesado?")])


async def test_a_burst_gets_one_reply_that_considers_all_of_it(
    tmp_path: Path, fake_graph: FakeGraph
) -> None:
    env = {**channel_env(fake_graph.url), "DEBOUNCE_SECONDS": "1"}
    async with running_suite(make_settings(tmp_path, **env)) as (suite, client):
        for i, text in enumerate(["Hola", "me llamo Pedro", "mi número es +56 9 1234 5678"]):
            raw = whatsapp_text("56912345678", f"wamid.burst-{i}", text, ts=1764230000 + i)
            assert (await post_signed(client, "whatsapp", raw)).status_code == 200
        await wait_for(lambda: fake_graph.texts())
        await trio.sleep(1.5)  # nothing more comes
        ((to, reply),) = fake_graph.texts()
        assert to == "56912345678"
        assert "¿Qué servicio necesitas?" in reply  # knew the name and the phone
        assert suite.db is not None
        assert suite.db.all("SELECT role, status FROM messages ORDER BY id") == [
            {"role": "user", "status": "handled"}
        ] * 3 + [{"role": "assistant", "status": None}]


async def test_media_without_text_gets_a_request_for_text(
    tmp_path: Path, fake_graph: FakeGraph
) -> None:
    async with running_suite(make_settings(tmp_path, **channel_env(fake_graph.url))) as (
        _suite,
        client,
    ):
        raw = (
            b'{"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{'
            b'"field": "messages", "value": {"messaging_product": "whatsapp", "messages": [{'
            b'"from": "56911110000", "id": "wamid.voice", "timestamp": "1764230000", '
            b'"type": "audio", "audio": {"id": "9", "mime_type": "audio/ogg", "voice": true}'
            b"}]}}]}]}"
        )
        assert (await post_signed(client, "whatsapp", raw)).status_code == 200
        await wait_for(lambda: fake_graph.texts())
        ((_to, reply),) = fake_graph.texts()
        assert "solo puedo leer mensajes de texto" in reply


async def test_a_token_quoted_in_an_error_never_reaches_the_store_or_health(
    tmp_path: Path, fake_graph: FakeGraph
) -> None:
    quoted = f"Malformed access token {WHATSAPP_TOKEN}"
    fake_graph.failures = [Fail(400, 190, quoted), Fail(400, 190, quoted)]
    settings = make_settings(tmp_path, **channel_env(fake_graph.url))
    async with running_suite(settings) as (suite, client):
        await post_signed(client, "whatsapp", whatsapp_text("56900000001", "wamid.t", "hola"))
        await wait_for(lambda: [r["status"] for r in outbox_rows(suite.db)] == ["failed"] * 2)
        assert outbox_rows(suite.db)[1]["error"] == "190: Malformed access token [REDACTED]"
        health = (await client.get("/health/detailed")).text
    assert WHATSAPP_TOKEN not in health and "[REDACTED]" in health


async def test_a_turn_retried_after_a_crash_sends_one_receipt_and_one_reply(
    tmp_path: Path, fake_graph: FakeGraph
) -> None:
    env = {**channel_env(fake_graph.url), "IA_FAILPOINTS": "conversation.turn=1"}
    async with running_suite(make_settings(tmp_path, **env)) as (suite, client):
        await post_signed(client, "whatsapp", whatsapp_text("56900000002", "wamid.c", "hola"))
        await wait_for(lambda: fake_graph.texts())
        await trio.sleep(1.5)  # a second receipt or reply would have gone by now
        assert {a.name: a.restarts for a in suite.actors()}["conversation"] == 1
    assert [s.get("status") or s.get("type") for s in fake_graph.sends] == ["read", "text"]


async def test_the_notifier_crashing_before_a_send_loses_and_doubles_nothing(
    tmp_path: Path, fake_graph: FakeGraph
) -> None:
    env = {**channel_env(fake_graph.url), "IA_FAILPOINTS": "notifier.send=1"}
    async with running_suite(make_settings(tmp_path, **env)) as (suite, client):
        await post_signed(client, "whatsapp", whatsapp_text("56900000003", "wamid.n", "hola"))
        await wait_for(lambda: [r["status"] for r in outbox_rows(suite.db)] == ["sent"] * 2)
        notifier = {a.name: a for a in suite.actors()}["notifier"]
        assert notifier.restarts == 1 and notifier.last_error is not None
        assert notifier.last_error.type == "InjectedFault"
        work = (await client.get("/health/detailed")).json()["work"]
        sends = {k: work["notifier"][k] for k in ("sent", "retried", "failed", "skipped")}
        assert sends == {"sent": 2, "retried": 0, "failed": 0, "skipped": 0}
        assert work["conversation"]["turns"] == 1
    assert [s.get("status") or s.get("type") for s in fake_graph.sends] == ["read", "text"]
