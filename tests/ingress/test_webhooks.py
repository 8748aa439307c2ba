"""WhatsApp and Instagram webhooks through real HTTP: handshake, signatures, every shape of
payload, duplicates, and the 200 that never waits for the model."""

from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import Any

import pytest
import trio

from store.db import Database
from tests.conftest import DATA, KNOWN_SECRET, make_settings, running_suite
from tests.fakes.openai_server import FakeOpenAI, Stall
from tests.meta import (
    APP_SECRET,
    META_ENV,
    encode,
    instagram_body,
    instagram_event,
    post_signed,
    sign,
    whatsapp_body,
    whatsapp_message,
)

WEBHOOKS = DATA / "webhooks"


def fixture(name: str) -> bytes:
    return (WEBHOOKS / name).read_bytes()


def unsupported_rows(db: Database | None) -> list[dict[str, Any]]:
    assert db is not None
    return db.all(
        "SELECT channel, sender, external_id, kind, reason, message_id FROM unsupported_events"
        " ORDER BY id"
    )


def inbound_rows(db: Database | None) -> list[dict[str, Any]]:
    assert db is not None
    return db.all(
        "SELECT m.channel, c.external_key AS sender, m.external_id, m.kind, m.content"
        " FROM messages m JOIN conversations c ON c.id = m.conversation_id"
        " WHERE m.role = 'user' ORDER BY m.id"
    )


async def test_verify_handshake(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path, **META_ENV)) as (_suite, client):
        ok = await client.get(
            "/api/whatsapp/webhook",
            params={
                "hub.mode": "subscribe",
                "hub.verify_token": "verify-wa-123",
                "hub.challenge": "1158201444",
            },
        )
        assert ok.status_code == 200 and ok.text == "1158201444"
        ig = await client.get(
            "/api/instagram/webhook",
            params={
                "hub.mode": "subscribe",
                "hub.verify_token": "verify-ig-456",
                "hub.challenge": "77",
            },
        )
        assert ig.status_code == 200 and ig.text == "77"
        wrong = await client.get(
            "/api/whatsapp/webhook",
            params={
                "hub.mode": "subscribe",
                "hub.verify_token": "verify-ig-456",
                "hub.challenge": "1",
            },
        )
        assert wrong.status_code == 403
        assert (await client.get("/api/instagram/webhook")).status_code == 403


async def test_without_app_secret_nothing_is_processed(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path)) as (suite, client):
        raw = fixture("whatsapp_text.json")
        r = await post_signed(client, "whatsapp", raw)
        assert r.status_code == 503 and "META_APP_SECRET" in r.json()["error"]
        assert inbound_rows(suite.db) == []


async def test_signatures(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path, **META_ENV)) as (suite, client):
        raw = fixture("whatsapp_text.json")
        missing = await client.post(
            "/api/whatsapp/webhook", content=raw, headers={"Content-Type": "application/json"}
        )
        assert missing.status_code == 401
        sha1_only = await client.post(
            "/api/whatsapp/webhook",
            content=raw,
            headers={
                "Content-Type": "application/json",
                "X-Hub-Signature": "sha1=" + hmac.new(APP_SECRET.encode(), raw, "sha1").hexdigest(),
            },
        )
        assert sha1_only.status_code == 401
        wrong_secret = await post_signed(client, "whatsapp", raw, sign(raw, "another-secret"))
        assert wrong_secret.status_code == 403
        reserialized = json.dumps(json.loads(raw)).encode()  # same JSON, other bytes
        assert reserialized != raw
        forged = await post_signed(client, "whatsapp", raw, sign(reserialized))
        assert forged.status_code == 403
        assert inbound_rows(suite.db) == []  # nothing stored by any of them

        # The raw body is signed as sent: non-ASCII bytes and all.
        assert "😊".encode() in raw
        assert (await post_signed(client, "whatsapp", raw)).status_code == 200
        rows = inbound_rows(suite.db)
        assert rows == [
            {
                "channel": "whatsapp",
                "sender": "56911112222",
                "external_id": "wamid.HBgLNTY5MTExMTIyMjIVAgASGBQzQTAwMDAwMDAwMDAwMDAwMDAwMQA=",
                "kind": "text",
                "content": "Hola, ¿hacen mantención de aire acondicionado? 😊",
            }
        ]


