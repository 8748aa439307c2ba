"""Properties over arbitrary text: extraction never raises, phones are always E.164."""

from __future__ import annotations

import re

import phonenumbers
from hypothesis import given, settings
from hypothesis import strategies as st

from sales.extract import Extractor
from sales.scoring import Scorer
from sales.text import OptOut, normalize

from .harness import example_business

BUSINESS = example_business()
EXTRACTOR = Extractor(BUSINESS)
SCORER = Scorer(BUSINESS.leadRules)
OPT_OUT = OptOut(BUSINESS.leadRules.optOutPhrases)
E164 = re.compile(r"^\+[1-9]\d{6,14}$")

# Arbitrary Unicode, plus text that looks like what people send (digits, +, accents, @).
phoneish = st.text(alphabet="0123456789 +-().", min_size=6, max_size=24)
spanish = st.text(alphabet="abcdeéfghiíjklmnñoópqrstuúvwxyz ÁÉÍÓÚÑ¿?¡!.,@$", max_size=80)
texts = st.one_of(
    st.text(max_size=300),
    st.builds(lambda a, b, c: f"{a} {b} {c}", spanish, phoneish, spanish),
)


# Derandomized: the same 1,000 examples every run, so CI never turns red by chance;
# 15,000 random ones passed when this was written (derandomize=False to hunt more).
@settings(max_examples=1000, deadline=None, derandomize=True)
@given(texts)
def test_extraction_never_raises_and_phones_are_e164(text: str) -> None:
    found = EXTRACTOR.read(text)
    phone = found.fields.phone
    if phone is not None:
        assert E164.match(phone), phone
        assert phonenumbers.is_possible_number(phonenumbers.parse(phone, None))
    for asked in ("name", "phone", "area", "urgency", None):
        EXTRACTOR.read(text, asked)
    signals = SCORER.signals([normalize(text)])
    verdict = SCORER.verdict(found.fields, signals, budget=found.budget)
    assert verdict.classification in ("frio", "tibio", "caliente")
    assert 0 <= verdict.score <= 100
    OPT_OUT(text)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.sampled_from(["user", "assistant"]), st.text(max_size=120))))
def test_reading_any_conversation_never_raises(lines: list[tuple[str, str]]) -> None:
    found = EXTRACTOR.read_turn(lines)
    assert found.fields.phone is None or E164.match(found.fields.phone)


def test_opt_out_phrases() -> None:
    assert OPT_OUT("STOP") and OPT_OUT("Baja.") and OPT_OUT("por favor no me escriban más")
    assert not OPT_OUT("la temperatura baja mucho en la noche")
    assert not OPT_OUT("no pares, stop motion es mi hobby")
