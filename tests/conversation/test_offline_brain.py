"""The offline brain's rules (dense logic, tested at unit level) and the streaming extractor."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from actors.conversation.brain import BrainTurn, ChatLine
from actors.conversation.offline import CLOSINGS, QUESTIONS, OfflineBrain
from actors.conversation.streaming import ReplyStreamExtractor
from sales.business import BusinessConfig, load_business
from sales.extract import Extractor
from store.leads import LeadFields
from tests.conftest import DATA, ROOT

SANTIAGO = ZoneInfo("America/Santiago")
THURSDAY_MORNING = datetime(2026, 12, 3, 10, 0, tzinfo=SANTIAGO)


@pytest.fixture
def business() -> BusinessConfig:
    return load_business(ROOT / "config" / "business.json")


def at(when: datetime) -> Callable[[], datetime]:
    return lambda: when


def speaking(business: BusinessConfig, formality: str) -> BusinessConfig:
    style = business.conversationStyle.model_copy(update={"formality": formality})
    return business.model_copy(update={"conversationStyle": style})


def sentences(reply: str) -> set[str]:
    return {s for s in re.split(r"(?<=[.!?])\s+", reply.strip()) if s}


class Script:
    """A conversation driven through `compose` with the lead as the extractor settled it
    (the extractor is not under test here): `say(text, name="Ana")` is one turn."""

    def __init__(self, brain: OfflineBrain) -> None:
        self.brain = brain
        self.history: list[ChatLine] = []
        self.lead = LeadFields()
        self.replies: list[str] = []

    def say(self, text: str, **settled: str) -> str:
        known = self.lead
        self.lead = replace(known, **settled)
        self.history.append(ChatLine("user", text))
        reply = self.brain.compose(tuple(self.history), self.lead, known)
        self.history.append(ChatLine("assistant", reply))
        self.replies.append(reply)
        return reply


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


# -- answering what was asked, from business.json --------------------------------------------


def _qualification(business: BusinessConfig, key: str) -> list[str]:
    value = (business.qualifications or {})[key]
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _schedule_extra(business: BusinessConfig, section: str, key: str) -> str:
    extra = getattr(business.schedule, section) or {}
    return str(extra[key])


def _surcharge(business: BusinessConfig) -> str:
    assert business.coverage.additionalFees is not None
    return business.coverage.additionalFees.message


QUESTION_ANSWERS: list[tuple[str, Callable[[BusinessConfig], list[str]]]] = [
    (
        "¿cuánto sale una mantención?",
        lambda b: [f"Mantención preventiva: {b.services[1].price}.", b.pricing.message],
    ),
    ("cuanto cobran", lambda b: [str(s.price) for s in b.services if s.price]),
    ("en cuánto me sale instalar un split", lambda b: [f"{b.services[0].price}."]),
    ("¿cual es el orario?", lambda b: ["jueves: 09:00 a 19:00", "sábado: 10:00 a 14:00"]),
    (
        "¿a qué hora abren?",
        lambda b: ["domingo: cerrado", _schedule_extra(b, "emergencyService", "hours")],
    ),
    ("¿atienden en nunoa?", lambda b: ["Sí, atendemos en Ñuñoa."]),
    (
        "¿llegan a Puente Alto?",
        lambda b: ["Puente Alto está fuera de nuestras comunas", _surcharge(b)],
    ),
    ("¿qué comunas cubren?", lambda b: b.coverage.communes),
    ("¿que servicios ofrecen?", lambda b: [s.name for s in b.services]),
    ("¿qué incluye la mantencion?", lambda b: [b.services[1].description]),
    ("¿se puede pagar con tarjeta?", lambda b: b.pricing.paymentMethods),
    ("tienen garantía?", lambda b: _qualification(b, "warranty")),
    ("tienen garantai", lambda b: _qualification(b, "warranty")),
    (
        "¿los técnicos son certificados? ¿cuánta experiencia tienen?",
        lambda b: _qualification(b, "certifications") + _qualification(b, "experience"),
    ),
    ("¿cuánto se demora la instalación?", lambda b: [str(b.services[0].estimatedTime)]),
    ("¿atienden feriados?", lambda b: [_schedule_extra(b, "holidays", "message")]),
    ("¿hacen boleta o factura?", lambda b: ["te lo confirma un asesor"]),
    ("¿tienen estacionamiento para la camioneta?", lambda b: ["te lo confirma un asesor"]),
]


@pytest.mark.parametrize(("question", "expected"), QUESTION_ANSWERS)
def test_answers_the_question_from_the_config_before_asking_for_a_field(
    business: BusinessConfig, question: str, expected: Callable[[BusinessConfig], list[str]]
) -> None:
    reply = Script(OfflineBrain(business, now=at(THURSDAY_MORNING))).say(question)
    asked_at = reply.index("¿Cómo te llamas?")
    values = expected(business)
    assert values and all(values)  # the config has an answer to look for
    for value in values:
        assert value in reply
        assert reply.index(value) < asked_at  # answered first, then the field question
    assert Extractor.asked_field(reply) == "name"


def test_hidden_prices_say_a_quote_instead(business: BusinessConfig) -> None:
    hidden = business.model_copy(
        update={"pricing": business.pricing.model_copy(update={"showPrices": False})}
    )
    reply = Script(OfflineBrain(hidden)).say("¿en cuánto me sale la mantención?")
    assert "$" not in reply and "cotización" in reply and business.pricing.message in reply


THURSDAY = "Sí, el jueves atendemos de 09:00 a 19:00."
SUNDAY = "El domingo no atendemos; el siguiente día de atención es el lunes, de 09:00 a 19:00."


@pytest.mark.parametrize(
    ("now", "question", "expected"),
    [
        (THURSDAY_MORNING, "¿pueden el jueves?", [THURSDAY]),
        (THURSDAY_MORNING, "¿atienden el sábado?", ["Sí, el sábado atendemos de 10:00 a 14:00."]),
        (THURSDAY_MORNING, "¿el domingo?", [SUNDAY, "Servicio de urgencias: urgencias hasta"]),
        (THURSDAY_MORNING, "trabajan los domingos", ["Los domingos no atendemos"]),
        (
            THURSDAY_MORNING,
            "¿trabajan el finde?",
            ["Sí, el sábado atendemos de 10:00 a 14:00.", SUNDAY],
        ),
        (THURSDAY_MORNING, "¿pueden mañana?", ["Sí, mañana (viernes) atendemos de 09:00 a 18:00."]),
        (THURSDAY_MORNING, "¿atienden hoy?", ["Sí, hoy (jueves) atendemos de 09:00 a 19:00."]),
        # 02:00 UTC on Friday is still Thursday, 23:00, in Santiago: after closing time.
        (
            datetime(2026, 12, 4, 2, 0, tzinfo=UTC),
            "¿atienden hoy?",
            ["Hoy (jueves) ya cerramos (atendemos de 09:00 a 19:00)."],
        ),
        (
            datetime(2026, 12, 6, 9, 0, tzinfo=SANTIAGO),
            "¿pueden venir hoy?",
            ["Hoy (domingo) no atendemos; el siguiente día de atención es el lunes"],
        ),
    ],
)
def test_a_day_asked_about_is_answered_with_its_hours(
    business: BusinessConfig, now: datetime, question: str, expected: list[str]
) -> None:
    reply = Script(OfflineBrain(business, now=at(now))).say(question)
    for value in expected:
        assert value in reply
    assert "Nuestro horario" not in reply  # the day asked, not the whole week


def test_a_day_in_a_statement_or_the_morning_is_not_a_day_question(
    business: BusinessConfig,
) -> None:
    brain = OfflineBrain(business, now=at(THURSDAY_MORNING))
    assert "atendemos" not in Script(brain).say("lo necesito para mañana en la mañana")


@pytest.mark.parametrize("text", ["hola, ¿cómo están?", "¿me pueden ayudar?", "una consulta?"])
def test_small_talk_is_not_passed_on_to_a_human(business: BusinessConfig, text: str) -> None:
    reply = Script(OfflineBrain(business)).say(text)
    assert "asesor" not in reply and reply.endswith("¿Cómo te llamas?")


# -- coverage of the lead's comuna -------------------------------------------------------------


def test_a_comuna_outside_coverage_is_said_once_with_the_surcharge(
    business: BusinessConfig,
) -> None:
    surcharge = _surcharge(business)
    chat = Script(OfflineBrain(business, now=at(THURSDAY_MORNING)))
    chat.say("hola, me llamo Ana", name="Ana")
    chat.say("+56 9 8765 4321", phone="+56987654321")
    chat.say("quiero instalar un split", service="Instalación de aire acondicionado")
    told = chat.say("en Puente Alto", area="Puente Alto")
    assert "Puente Alto está fuera de nuestras comunas" in told and surcharge in told
    assert Extractor.asked_field(told) == "urgency"
    chat.say("¿pueden el jueves?")
    chat.say("¿cuánto cuesta?")
    chat.say("mañana", urgency="mañana")
    chat.say("gracias")
    assert [surcharge in reply for reply in chat.replies].count(True) == 1


def test_a_comuna_inside_coverage_gets_no_notice(business: BusinessConfig) -> None:
    chat = Script(OfflineBrain(business))
    reply = chat.say("soy de Ñuñoa", area="Ñuñoa")
    assert "fuera" not in reply and "recargo" not in reply


# -- never the same block twice in a row -------------------------------------------------------


def test_a_scripted_conversation_never_repeats_a_block_in_consecutive_replies(
    business: BusinessConfig,
) -> None:
    chat = Script(OfflineBrain(business, now=at(THURSDAY_MORNING)))
    chat.say("hola, ¿cuánto cuesta la mantención?", service="Mantención preventiva")
    chat.say("¿y cuánto cobran en general?")
    chat.say("¿cuánto cobran?")
    chat.say("soy Ana, ¿pueden el jueves?", name="Ana")
    chat.say("¿atienden el domingo?")
    chat.say("+56 9 8765 4321", phone="+56987654321")
    chat.say("¿tienen garantía?")
    chat.say("¿tienen garantía?")
    chat.say("Ñuñoa", area="Ñuñoa")
    chat.say("la próxima semana", urgency="próxima semana")
    chat.say("¿puedo pagar con tarjeta?")
    chat.say("gracias")
    chat.say("ok")
    chat.say("ok")
    replies = chat.replies
    for before, after in pairwise(replies):
        assert not sentences(before) & sentences(after), (before, after)
    greeting = "¡Hola! Soy el asistente de Climatización Cordillera."
    assert [greeting in r for r in replies] == [True] + [False] * (len(replies) - 1)
    summary = [r for r in replies if "registré tu solicitud" in r]
    assert len(summary) == 1  # summed up once, when the lead became complete
    assert all(r.endswith("?") for r in replies)  # every reply leads on


def test_the_price_list_is_referenced_not_repeated(business: BusinessConfig) -> None:
    chat = Script(OfflineBrain(business))
    first = chat.say("¿cuánto cobran?")
    again = chat.say("¿cuánto cobran?")
    assert "Precios: Instalación de aire acondicionado: desde $180.000" in first
    assert "Como te comenté, los precios están en mi mensaje anterior." in again
    assert "$" not in again and business.pricing.message not in again
    assert "Precios:" in chat.say("¿y cuánto cobran?")  # not right after it: given again


@pytest.mark.parametrize("formality", ["tú", "usted"])
@pytest.mark.parametrize("field", ["name", "phone", "service", "area", "urgency"])
def test_every_wording_of_a_field_question_asks_for_that_field(formality: str, field: str) -> None:
    wordings = QUESTIONS[formality][field]
    assert len(set(wordings)) >= 2
    for wording in wordings:
        assert Extractor.asked_field(wording) == field, wording
        assert Extractor.asked_field(f"Sí, el jueves atendemos. {wording}") == field


@pytest.mark.parametrize("formality", ["tú", "usted"])
def test_closing_questions_ask_for_no_field(formality: str) -> None:
    assert [Extractor.asked_field(c) for c in CLOSINGS[formality]] == [None, None]


@pytest.mark.parametrize(
    ("field", "settled"),
    [
        ("name", {}),
        ("phone", {"name": "Ana"}),
        ("service", {"name": "Ana", "phone": "+56987654321"}),
        ("area", {"name": "Ana", "phone": "+56987654321", "service": "Mantención preventiva"}),
        (
            "urgency",
            {
                "name": "Ana",
                "phone": "+56987654321",
                "service": "Mantención preventiva",
                "area": "Ñuñoa",
            },
        ),
    ],
)
def test_a_field_asked_again_is_asked_in_other_words(
    business: BusinessConfig, field: str, settled: dict[str, str]
) -> None:
    chat = Script(OfflineBrain(business))
    chat.lead = LeadFields(**settled)
    replies = [chat.say("mmm"), chat.say("no sé"), chat.say("a ver")]
    assert [Extractor.asked_field(r) for r in replies] == [field] * 3
    assert replies[0] != replies[1] != replies[2]


async def test_keeps_answering_after_the_lead_is_complete(business: BusinessConfig) -> None:
    brain = OfflineBrain(business)
    lead = LeadFields("Ana", "+56987654321", None, "Mantención preventiva", "Ñuñoa", "mañana")
    history: list[ChatLine] = []
    replies = []
    for text in ["¿aceptan transferencia?", "gracias", "ok", "ok", "¿tienen garantía?"]:
        history.append(ChatLine("user", text))
        reply = (await brain.reply(BrainTurn("web", tuple(history), lead))).text
        history.append(ChatLine("assistant", reply))
        replies.append(reply)
    assert "Transferencia bancaria" in replies[0]
    assert _qualification(business, "warranty")[0] in replies[4]
    assert not any("registré" in r for r in replies)  # summed up before, not again
    assert all(before != after for before, after in pairwise(replies))
    closings = [r.rsplit(". ", 1)[-1] for r in replies]
    assert all(c in CLOSINGS["tú"] for c in closings)
    assert all(a != b for a, b in pairwise(closings))


# -- formality ---------------------------------------------------------------------------------

_TU_WORDS = re.compile(r"\b(te|tu|tus|puedes|necesitas|estás|llamas|cuéntame|dejas)\b")


def test_usted_is_used_in_every_block(business: BusinessConfig) -> None:
    chat = Script(OfflineBrain(speaking(business, "usted"), now=at(THURSDAY_MORNING)))
    chat.say("hola, ¿cuánto cuesta la mantención?")
    chat.say("¿cuánto cuesta la mantención?")
    chat.say("¿hacen factura?")
    chat.say("Juan", name="Juan")
    chat.say("¿tienen estacionamiento para la camioneta?")
    chat.say("¿tienen estacionamiento para la camioneta?")
    chat.say("98765432", phone="+56998765432")
    chat.say("¿pagan con tarjeta?", service="Mantención preventiva")
    chat.say("Colina", area="Colina")
    chat.say("¿y el jueves?", urgency="jueves")
    chat.say("gracias")
    chat.say("ok")
    replies = chat.replies
    assert "Con gusto le ayudo." in replies[0] and "¿Me indica su nombre" in replies[0]
    assert "como le comenté" in replies[1] and "se lo confirma un asesor" in replies[2]
    assert "Puede pagar con" in replies[7] and "registré su solicitud" in replies[9]
    for reply in replies:
        assert not _TU_WORDS.search(reply.lower()), reply


def test_a_comuna_given_instead_of_the_name_is_said_back_before_asking_again(
    business: BusinessConfig,
) -> None:
    script = Script(OfflineBrain(business, now=at(THURSDAY_MORNING)))
    first = script.say("Hola, ¿hacen mantención de equipos?", service="Mantención preventiva")
    assert Extractor.asked_field(first) == "name"
    again = script.say("Tengo dos equipos en La Florida", area="La Florida")
    assert again.index("atendemos en La Florida") < again.index("?")  # heard, then asked
    assert Extractor.asked_field(again) == "name"
    assert again != first
    # a comuna the person gave earlier is not said back on every turn
    later = script.say("Me llamo Camila", name="Camila")
    assert "La Florida" not in later