async def test_only_a_body_that_is_not_metas_envelope_is_refused(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path, **META_ENV)) as (suite, client):
        for raw in (b"{not json", b"[]", b'{"object": "page"}', b"\xff\xfe"):
            r = await post_signed(client, "whatsapp", raw)
            assert r.status_code == 400, raw
            assert r.json()["success"] is False
        deep = b"[" * 100_000 + b"]" * 100_000  # json's recursion limit, under 1 MiB
        r = await post_signed(client, "whatsapp", deep)
        assert r.status_code == 400 and r.json()["success"] is False
        r = await post_signed(client, "instagram", b'{"object": "whatsapp_business_account"}')
        assert r.status_code == 400
        big = b'{"object": "whatsapp_business_account", "pad": "' + b"x" * (1024 * 1024) + b'"}'
        assert (await post_signed(client, "whatsapp", big)).status_code == 413
        assert inbound_rows(suite.db) == []
        assert unsupported_rows(suite.db) == []


async def test_odd_items_never_reject_the_batch(tmp_path: Path) -> None:
    """Per-message problems are recorded for the owner; the rest of the batch is stored."""
    good = {"from": "56912340000", "id": "wamid.good", "timestamp": "1764230000", "type": "text",
            "text": {"body": "Hola"}}  # fmt: skip
    odd = [
        {"type": "text", "text": {"body": "x"}},  # no sender, no id
        {"from": "569", "id": "wamid.odd-1", "timestamp": "1764230001", "type": "interactive",
         "interactive": {"button_reply": "Sí"}},
        {"from": "569", "id": "wamid.odd-2", "timestamp": "1764230002", "type": "image",
         "image": "not-an-object"},
        {"from": "569", "id": "wamid.odd-3", "timestamp": "1764230003", "type": "text",
         "text": {"body": ["a", "list"]}},
        {"from": "569", "id": "wamid.odd-4", "timestamp": "yesterday", "type": "text",
         "text": {"body": "x"}},
        "not an object",
    ]  # fmt: skip
    async with running_suite(make_settings(tmp_path, **META_ENV)) as (suite, client):
        for body in (
            {"object": "whatsapp_business_account", "entry": [{"changes": "x"}, "y", 3]},
            {"object": "whatsapp_business_account", "entry": "x"},
            {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "changes": [
                            {
                                "value": {
                                    "messages": [*odd, good],
                                    "statuses": [{"status": "sent"}, 7],
                                }
                            }
                        ]
                    }
                ],
            },
            {
                "object": "instagram",
                "entry": [
                    {
                        "id": "1",
                        "messaging": [
                            {
                                "sender": {"id": "2"},
                                "timestamp": 1,
                                "message": {"mid": "m", "attachments": "x"},
                            },
                            {"sender": {"id": "2"}, "message": {"mid": "m2", "text": "sin fecha"}},
                            {"timestamp": 1, "message": {"mid": "m3", "text": "sin remitente"}},
                            {
                                "sender": {"id": "2"},
                                "timestamp": 1,
                                "message": {"mid": "m4", "text": 5},
                            },
                            {"sender": {"id": "2"}, "timestamp": 1, "optin": {"ref": "x"}},
                            "not an object",
                        ],
                    }
                ],
            },
        ):
            channel = "instagram" if body["object"] == "instagram" else "whatsapp"
            r = await post_signed(client, channel, json.dumps(body).encode())
            assert r.status_code == 200, (body, r.text)
        assert [row["external_id"] for row in inbound_rows(suite.db)] == ["wamid.good"]
        recorded = unsupported_rows(suite.db)
        # Every odd message and receipt is recorded as rejected; the opt-in is not one.
        assert len(recorded) == len(odd) + 2 + 5
        assert {row["kind"] for row in recorded} == {"rejected"}
        receipts = [row for row in recorded if row["reason"].startswith("recibo de entrega")]
        assert [row["reason"] for row in receipts] == [
            "recibo de entrega malformado: falta id",
            "recibo de entrega malformado: entry[0].changes[0].statuses[1] no es un objeto",
        ]
        assert all(
            row["reason"].startswith("mensaje malformado")
            for row in recorded
            if row not in receipts
        )
        by_id = {row["external_id"]: row for row in recorded}
        assert (
            "messages[1].interactive.button_reply debe ser un objeto"
            in (by_id["wamid.odd-1"]["reason"])
        )
        assert by_id["wamid.odd-4"]["reason"] == "mensaje malformado: fecha inválida"
        assert by_id["wamid.odd-3"]["sender"] == "569"


