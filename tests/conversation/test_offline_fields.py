"""What the offline brain holds as the lead's fields between turns: a stray word never becomes
or replaces a field, a correction does (the classifier's own rules, issue 11)."""

from __future__ import annotations

from actors.conversation.brain import ChatLine
from actors.conversation.offline import OfflineBrain
from store.leads import LeadFields
from tests.sales.harness import example_business

BRAIN = OfflineBrain(example_business())
INSTALL = "Instalación de aire acondicionado"


def _after(known: LeadFields, sources: dict[str, object], *lines: tuple[str, str]) -> LeadFields:
    history = tuple(ChatLine(role, text) for role, text in lines)
    return BRAIN.extract(history, known, sources)  # type: ignore[arg-type]


def test_a_question_or_a_courtesy_is_not_a_name_nor_a_comuna() -> None:
    asked_name = ("assistant", "¿Cómo te llamas?")
    assert _after(LeadFields(), {}, asked_name, ("user", "¿Atienden en Maipú?")).name is None
    assert _after(LeadFields(), {}, asked_name, ("user", "buenas tardes")).name is None
    asked_area = ("assistant", "¿En qué comuna estás?")
    assert _after(LeadFields(), {}, asked_area, ("user", "gracias")).area is None
    assert _after(LeadFields(), {}, asked_area, ("user", "Puente Alto")).area == "Puente Alto"


def test_a_confirmed_service_changes_only_when_the_prospect_changes_it() -> None:
    known = LeadFields(service=INSTALL)
    typed = {"service": {"how": "typed", "message": 1, "conversation": 1}}
    heat = ("user", "sí, lo necesito pronto porque hace mucho calor")
    assert _after(known, typed, ("assistant", "¿Para cuándo?"), heat).service == INSTALL
    change = ("user", "mejor que sea mantención, no instalación")
    got = _after(known, typed, ("assistant", "¿Algo más?"), change).service
    assert got == "Mantención preventiva"


def test_an_explicit_correction_replaces_a_name_and_a_phone() -> None:
    known = LeadFields(name="Javi", phone="+56933221109")
    typed = {
        "name": {"how": "typed", "message": 1, "conversation": 1},
        "phone": {"how": "typed", "message": 1, "conversation": 1},
    }
    fix = ("user", "no, me llamo Javiera. Y mi número es otro: 9 1234 5670")
    after = _after(known, typed, ("assistant", "¿En qué comuna estás?"), fix)
    assert (after.name, after.phone) == ("Javiera", "+56912345670")
    # Another phone typed without a correction stays a mention, not a replacement.
    other = ("user", "si no contesto, prueba al 9 5555 4321")
    assert _after(known, typed, ("assistant", "Gracias."), other).phone == "+56933221109"


async def test_a_price_question_about_the_services_lists_them_once() -> None:
    from actors.conversation.brain import BrainTurn

    turn = BrainTurn(channel="web", history=(ChatLine("user", "¿cuánto cuestan sus servicios?"),))
    text = (await BRAIN.reply(turn)).text
    assert "Precios:" in text and "Ofrecemos" not in text  # a new user saw both lists
    assert text.count("Mantención preventiva") == 1
