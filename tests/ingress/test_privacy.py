"""A visitor sees only what their own conversation collected, and a typed phone is a claim:
a second visitor who types the first one's number neither sees nor changes their lead. Every
public route is walked as the second visitor."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.conftest import running_suite, suite_app
from tests.ingress.test_admin import admin_settings, login

FIRST = "session_primera_visita"
SECOND = "session_segunda_visita"
# What the first visitor tells; none of it may reach the second one.
FIRST_SAYS = (
    "Hola, me llamo Aurelia Quintanilla, mi número es +56 9 7311 4477, mi correo es"
    " aurelia.q@correo.cl, vivo en Puente Alto y necesito instalar un split, es urgente"
)
FIRST_VALUES = ("Aurelia", "Quintanilla", "aurelia.q@correo.cl", "Puente Alto", "Instalación")


def _leaks(text: str, own: tuple[str, ...] = ()) -> list[str]:
    return [v for v in FIRST_VALUES if v.lower() in text.lower() and v not in own]


async def _chat(client: httpx.AsyncClient, session: str, text: str) -> dict[str, object]:
    r = await client.post("/api/chat", json={"message": text, "sessionId": session})
    assert r.status_code == 200, r.text
    data: dict[str, object] = r.json()["data"]
    return data


async def test_a_typed_phone_never_shows_or_changes_another_persons_lead(
    tmp_path: Path,
) -> None:
    async with running_suite(admin_settings(tmp_path)) as (suite, client):
        assert suite.db is not None
        first = await _chat(client, FIRST, FIRST_SAYS)
        lead = first["lead"]
        assert isinstance(lead, dict)
        assert lead["nombre"] == "Aurelia Quintanilla" and lead["comuna"] == "Puente Alto"
        # The second visitor claims the same number.
        second = await _chat(client, SECOND, "hola, mi número es 973114477")
        assert _leaks(str(second)) == [], second
        second_lead = second["lead"]
        assert isinstance(second_lead, dict)
        assert second_lead["nombre"] is None and second_lead["comuna"] is None
        assert second_lead["telefono"] == "+56973114477"  # what they typed themselves
        again = await _chat(client, SECOND, "me llamo Intruso Pérez, vivo en Maipú")
        assert _leaks(str(again)) == [], again
        # The first lead is untouched; the second is a lead of its own.
        rows = suite.db.all("SELECT id, name, area, phone FROM leads ORDER BY id")
        assert [(r["name"], r["area"]) for r in rows] == [
            ("Aurelia Quintanilla", "Puente Alto"),
            ("Intruso Pérez", "Maipú"),
        ]
        session = await client.get(f"/api/chat/session/{SECOND}")
        assert session.status_code == 200 and _leaks(session.text) == []
        # The owner sees "posible misma persona" on both, and merges by hand.
        csrf = await login(client)
        first_id, second_id = rows[0]["id"], rows[1]["id"]
        r = await client.get(f"/api/leads/{first_id}/identidad")
        matches = r.json()["data"]["posibleMismaPersona"]
        assert [m["leadId"] for m in matches] == [second_id]
        assert "Posible misma persona que el lead" in matches[0]["texto"]
        origin = r.json()["data"]["origen"]
        assert origin["name"]["texto"] == FIRST_SAYS and origin["name"]["como"] == "typed"
        r = await client.post(
            f"/api/leads/{first_id}/unir", json={"con": second_id}, headers={"X-CSRF-Token": csrf}
        )
        assert r.status_code == 200, r.text
        assert [u["merged_id"] for u in r.json()["data"]["uniones"]] == [second_id]
        detail = (await client.get(f"/api/leads/{first_id}")).json()["data"]
        assert {m["content"] for m in detail["mensajes"]} >= {
            FIRST_SAYS,
            "hola, mi número es 973114477",
        }
        # After the merge each visitor still sees only their own conversation's values.
        after = await _chat(client, SECOND, "gracias")
        assert _leaks(str(after)) == [], after
        r = await client.post(
            f"/api/leads/{first_id}/unir", json={"con": "x"}, headers={"X-CSRF-Token": csrf}
        )
        assert r.status_code == 400


async def test_no_public_route_shows_a_second_visitor_the_first_ones_data(
    tmp_path: Path,
) -> None:
    async with running_suite(admin_settings(tmp_path, METRICS_TOKEN="")) as (suite, client):
        assert suite.db is not None
        await _chat(client, FIRST, FIRST_SAYS)
        app = suite_app(suite)
        visited = 0
        async with httpx.AsyncClient(base_url=suite.url, timeout=30) as visitor:
            for rule in app.url_map.iter_rules():
                view = app.view_functions[rule.endpoint]
                if getattr(view, "admin_only", False) or getattr(view, "demo_or_owner", False):
                    continue
                path = re.sub(r"<session_id>", SECOND, rule.rule)
                path = re.sub(r"<path:\w+>", "chat.js", path)
                for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                    body = {"message": "hola, mi número es 973114477", "sessionId": SECOND}
                    r = await visitor.request(method, path, json=body)
                    assert r.status_code != 500, (method, path, r.status_code)
                    # The business's own catalogue is public: it lists "Instalación …".
                    public = ("Instalación",) if path == "/api/business" else ()
                    assert _leaks(r.text, public) == [], (method, path, _leaks(r.text, public))
                    visited += 1
        assert visited >= 12