async def test_every_message_and_status_of_a_batch_is_read_once(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path, **META_ENV)) as (suite, client):
        raw = fixture("whatsapp_batch.json")
        r = await post_signed(client, "whatsapp", raw)
        assert r.status_code == 200
        assert r.json() == {
            "success": True,
            "received": 7,
            "statuses": 2,
            "notices": 1,
            "rejected": 0,
            "errors": 0,
        }
        again = await post_signed(client, "whatsapp", raw)  # Meta redelivers
        assert again.status_code == 200
        rows = inbound_rows(suite.db)
        by_id = {row["external_id"]: row for row in rows}
        assert len(rows) == 7  # the reaction is not user input; duplicates ignored
        assert [(u["external_id"], u["kind"]) for u in unsupported_rows(suite.db)] == [
            ("wamid.batch-5", "audio"),  # nothing the assistant can read: the owner sees it
            ("wamid.batch-7", "location"),
            ("wamid.batch-6", "reaction"),  # recorded, never answered
        ]
        assert by_id["wamid.batch-1"]["content"] == "Mantención"  # button reply title
        assert by_id["wamid.batch-3"]["content"] == "Instalación"  # list reply title
        assert by_id["wamid.batch-4"]["content"] == "Así quedó el equipo, ¿lo pueden revisar?"
        assert (by_id["wamid.batch-5"]["kind"], by_id["wamid.batch-5"]["content"]) == (
            "audio",
            "[audio]",
        )
        assert by_id["wamid.batch-7"]["kind"] == "location"
        assert by_id["wamid.batch-8"]["content"] == "Sí, agendar"
        assert by_id["wamid.batch-2"]["content"] == "Vivo en Ñuñoa, ¿llegan hasta allá? 🙏"
        # One conversation's messages are stored in Meta's order, not the payload's.
        jose = [row["external_id"] for row in rows if row["sender"] == "56933334444"]
        assert jose == ["wamid.batch-1", "wamid.batch-2"]
        assert suite.db is not None
        statuses = suite.db.all(
            "SELECT provider_message_id, status, error_code, error_title"
            " FROM delivery_statuses ORDER BY id"
        )
        assert statuses == [
            {
                "provider_message_id": "wamid.ours-1",
                "status": "delivered",
                "error_code": None,
                "error_title": None,
            },
            {
                "provider_message_id": "wamid.ours-2",
                "status": "failed",
                "error_code": 131047,
                "error_title": "Re-engagement message",
            },
        ]


async def test_instagram_echoes_are_skipped_deletions_and_reactions_not_answered(
    tmp_path: Path,
) -> None:
    async with running_suite(make_settings(tmp_path, **META_ENV)) as (suite, client):
        r = await post_signed(client, "instagram", fixture("instagram_batch.json"))
        assert r.status_code == 200
        rows = inbound_rows(suite.db)
        assert [(row["sender"], row["kind"], row["content"]) for row in rows] == [
            ("6123450000000001", "text", "Hola! cuánto cuesta instalar un split? ❄️"),
            ("6123450000000002", "image", "[imagen]"),
            # Something was sent: it gets the "please write" answer, like WhatsApp's.
            ("6123450000000003", "unsupported", "[mensaje no soportado]"),
            ("6123450000000004", "text", "Mantención"),
        ]
        assert [(u["sender"], u["kind"], u["message_id"] is None) for u in unsupported_rows(
            suite.db
        )] == [
            ("6123450000000002", "image", False),
            ("6123450000000003", "unsupported", False),
            ("6123450000000002", "deleted", True),
            ("6123450000000003", "reaction", True),
        ]  # fmt: skip
        assert suite.db is not None
        assert suite.db.all("SELECT channel, status FROM delivery_statuses") == [
            {"channel": "instagram", "status": "read"}
        ]


