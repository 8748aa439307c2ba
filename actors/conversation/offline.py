"""The offline brain: deterministic Spanish replies driven by business.json, for a suite with
no API key. It answers about services, prices, schedule, coverage and payment, and asks for
the lead's missing fields one at a time (name, phone, service, area, urgency)."""

from __future__ import annotations

import re

import trio

from actors.classifier.extract import Extractor
from store.leads import LeadFields
from supervisor.business import BusinessConfig, Service, fold

from .brain import BrainReply, BrainTurn, ChatLine, OnChunk
from .prompt import schedule_lines

FIELD_ORDER = ("name", "phone", "service", "area", "urgency")
CHUNK_WORDS = 3

QUESTIONS = {
    "tú": {
        "name": "¿Cómo te llamas?",
        "phone": "¿A qué número de teléfono te podemos contactar?",
        "service": "¿Qué servicio necesitas?",
        "area": "¿En qué comuna estás?",
        "urgency": "¿Para cuándo lo necesitas?",
    },
    "usted": {
        "name": "¿Me indica su nombre, por favor?",
        "phone": "¿A qué número de teléfono lo podemos contactar?",
        "service": "¿Qué servicio necesita?",
        "area": "¿En qué comuna se encuentra?",
        "urgency": "¿Para cuándo lo necesita?",
    },
}

_GREETING = re.compile(
    r"\b(hola|buenas|buenos dias|buen dia|buenas tardes|buenas noches|saludos)\b"
)
_INTENTS: dict[str, re.Pattern[str]] = {
    "price": re.compile(
        r"\b(precio|precios|cuanto|cuesta|cuestan|valor|valores|cobran|tarifa|"
        r"costo|presupuesto|cotiza\w*)\b"
    ),
    "services": re.compile(r"\b(servicios|que hacen|ofrecen|que servicio)\b"),
    "schedule": re.compile(r"\b(horario|horarios|abren|cierran|a que hora|dias de atencion)\b"),
    "coverage": re.compile(r"\b(cobertura|comunas|zonas|llegan|van a|sector|atienden en|cubren)\b"),
    "payment": re.compile(r"\b(pago|pagar|pagos|tarjeta|transferencia|efectivo|credito|debito)\b"),
}


