"""The offline brain: deterministic Spanish replies driven by business.json, for a suite with
no API key. It answers what the prospect asked (`offline_answers`), then asks for the lead's
next missing field (name, phone, service, area, urgency).

A reply is a list of blocks (greeting, answers, notice, field question, summary, closing);
a block that was in the previous reply is said in its other wording or left out, so the
prospect never reads the same price list or question twice in a row."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import trio

from sales.business import BusinessConfig, Service, fold
from sales.extract import Extractor, Reading
from sales.fields import settle, sources_from_json
from store.leads import LeadClass, LeadFields

from .brain import BrainReply, BrainTurn, ChatLine, OnChunk
from .offline_answers import Answers, Block, Clock, Voice

FIELD_ORDER = ("name", "phone", "service", "area", "urgency")
CHUNK_WORDS = 3

# Each field's question and another wording for when it was just asked; every wording must
# read as that field to `Extractor.asked_field` (the extractor takes the next short answer
# as that field).
QUESTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "tú": {
        "name": ("¿Cómo te llamas?", "¿Con quién tengo el gusto?"),
        "phone": (
            "¿A qué número de teléfono te podemos contactar?",
            "¿Me dejas un celular o WhatsApp para que un asesor te contacte?",
        ),
        "service": ("¿Qué servicio necesitas?", "Cuéntame, ¿en qué te podemos ayudar?"),
        "area": ("¿En qué comuna estás?", "¿En qué comuna sería el trabajo?"),
        "urgency": ("¿Para cuándo lo necesitas?", "¿Qué tan urgente es?"),
    },
    "usted": {
        "name": ("¿Me indica su nombre, por favor?", "¿Con quién tengo el gusto?"),
        "phone": (
            "¿A qué número de teléfono lo podemos contactar?",
            "¿Me deja un número de celular para que un asesor lo contacte?",
        ),
        "service": ("¿Qué servicio necesita?", "¿Qué servicio le interesa?"),
        "area": ("¿En qué comuna se encuentra?", "¿En qué comuna sería el trabajo?"),
        "urgency": ("¿Para cuándo lo necesita?", "¿Qué tan urgente es para usted?"),
    },
}
# The closing question once the lead is complete, in turns.
CLOSINGS = {
    "tú": ("¿Hay algo más en que te pueda ayudar?", "¿Te puedo ayudar con algo más?"),
    "usted": ("¿Hay algo más en que le pueda ayudar?", "¿Le puedo ayudar con algo más?"),
}

_GREETING = re.compile(
    r"\b(hola|buenas|buenos dias|buen dia|buenas tardes|buenas noches|saludos)\b"
)
# Not questions for the business: no "a human will confirm" for these.
_SMALL_TALK = re.compile(
    r"\b(como (estas|esta|estan)|que tal|hay alguien|me (lees|escuchas)"
    r"|(pueden|puedes|puede|podrian|podria) ayudar|una (consulta|pregunta))\b"
)


def _real_clock() -> datetime:
    return datetime.now(UTC)


class OfflineBrain:
    """Stateless: everything it knows comes from the business config, the history and the
    clock (`now`, timezone-aware; injectable so that "¿atienden hoy?" is testable)."""

    def __init__(self, business: BusinessConfig, now: Clock = _real_clock) -> None:
        self.business = business
        formality = business.conversationStyle.formality
        self.questions = QUESTIONS[formality]
        self.closings = CLOSINGS[formality]
        self.voice = Voice.of(formality)
        self.extractor = Extractor(business)
        self.answers = Answers(business, self.extractor, now)

    async def reply(self, turn: BrainTurn, on_chunk: OnChunk | None = None) -> BrainReply:
        lines = _since_last_reply(turn.history)
        found = self.extractor.read_turn(lines)
        lead = settle(turn.known, sources_from_json(turn.known_sources or {}), found.findings)[0]
        text = self.compose(turn.history, lead, turn.known)
        if on_chunk is not None:
            words = text.split(" ")
            for i in range(0, len(words), CHUNK_WORDS):
                piece = " ".join(words[i : i + CHUNK_WORDS])
                await on_chunk(piece if i == 0 else " " + piece)
        else:
            await trio.lowlevel.checkpoint()
        return BrainReply(
            text=text,
            lead=lead,
            classification=classify(lead, turn.history),
            source="offline",
            read=Reading(lines, found),  # the turn's classification need not read them again
        )

    # -- understanding -----------------------------------------------------------------------

    def extract(
        self,
        history: tuple[ChatLine, ...],
        known: LeadFields,
        known_sources: dict[str, Any] | None = None,
    ) -> LeadFields:
        """What the lead is after the user's new message(s), settled by the classifier's own
        rules (a stray word never replaces what the person gave; a correction does).

        Earlier turns are already in `known` (the stored lead), so only the lines since the
        last reply are read."""
        findings = self.extractor.read_turn(_since_last_reply(history)).findings
        return settle(known, sources_from_json(known_sources or {}), findings)[0]

    def match_service(self, folded: str) -> Service | None:
        return self.extractor.service(" ".join(re.findall(r"[a-z0-9ñ]+", folded)))

    # -- answering ---------------------------------------------------------------------------

    def compose(
        self, history: tuple[ChatLine, ...], lead: LeadFields, known: LeadFields | None = None
    ) -> str:
        """Greet once, answer what was asked, say once that the lead's comuna is outside
        coverage, then ask for the next missing field; once the lead is complete, sum it up
        once and keep answering. A block of the previous reply is not sent again as it was."""
        said = [line.content for line in history if line.role == "assistant"]
        start = max(
            (i + 1 for i, line in enumerate(history) if line.role == "assistant"), default=0
        )
        asked = " ".join(line.content for line in history[start:] if line.role == "user")
        blocks: list[Block] = []
        if not said or _GREETING.search(fold(asked)):
            blocks.append(Block.of(self._greeting(), once=True))
        answers = self.answers.to(asked)
        if not answers and self._unanswered(asked, lead, known):
            answers = [self.answers.unknown()]
        blocks += answers
        if lead.area and not self.answers.covers(lead.area):
            blocks.append(self.answers.outside(lead.area, once=True))
        elif lead.area and known is not None and not known.area and not answers:
            # Given unasked (a comuna where the name was asked): said back before asking again.
            blocks.append(self.answers.place(lead.area))
        blocks += self._next_step(lead, known, answered=bool(answers))
        return " ".join(fresh(blocks, said))

    def _unanswered(self, asked: str, lead: LeadFields, known: LeadFields | None) -> bool:
        """A question we have no answer for (not small talk, not a field being given)."""
        folded = fold(asked)
        return (
            "?" in asked
            and len(folded.split()) >= 3
            and not _SMALL_TALK.search(folded)
            and known is not None
            and lead == known
        )

    def _next_step(
        self, lead: LeadFields, known: LeadFields | None, *, answered: bool
    ) -> list[Block]:
        closing = Block.of(*self.closings)
        missing = next((f for f in FIELD_ORDER if not getattr(lead, f)), None)
        if missing:
            thanks = [Block.of(f"Gracias, {_first(lead.name)}.")]
            new_name = lead.name and not (known and known.name)
            thank = new_name and missing == "phone" and not answered
            return (thanks if thank else []) + [Block.of(*self.questions[missing])]
        if known is None or any(not getattr(known, f) for f in FIELD_ORDER):
            return [Block.of(self._summary(lead), *self._noted(lead)), closing]
        if answered:
            return [closing]
        return [Block.of(*self._noted(lead)), closing]

    def _greeting(self) -> str:
        b = self.business.business
        return f"¡Hola! Soy el asistente de {b.name}. Con gusto {self.voice.te} ayudo."

    def _summary(self, lead: LeadFields) -> str:
        v = self.voice
        return (
            f"Perfecto, {_first(lead.name)}: registré {v.tu} solicitud de {lead.service} en "
            f"{lead.area} ({lead.urgency}). Un asesor {v.lo} contactará al {lead.phone} a la "
            "brevedad."
        )

    def _noted(self, lead: LeadFields) -> tuple[str, str]:
        v = self.voice
        return (
            f"Con gusto. Ya tenemos {v.tu} solicitud de {lead.service} y un asesor {v.lo} "
            f"contactará al {lead.phone}.",
            f"{_capital(v.tu)} solicitud de {lead.service} está registrada; "
            f"{v.lo} contactaremos al {lead.phone}.",
        )


def fresh(blocks: list[Block], said: list[str]) -> list[str]:
    """The text of each block: its first wording not in the previous reply nor already in
    this one; a block said `once` that any earlier reply holds is left out."""
    previous = said[-1] if said else ""
    chosen: list[str] = []
    for block in blocks:
        if block.once and any(w in line for line in said for w in block.wordings):
            continue
        text = next((w for w in block.wordings if w not in previous and w not in chosen), None)
        if text is not None:
            chosen.append(text)
    return chosen


def _first(name: str | None) -> str:
    return (name or "").split(" ")[0]


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _since_last_reply(history: tuple[ChatLine, ...]) -> tuple[tuple[str, str], ...]:
    """(role, text) from the last assistant line on: the lines of this turn, and the
    question they answer."""
    start = max((i for i, line in enumerate(history) if line.role == "assistant"), default=0)
    return tuple((line.role, line.content) for line in history[start:])


def classify(lead: LeadFields, history: tuple[ChatLine, ...]) -> LeadClass:
    """The offline brain's own rough estimate (the turn's classification decides): hot with
    contact plus a service or an urgent need, warm with any data, cold otherwise."""
    urgent = lead.urgency in {"urgente", "hoy", "inmediata", "lo antes posible"}
    contact = bool(lead.name and lead.phone)
    if contact and (lead.service or urgent):
        return "caliente"
    if lead.any() or any(len(line.content) > 80 for line in history if line.role == "user"):
        return "tibio"
    return "frio"