async def test_acknowledged_at_once_while_the_model_is_slow(
    tmp_path: Path, fake_llm: FakeOpenAI
) -> None:
    fake_llm.default = Stall(10)
    settings = make_settings(
        tmp_path,
        OPENAI_API_KEY=KNOWN_SECRET,
        OPENAI_BASE_URL=fake_llm.url,
        OPENAI_TIMEOUT="20",
        **META_ENV,
    )
    async with running_suite(settings) as (suite, client):
        for i in range(5):
            body = json.loads(fixture("whatsapp_text.json"))
            message = body["entry"][0]["changes"][0]["value"]["messages"][0]
            message["id"] = f"wamid.slow-{i}"
            message["from"] = f"5691111000{i}"
            raw = json.dumps(body).encode()
            started = trio.current_time()
            r = await post_signed(client, "whatsapp", raw)
            assert r.status_code == 200
            assert trio.current_time() - started < 1.0
        with trio.fail_after(5):
            while len(fake_llm.requests) < 5:  # the model is working on them meanwhile
                await trio.sleep(0.05)
        assert len(inbound_rows(suite.db)) == 5


async def test_hostile_values_reject_their_item_and_never_a_neighbour(tmp_path: Path) -> None:
    """Issue 12: each of these answered 500, and the valid message beside it was lost on
    every redelivery."""
    good = whatsapp_message("56912340000", "wamid.neighbour", "Hola, ¿precio?")
    odd = [
        whatsapp_message("569", "wamid.ts-huge", "x", ts=10**30),
        {**whatsapp_message("569", "wamid.ts-inf", "x"), "timestamp": 1e999},
        {**whatsapp_message("569", "wamid.ts-negative", "x"), "timestamp": -5},
        whatsapp_message("569", "wamid.id-\ud83d", "x"),
        whatsapp_message("569", "wamid." + "x" * 600, "x"),
        {**whatsapp_message("569", "wamid.ts-float", "x"), "timestamp": 1764230000.5},
    ]
    broken_emoji = whatsapp_message("56912340001", "wamid.broken-emoji", "hola \ud83d!")
    receipts = [
        {"id": "wamid.ours-1", "status": "failed", "timestamp": 10**30,
         "errors": [{"code": 10**30, "title": {"an": "object"}}]},
        {"id": "wamid.ours-2", "status": "failed", "errors": [{"code": "9" * 30, "title": "x"}]},
        {"id": "wamid.ours-\udc00", "status": "read"},
    ]  # fmt: skip
    whatsapp = encode(whatsapp_body([*odd, broken_emoji, good], receipts))
    instagram = encode(
        instagram_body(
            [
                instagram_event("61234", "mid.ts-huge", "x", ts_ms=10**30),
                instagram_event("\ud83d", "mid.sender", "x"),
                instagram_event("61235", "mid.text", "cuánto \ud83d\ud83d cuesta"),
                {**instagram_event("61234", "mid.reaction", ""), "message": None,
                 "reaction": {"mid": {"an": "object"}, "emoji": "\ud83d"}},
                instagram_event("61236", "mid.neighbour", "Hola"),
            ],
            ts_ms=10**30,
        )
    )  # fmt: skip
    async with running_suite(make_settings(tmp_path, **META_ENV)) as (suite, client):
        for _delivery in ("first", "redelivered"):
            r = await post_signed(client, "whatsapp", whatsapp)
            assert r.status_code == 200, r.text
            assert r.json()["rejected"] == len(odd) + 1 and r.json()["errors"] == 0
            r = await post_signed(client, "instagram", instagram)
            assert r.status_code == 200, r.text
            assert r.json()["rejected"] == 2 and r.json()["errors"] == 0
        stored = {row["external_id"]: row["content"] for row in inbound_rows(suite.db)}
        assert stored == {
            "wamid.neighbour": "Hola, ¿precio?",
            "wamid.broken-emoji": "hola \ufffd!",  # the rest of what the person wrote is kept
            "mid.text": "cuánto \ufffd\ufffd cuesta",
            "mid.neighbour": "Hola",
        }
        rejected = [row for row in unsupported_rows(suite.db) if row["kind"] == "rejected"]
        assert [row["reason"] for row in rejected] == [
            "mensaje malformado: fecha inválida",
            "mensaje malformado: fecha inválida",
            "mensaje malformado: fecha inválida",
            "mensaje malformado: id inválido",
            "mensaje malformado: id inválido",
            "mensaje malformado: fecha inválida",
            "recibo de entrega malformado: id inválido",
            "mensaje malformado: fecha inválida",
            "mensaje malformado: remitente inválido",
        ]
        assert [row["external_id"] for row in rejected[:3]] == [
            "wamid.ts-huge",
            "wamid.ts-inf",
            "wamid.ts-negative",
        ]
        reaction = next(row for row in unsupported_rows(suite.db) if row["kind"] == "reaction")
        assert reaction["reason"] == "reaccionó \ufffd a un mensaje"
        assert suite.db is not None
        assert suite.db.all(
            "SELECT provider_message_id, status, error_code, error_title, provider_ts"
            " FROM delivery_statuses ORDER BY id"
        ) == [  # a receipt keeps its id and state; an absurd code, title or time is left out
            {"provider_message_id": "wamid.ours-1", "status": "failed", "error_code": None,
             "error_title": None, "provider_ts": None},
            {"provider_message_id": "wamid.ours-2", "status": "failed", "error_code": None,
             "error_title": "x", "provider_ts": None},
        ]  # fmt: skip