class OfflineBrain:
    """Stateless: everything it knows comes from the business config and the history."""

    def __init__(self, business: BusinessConfig) -> None:
        self.business = business
        self.questions = QUESTIONS[business.conversationStyle.formality]
        self.extractor = Extractor(business)
        self._places = [
            (place, re.compile(rf"\b{re.escape(fold(place))}\b"))
            for place in (*business.coverage.communes, *business.coverage.regions)
        ]

    async def reply(self, turn: BrainTurn, on_chunk: OnChunk | None = None) -> BrainReply:
        lead = self.extract(turn.history, turn.known)
        text = self.compose(turn.history, lead, turn.known)
        if on_chunk is not None:
            words = text.split(" ")
            for i in range(0, len(words), CHUNK_WORDS):
                piece = " ".join(words[i : i + CHUNK_WORDS])
                await on_chunk(piece if i == 0 else " " + piece)
        else:
            await trio.lowlevel.checkpoint()
        return BrainReply(
            text=text, lead=lead, classification=classify(lead, turn.history), source="offline"
        )

    # -- understanding -----------------------------------------------------------------------

    def extract(self, history: tuple[ChatLine, ...], known: LeadFields) -> LeadFields:
        """What the user's new message(s) add to what was already known.

        Earlier turns are already in `known` (the stored lead), so only the lines since the
        last reply are read (the classifier's extractor, the same rules it scores with)."""
        start = max((i for i, line in enumerate(history) if line.role == "assistant"), default=0)
        lines = [(line.role, line.content) for line in history[start:]]
        return self.extractor.read_turn(lines).fields.merged_over(known)

    def match_service(self, folded: str) -> Service | None:
        return self.extractor.service(" ".join(re.findall(r"[a-z0-9ñ]+", folded)))

    def _covered_place(self, folded: str) -> str | None:
        for place, pattern in self._places:
            if pattern.search(folded):
                return place
        return None

    # -- answering ---------------------------------------------------------------------------

    def compose(
        self, history: tuple[ChatLine, ...], lead: LeadFields, known: LeadFields | None = None
    ) -> str:
        """Greet, answer what was asked, then ask for the next missing field; once the lead
        is complete, sum it up once and keep answering (never a fixed "already saved")."""
        last = next((line.content for line in reversed(history) if line.role == "user"), "")
        folded = fold(last)
        first_turn = not any(line.role == "assistant" for line in history)
        parts: list[str] = []
        if first_turn or _GREETING.search(folded):
            parts.append(self._greeting())
        for intent, pattern in _INTENTS.items():
            if pattern.search(folded):
                parts.append(self._answer(intent, folded))
        missing = next((f for f in FIELD_ORDER if not getattr(lead, f)), None)
        if missing:
            if lead.name and missing == "phone" and not parts:
                parts.append(f"Gracias, {lead.name.split()[0]}.")
            parts.append(self.questions[missing])
        elif known is None or any(not getattr(known, f) for f in FIELD_ORDER):
            parts.append(self._summary(lead))
        elif parts:
            parts.append(self._anything_else())
        else:
            parts.append(self._already_noted(lead))
        return " ".join(parts)

    def _anything_else(self) -> str:
        you = "te" if self.business.conversationStyle.formality == "tú" else "le"
        return f"¿Hay algo más en que {you} pueda ayudar?"

    def _already_noted(self, lead: LeadFields) -> str:
        usted = self.business.conversationStyle.formality == "usted"
        contact = f" al {lead.phone}" if lead.phone else ""
        return (
            f"Con gusto. Ya tenemos su solicitud de {lead.service} y un asesor lo contactará"
            f"{contact}. ¿Hay algo más en que le pueda ayudar?"
            if usted
            else f"Con gusto. Ya tenemos tu solicitud de {lead.service} y un asesor te contactará"
            f"{contact}. ¿Hay algo más en que te pueda ayudar?"
        )

    def _greeting(self) -> str:
        b = self.business.business
        you = "te" if self.business.conversationStyle.formality == "tú" else "le"
        return f"¡Hola! Soy el asistente de {b.name}. Con gusto {you} ayudo."

    def _answer(self, intent: str, folded: str) -> str:
        business = self.business
        if intent == "services":
            names = ", ".join(s.name for s in business.services)
            return f"Ofrecemos: {names}."
        if intent == "price":
            if not business.pricing.showPrices:
                return (
                    "Los precios se cotizan según cada caso; un asesor te enviará una cotización."
                )
            chosen = self.match_service(folded)
            services = [chosen] if chosen else business.services
            priced = [f"{s.name}: {s.price}" for s in services if s.price not in (None, "")]
            extra = f" {business.pricing.message}" if business.pricing.message else ""
            if priced:
                return _sentence("Precios: " + "; ".join(priced) + "." + extra)
            return _sentence(
                "El precio depende del trabajo; un asesor te enviará una cotización." + extra
            )
        if intent == "schedule":
            return "Nuestro horario: " + "; ".join(schedule_lines(business)) + "."
        if intent == "coverage":
            named = self._covered_place(folded)
            if named:
                return f"Sí, atendemos en {named}."
            fees = business.coverage.additionalFees
            extra = f" {fees.message}" if fees and fees.enabled and fees.message else ""
            return _sentence(
                "Atendemos en "
                + ", ".join(business.coverage.communes)
                + f" ({', '.join(business.coverage.regions)})."
                + extra
            )
        methods = business.pricing.paymentMethods
        return (
            ("Puedes pagar con: " + ", ".join(methods) + ".")
            if methods
            else "Un asesor te confirmará los medios de pago."
        )

    def _summary(self, lead: LeadFields) -> str:
        return (
            f"Perfecto, {(lead.name or '').split()[0]}: registré tu solicitud de "
            f"{lead.service} en {lead.area} ({lead.urgency}). Un asesor te contactará "
            f"al {lead.phone} a la brevedad. ¿Hay algo más en que te pueda ayudar?"
        )


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def classify(lead: LeadFields, history: tuple[ChatLine, ...]) -> str:
    """The offline brain's own rough estimate (the classifier actor decides): hot with
    contact plus a service or an urgent need, warm with any data, cold otherwise."""
    urgent = lead.urgency in {"urgente", "hoy", "inmediata", "lo antes posible"}
    contact = bool(lead.name and lead.phone)
    if contact and (lead.service or urgent):
        return "caliente"
    if lead.any() or any(len(line.content) > 80 for line in history if line.role == "user"):
        return "tibio"
    return "frio"
