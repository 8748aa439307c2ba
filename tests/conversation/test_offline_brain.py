"""The offline brain's rules (dense logic, tested at unit level) and the streaming extractor."""

from __future__ import annotations

import json

import pytest

from actors.conversation.brain import BrainTurn, ChatLine
from actors.conversation.offline import OfflineBrain
from actors.conversation.streaming import ReplyStreamExtractor
from supervisor.business import BusinessConfig, load_business
from tests.conftest import DATA, ROOT


@pytest.fixture
def business() -> BusinessConfig:
    return load_business(ROOT / "config" / "business.json")


async def ask(brain: OfflineBrain, *lines: str) -> str:
    history: list[ChatLine] = []
    reply = ""
    for text in lines:
        history.append(ChatLine("user", text))
        reply = (await brain.reply(BrainTurn("web", tuple(history)))).text
        history.append(ChatLine("assistant", reply))
    return reply


async def test_answers_coverage_schedule_and_payment(business: BusinessConfig) -> None:
    brain = OfflineBrain(business)
    assert "Sí, atendemos en Ñuñoa." in await ask(brain, "¿Atienden en ñuñoa?")
    assert "sábado: 10:00 a 14:00" in await ask(brain, "¿cuál es su horario?")
    assert "domingo: cerrado" in await ask(brain, "¿cuál es su horario?")
    assert "Efectivo" in await ask(brain, "¿puedo pagar con tarjeta?")


async def test_hides_prices_when_the_business_says_so(business: BusinessConfig) -> None:
    hidden = business.model_copy(
        update={"pricing": business.pricing.model_copy(update={"showPrices": False})}
    )
    reply = await ask(OfflineBrain(hidden), "¿cuánto cuesta la instalación?")
    assert "$" not in reply and "cotización" in reply


async def test_speaks_usted_when_the_config_says_so() -> None:
    legacy = load_business(DATA / "legacy-business.json")
    formal = legacy.model_copy(
        update={
            "conversationStyle": legacy.conversationStyle.model_copy(update={"formality": "usted"})
        }
    )
    assert "¿Me indica su nombre, por favor?" in await ask(OfflineBrain(formal), "hola")


async def test_plain_words_are_not_taken_for_names(business: BusinessConfig) -> None:
    brain = OfflineBrain(business)
    reply = await brain.reply(
        BrainTurn(
            "web",
            (
                ChatLine("user", "hola"),
                ChatLine("assistant", "¡Hola! ¿Cómo te llamas?"),
                ChatLine("user", "gracias"),
            ),
        )
    )
    assert reply.lead.name is None
    assert reply.classification == "frio"


def test_service_match_tolerates_accents_and_inflection(business: BusinessConfig) -> None:
    brain = OfflineBrain(business)
    found = brain.match_service("necesito instalar un split")
    assert found is not None and found.id == "instalacion"
    found = brain.match_service("la reparacion del equipo")
    assert found is not None and found.id == "reparacion"
    assert brain.match_service("quiero una pizza") is None


@pytest.mark.parametrize("size", [1, 2, 3, 5, 11])
def test_extractor_decodes_the_reply_whatever_the_chunking(size: int) -> None:
    reply = 'Hola "Ana" 😊\nprecio: $45.000 — ñandú \\ fin'
    raw = json.dumps({"reply": reply, "lead": {"nombre": "Ana"}})
    extractor = ReplyStreamExtractor()
    out = "".join(extractor.feed(raw[i : i + size]) for i in range(0, len(raw), size))
    assert out == reply