async def test_a_bug_with_one_item_costs_only_that_item(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Defence in depth: an exception no check foresaw, reading or storing one item, is
    logged (traceback and type, never its message nor the person's words), counted and
    recorded for the owner; the neighbours are stored and Meta gets its 200."""
    bugs = "webhook.read@wamid.read-bug:TypeError,webhook.store@wamid.store-bug:OverflowError"
    raw = encode(
        whatsapp_body(
            [
                whatsapp_message("569", "wamid.read-bug", "secreto al leer"),
                whatsapp_message("569", "wamid.store-bug", "secreto al guardar"),
                whatsapp_message("56912340000", "wamid.neighbour", "Hola"),
            ]
        )
    )
    settings = make_settings(tmp_path, **META_ENV, IA_FAILPOINTS=bugs)
    async with running_suite(settings) as (suite, client):
        for _delivery in ("first", "redelivered"):
            r = await post_signed(client, "whatsapp", raw)
            assert r.status_code == 200 and r.json()["errors"] == 2, r.text
        assert [row["external_id"] for row in inbound_rows(suite.db)] == ["wamid.neighbour"]
        errors = [row for row in unsupported_rows(suite.db) if row["kind"] == "error"]
        assert sorted(row["reason"] for row in errors) == [  # once each, delivered twice
            "error interno al guardar este elemento (OverflowError)",
            "error interno al leer este elemento (TypeError)",
        ]
        logged = [r for r in caplog.records if r.name == "ingress.webhooks"]
        assert len(logged) == 4 and all(r.levelname == "ERROR" for r in logged)
        text = "\n".join(r.getMessage() for r in logged)
        assert "in _guarded" in text and "in _store_item" in text  # the traceback
        assert "TypeError" in text and "OverflowError" in text
        # The exception's message ("failpoint ... fired for wamid.read-bug") is never logged,
        # as a careless exception could quote what the person wrote.
        assert "wamid" not in text and "secreto" not in text


async def test_a_store_that_cannot_write_answers_503_so_meta_delivers_again(
    tmp_path: Path,
) -> None:
    faults = ",".join(
        [
            "webhook.store@wamid.later:BusyError=1",  # the store is busy: not the item's fault
            "webhook.store@wamid.later:TypeError=1",  # then a bug,
            "webhook.record@wamid.later:FullError=1",  # and the store cannot even record it
        ]
    )
    raw = encode(whatsapp_body([whatsapp_message("56912340000", "wamid.later", "Hola")]))
    settings = make_settings(tmp_path, **META_ENV, IA_FAILPOINTS=faults)
    async with running_suite(settings) as (suite, client):
        busy = await post_signed(client, "whatsapp", raw)
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "5"
        assert (await post_signed(client, "whatsapp", raw)).status_code == 500  # bug, full
        assert unsupported_rows(suite.db) == [] and inbound_rows(suite.db) == []
        assert (await post_signed(client, "whatsapp", raw)).status_code == 200  # redelivered
        assert [row["external_id"] for row in inbound_rows(suite.db)] == ["wamid.later"]
