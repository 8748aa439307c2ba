"""Every shape Meta sends gets a 200: each fixture in tests/data/webhooks/meta (modelled on
Meta's WhatsApp Cloud API and Instagram Messaging examples) is replayed, signed, through the
real HTTP app, twice (Meta redelivers), and what it left in the store is checked: the
messages the assistant answers, and what it cannot read or does not answer, kept for the
owner at /api/admin/unsupported."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from store.db import Database
from tests.conftest import DATA, running_suite
from tests.ingress.test_admin import admin_settings, login
from tests.meta import META_ENV, post_signed

SHAPES = DATA / "webhooks" / "meta"
ERROR_131051 = (
    "Meta: Message type unknown: Message type is currently not supported. (código 131051)"
)


@dataclass(frozen=True)
class Stored:
    # (sender, stored kind, content) of the person's messages, in the conversation
    messages: list[tuple[str, str, str]] = field(default_factory=list)
    # (sender, kind, reason, also in the conversation) of what the owner is shown
    unsupported: list[tuple[str | None, str, str, bool]] = field(default_factory=list)
    # (provider id, status, error code) of our sends' receipts
    statuses: list[tuple[str, str, int | None]] = field(default_factory=list)


EXPECTED: dict[str, Stored] = {
    "whatsapp_text_reply_from_ad.json": Stored(
        [("56920000001", "text", "Hola, vi el anuncio. ¿Cuánto sale la mantención?")]
    ),
    "whatsapp_interactive_button_reply.json": Stored([("56920000002", "text", "Instalación")]),
    "whatsapp_interactive_list_reply.json": Stored([("56920000002", "text", "Providencia")]),
    "whatsapp_interactive_nfm_reply.json": Stored(
        [("56920000003", "interactive", "[respuesta interactiva]")],
        [("56920000003", "interactive", "respuesta de un formulario de WhatsApp (Flow)", True)],
    ),
    "whatsapp_interactive_with_errors.json": Stored(
        [("56920000003", "interactive", "[respuesta interactiva]")],
        [
            (
                "56920000003",
                "interactive",
                "Meta: Something went wrong: Unsupported webhook payload (código 131000)",
                True,
            )
        ],
    ),
    "whatsapp_button.json": Stored([("56920000004", "text", "Quiero agendar")]),
    "whatsapp_unsupported.json": Stored(
        [("56920000004", "unsupported", "[mensaje no soportado]")],
        [
            (
                "56920000004",
                "unsupported",
                f"mensaje no soportado «poll_creation»; {ERROR_131051}",
                True,
            )
        ],
    ),
    "whatsapp_unsupported_edit.json": Stored(
        unsupported=[("56920000004", "unsupported", "editó un mensaje", False)]
    ),
    "whatsapp_unknown_unavailable.json": Stored(
        [("56920000005", "unknown", "[mensaje no soportado]")],
        [
            (
                "56920000005",
                "unknown",
                "mensaje no soportado; Meta: This message is currently unavailable: The message"
                " is unavailable. Ask the user to send it again. (código 131060)",
                True,
            )
        ],
    ),
    "whatsapp_future_type.json": Stored(
        [("56920000005", "hologram", "[hologram]")],
        [("56920000005", "hologram", "tipo de mensaje desconocido «hologram»", True)],
    ),
    "whatsapp_reaction.json": Stored(
        unsupported=[("56920000005", "reaction", "reaccionó 🙏 a un mensaje", False)]
    ),
    "whatsapp_reaction_removed.json": Stored(
        unsupported=[("56920000005", "reaction", "quitó su reacción a un mensaje", False)]
    ),
    "whatsapp_system_changed_number.json": Stored(
        unsupported=[
            (
                "56920000006",
                "system",
                "aviso de WhatsApp: User Tomás Vera changed from 56920000006 to 56920000016",
                False,
            )
        ]
    ),
    "whatsapp_system_changed_user_id.json": Stored(
        unsupported=[
            (
                "CL.1350000000000000007",
                "system",
                "aviso de WhatsApp: User changed from CL.1350000000000000007 to"
                " CL.1350000000000000017",
                False,
            )
        ]
    ),
    "whatsapp_request_welcome.json": Stored(
        unsupported=[("56920000008", "request_welcome", "abrió el chat por primera vez", False)]
    ),
    "whatsapp_order.json": Stored(
        [
            (
                "56920000008",
                "text",
                "[pedido] 1 × SPLIT-12000 a 389990 CLP; 1 × KIT-INSTALACION a 89990 CLP."
                " ¿Lo pueden instalar el sábado?",
            )
        ]
    ),
    "whatsapp_revoke.json": Stored(
        unsupported=[("56920000008", "revoke", "borró un mensaje", False)]
    ),
    "whatsapp_edit.json": Stored(
        unsupported=[
            ("56920000008", "edit", "editó un mensaje: «Mejor el domingo, si se puede»", False)
        ]
    ),
    # A person with a username and no phone: Meta's business-scoped user id is who they are.
    "whatsapp_bsuid_only.json": Stored(
        [("CL.1350000000000000009", "text", "Hola, necesito cotizar dos equipos")]
    ),
    "whatsapp_bsuid_with_phone.json": Stored([("56920000010", "text", "¿Atienden en Maipú?")]),
    "whatsapp_sticker.json": Stored(
        [("56920000010", "sticker", "[sticker]")],
        [("56920000010", "sticker", "sticker sin texto", True)],
    ),
    "whatsapp_document_with_caption.json": Stored(
        [("56920000010", "text", "Esta es la cotización de la competencia")]
    ),
    "whatsapp_contacts.json": Stored(
        [("56920000010", "contacts", "[contacto]")],
        [("56920000010", "contacts", "contacto sin texto", True)],
    ),
    "whatsapp_statuses.json": Stored(
        statuses=[
            ("wamid.ours-shape-1", "sent", None),
            ("wamid.ours-shape-2", "read", None),
            ("wamid.ours-shape-3", "failed", 131026),
        ]
    ),
    # About the account, not a person's message: logged, nothing to store.
    "whatsapp_value_errors_only.json": Stored(),
    "whatsapp_template_status_update.json": Stored(),
    "instagram_story_reply.json": Stored(
        [("6123450000000011", "text", "¿Este equipo es inverter?")]
    ),
    "instagram_ad_referral_message.json": Stored(
        [("6123450000000012", "text", "Quiero info del anuncio")]
    ),
    "instagram_reaction.json": Stored(
        unsupported=[("6123450000000013", "reaction", "reaccionó ❤ a un mensaje", False)]
    ),
    "instagram_unreact.json": Stored(
        unsupported=[("6123450000000013", "reaction", "quitó su reacción a un mensaje", False)]
    ),
    "instagram_read.json": Stored(statuses=[("aWdfZAG1faXRlbTpvdXJzLXNoYXBlLTE=", "read", None)]),
    "instagram_postback.json": Stored([("6123450000000014", "text", "Ver precios")]),
    "instagram_referral.json": Stored(
        unsupported=[
            (
                "6123450000000015",
                "referral",
                "abrió el chat desde un enlace o anuncio (SHORTLINK bio-link)",
                False,
            )
        ]
    ),
    "instagram_message_edit.json": Stored(
        unsupported=[
            (
                "6123450000000011",
                "edit",
                "editó un mensaje: «¿Este equipo es inverter? ¿Y de cuántos BTU?»",
                False,
            )
        ]
    ),
    "instagram_echo.json": Stored(),  # our own send coming back
    "instagram_deleted.json": Stored(
        unsupported=[("6123450000000011", "deleted", "borró un mensaje", False)]
    ),
    "instagram_unsupported.json": Stored(
        [("6123450000000016", "unsupported", "[mensaje no soportado]")],
        [("6123450000000016", "unsupported", "mensaje no soportado por Instagram", True)],
    ),
    "instagram_attachments.json": Stored(
        [
            ("6123450000000017", "share", "[publicación compartida]"),
            ("6123450000000017", "story_mention", "[mención en historia]"),
            ("6123450000000017", "audio", "[audio]"),
        ],
        [
            ("6123450000000017", "share", "publicación compartida sin texto", True),
            ("6123450000000017", "story_mention", "mención en historia sin texto", True),
            ("6123450000000017", "audio", "audio sin texto", True),
        ],
    ),
    "instagram_comments_change.json": Stored(),  # a field we do not use
}


def stored_since(db: Database | None, marks: dict[str, int]) -> Stored:
    assert db is not None
    messages = db.all(
        "SELECT c.external_key AS sender, m.kind, m.content FROM messages m"
        " JOIN conversations c ON c.id = m.conversation_id"
        " WHERE m.role = 'user' AND m.id > ? ORDER BY m.id",
        (marks["messages"],),
    )
    unsupported = db.all(
        "SELECT u.sender, u.kind, u.reason, u.message_id, c.external_key"
        " FROM unsupported_events u LEFT JOIN conversations c ON c.id = u.conversation_id"
        " WHERE u.id > ? ORDER BY u.id",
        (marks["unsupported_events"],),
    )
    for row in unsupported:  # a person's notice belongs to their conversation
        assert row["external_key"] == row["sender"], row
    statuses = db.all(
        "SELECT provider_message_id, status, error_code FROM delivery_statuses"
        " WHERE id > ? ORDER BY id",
        (marks["delivery_statuses"],),
    )
    return Stored(
        [(r["sender"], r["kind"], r["content"]) for r in messages],
        [(r["sender"], r["kind"], r["reason"], r["message_id"] is not None) for r in unsupported],
        [(r["provider_message_id"], r["status"], r["error_code"]) for r in statuses],
    )


def high_marks(db: Database | None) -> dict[str, int]:
    assert db is not None
    tables = ("messages", "unsupported_events", "delivery_statuses")
    return {t: int(db.scalar(f"SELECT coalesce(max(id), 0) FROM {t}")) for t in tables}


async def replay(client: httpx.AsyncClient, name: str) -> httpx.Response:
    channel = "whatsapp" if name.startswith("whatsapp_") else "instagram"
    return await post_signed(client, channel, (SHAPES / name).read_bytes())


def test_every_fixture_has_its_expectation() -> None:
    assert sorted(p.name for p in SHAPES.glob("*.json")) == sorted(EXPECTED)


async def test_every_shape_is_acknowledged_and_recorded_once(tmp_path: Path) -> None:
    async with running_suite(admin_settings(tmp_path, **META_ENV)) as (suite, client):
        for name, expected in EXPECTED.items():
            marks = high_marks(suite.db)
            for attempt in ("first", "redelivered"):
                r = await replay(client, name)
                assert r.status_code == 200, (name, attempt, r.text)
                assert r.json()["success"] is True
            assert stored_since(suite.db, marks) == expected, name


async def test_the_owner_sees_what_the_assistant_could_not_read(tmp_path: Path) -> None:
    async with running_suite(admin_settings(tmp_path, **META_ENV)) as (_suite, client):
        for name in (
            "whatsapp_interactive_with_errors.json",
            "whatsapp_unsupported.json",
            "whatsapp_reaction.json",
            "instagram_deleted.json",
        ):
            assert (await replay(client, name)).status_code == 200
        anonymous = await client.get("/api/admin/unsupported")
        assert anonymous.status_code == 401
        await login(client)
        r = await client.get("/api/admin/unsupported")
        assert r.status_code == 200
        rows: list[dict[str, Any]] = r.json()["data"]
        assert [(row["channel"], row["kind"], row["sender"]) for row in rows] == [
            ("instagram", "deleted", "6123450000000011"),
            ("whatsapp", "reaction", "56920000005"),
            ("whatsapp", "unsupported", "56920000004"),
            ("whatsapp", "interactive", "56920000003"),
        ]  # newest first
        assert all(row["conversation_id"] and row["created_at"] for row in rows)
        assert rows[2]["reason"].endswith("(código 131051)") and rows[2]["in_conversation"]
        assert rows[1]["reason"] == "reaccionó 🙏 a un mensaje" and not rows[1]["in_conversation"]

        first = await client.get("/api/admin/unsupported", params={"limit": 3})
        assert [row["id"] for row in first.json()["data"]] == [row["id"] for row in rows[:3]]
        after = first.json()["before"]
        assert after == rows[2]["id"]
        rest = await client.get("/api/admin/unsupported", params={"limit": 3, "before": after})
        assert [row["id"] for row in rest.json()["data"]] == [rows[3]["id"]]
        assert rest.json()["before"] is None  # the last page
        for bad in ({"limit": "0"}, {"limit": "many"}, {"before": "x"}, {"limit": "1000"}):
            assert (await client.get("/api/admin/unsupported", params=bad)).status_code == 400
