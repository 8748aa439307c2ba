"""With a model: its structured answer is an input to extraction and classification (each
field checked as if a person typed it); with the model down, offline extraction still
classifies the turn."""

from __future__ import annotations

from pathlib import Path

from sales.settings import Settings
from tests.conftest import KNOWN_SECRET, make_settings, running_suite
from tests.fakes.openai_server import Answer, FakeOpenAI, Status, lead_json


def llm_settings(tmp_path: Path, fake: FakeOpenAI) -> Settings:
    return make_settings(tmp_path, OPENAI_API_KEY=KNOWN_SECRET, OPENAI_BASE_URL=fake.url)


async def test_the_models_structured_answer_feeds_the_lead(
    tmp_path: Path, fake_llm: FakeOpenAI
) -> None:
    fake_llm.script = [
        Answer(
            lead_json(
                "¡Gracias, Carmen Gloria! ¿En qué comuna estás?",
                nombre="Carmen Gloria",
                telefono="9 8765 4321",  # spelled out by the person; the model wrote digits
                email="carmen@correo.cl",  # never written by the person: an invention
                servicio="mantencion del aire",  # free text: matched to business.json
                estado="caliente",
            )
        ),
        Answer(lead_json("Anotado.", telefono="llámame", comuna="Ñuñoa", estado="frio")),
    ]
    async with running_suite(llm_settings(tmp_path, fake_llm)) as (suite, client):
        text = (
            "Les escribe la señora Carmen Gloria, mi número es nueve ocho siete seis cinco"
            " cuatro tres dos uno"
        )
        r = await client.post("/api/chat", json={"message": text, "sessionId": "m"})
        lead = r.json()["data"]["lead"]
        assert (lead["nombre"], lead["telefono"], lead["servicio"]) == (
            "Carmen Gloria",
            "+56987654321",
            "Mantención preventiva",
        )
        # name + phone + service is hot by the rules; the model's guess alone would not be.
        assert lead["estado"] == "caliente"
        r = await client.post("/api/chat", json={"message": "en ñuñoa", "sessionId": "m"})
        lead = r.json()["data"]["lead"]
        # "llámame" is no phone: what was known stays.
        assert (lead["telefono"], lead["comuna"]) == ("+56987654321", "Ñuñoa")
        assert suite.db is not None
        # The model's e-mail was never written by the person: dropped, not stored.
        assert suite.db.scalar("SELECT email FROM leads") is None


async def test_the_models_guess_alone_never_makes_a_lead_hot(
    tmp_path: Path, fake_llm: FakeOpenAI
) -> None:
    fake_llm.script = [Answer(lead_json("¡Hola! ¿En qué te ayudo?", estado="caliente"))]
    async with running_suite(llm_settings(tmp_path, fake_llm)) as (suite, client):
        r = await client.post("/api/chat", json={"message": "hola", "sessionId": "g"})
        assert r.json()["data"]["lead"]["estado"] == "frio"
        assert suite.db is not None
        reasons = str(suite.db.scalar("SELECT reasons FROM leads"))
        assert "el asistente lo estimó caliente" in reasons


async def test_with_the_model_down_offline_extraction_still_classifies(
    tmp_path: Path, fake_llm: FakeOpenAI
) -> None:
    fake_llm.default = Status(503, "overloaded")
    async with running_suite(llm_settings(tmp_path, fake_llm)) as (_suite, client):
        text = "Soy Pedro Soto, 987654321, necesito cotizar una reparación urgente"
        r = await client.post("/api/chat", json={"message": text, "sessionId": "d"})
        data = r.json()["data"]
        assert "tuve un problema para responderte" in data["respuesta"]  # the fallback
        lead = data["lead"]
        assert (lead["nombre"], lead["telefono"], lead["servicio"], lead["estado"]) == (
            "Pedro Soto",
            "+56987654321",
            "Reparación y diagnóstico",
            "caliente",
        )
        assert len(fake_llm.requests) >= 1


async def test_the_models_fields_are_validated_exactly_as_typed_ones(
    tmp_path: Path, fake_llm: FakeOpenAI
) -> None:
    fake_llm.script = [
        Answer(
            lead_json(
                "Anotado.",
                nombre="<img src=x onerror=alert(1)>",
                comuna="<b>Ñuñoa</b>",
                email="<script>@x.cl",
                telefono="javascript:alert(1)",
            )
        )
    ]
    async with running_suite(llm_settings(tmp_path, fake_llm)) as (suite, client):
        r = await client.post("/api/chat", json={"message": "vivo en ñuñoa", "sessionId": "x"})
        assert r.status_code == 200
        assert suite.db is not None
        row = suite.db.one("SELECT name, area, email, phone FROM leads")
        # Markup never becomes a field; the comuna the person wrote is kept, clean.
        assert row == {"name": None, "area": "Ñuñoa", "email": None, "phone": None}
