"""The offline brain: deterministic Spanish replies driven by business.json, for a suite with
no API key. It answers about services, prices, schedule, coverage and payment, and asks for
the lead's missing fields one at a time (name, phone, service, area, urgency)."""

from __future__ import annotations

import re

import trio

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
_PHONE = re.compile(r"(?<![\w+])(\+?\d[\d\s().-]{6,}\d)(?!\w)")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_NAME_PHRASE = re.compile(
    r"\b(?:me llamo|mi nombre es|soy)\s+([a-záéíóúñü]+(?:\s+[a-záéíóúñü]+){0,2})", re.IGNORECASE
)
_URGENCY_WORDS = (
    ("urgente", "urgente"),
    ("hoy", "hoy"),
    ("ahora", "inmediata"),
    ("inmediat", "inmediata"),
    ("lo antes posible", "lo antes posible"),
    ("no funciona", "urgente"),
    ("manana", "mañana"),
    ("esta semana", "esta semana"),
    ("proxima semana", "próxima semana"),
    ("este mes", "este mes"),
    ("sin apuro", "sin apuro"),
)
_NOT_NAMES = {"hola", "si", "no", "gracias", "ok", "bueno", "buenas", "quiero", "necesito"}
_STOPWORDS = {"de", "del", "la", "el", "y", "en", "para", "con", "por", "los", "las", "un", "una"}


class OfflineBrain:
    """Stateless: everything it knows comes from the business config and the history."""

    def __init__(self, business: BusinessConfig) -> None:
        self.business = business
        self.questions = QUESTIONS[business.conversationStyle.formality]
        # Folded once here, not on every message.
        self._service_keys = [
            (
                service,
                {
                    w
                    for w in re.findall(r"[a-z0-9]+", fold(f"{service.name} {service.id}"))
                    if len(w) >= 4 and w not in _STOPWORDS
                },
            )
            for service in business.services
        ]
        self._places = [
            (place, re.compile(rf"\b{re.escape(fold(place))}\b"))
            for place in (*business.coverage.communes, *business.coverage.regions)
        ]

    async def reply(self, turn: BrainTurn, on_chunk: OnChunk | None = None) -> BrainReply:
        lead = self.extract(turn.history, turn.known)
        text = self.compose(turn.history, lead)
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
        last reply are read, with that reply telling which field we had asked for."""
        found = known
        asked: str | None = None
        start = max((i for i, line in enumerate(history) if line.role == "assistant"), default=0)
        for line in history[start:]:
            if line.role == "assistant":
                asked = self._asked_field(line.content)
                continue
            found = self._read_user_line(line.content, asked).merged_over(found)
            asked = None
        return found

    def _asked_field(self, text: str) -> str | None:
        for name, question in self.questions.items():
            if text.rstrip().endswith(question):
                return name
        return None

    def _read_user_line(self, text: str, asked: str | None) -> LeadFields:
        folded = fold(text)
        phone = _phone(text)
        email_match = _EMAIL.search(text)
        name = _name(text, asked, has_other_data=bool(phone or email_match))
        service = self.match_service(folded)
        area = self._area(text, folded, asked)
        urgency = _urgency(folded) or (text.strip()[:80] if asked == "urgency" else None)
        return LeadFields(
            name=name,
            phone=phone,
            email=email_match.group(0) if email_match else None,
            service=service.name if service else None,
            area=area,
            urgency=urgency,
        )

    def match_service(self, folded: str) -> Service | None:
        words = set(re.findall(r"[a-z0-9]+", folded))
        best: tuple[int, Service] | None = None
        for service, keys in self._service_keys:
            # Stems tolerate inflection: "instalar" finds "instalación".
            score = sum(
                1 for k in keys if k in words or any(w[:6] == k[:6] for w in words if len(w) >= 6)
            )
            if score and (best is None or score > best[0]):
                best = (score, service)
        return best[1] if best else None

    def _covered_place(self, folded: str) -> str | None:
        for place, pattern in self._places:
            if pattern.search(folded):
                return place
        return None

    def _area(self, text: str, folded: str, asked: str | None) -> str | None:
        covered = self._covered_place(folded)
        if covered:
            return covered
        if asked == "area" and 0 < len(text.split()) <= 4 and not _PHONE.search(text):
            return text.strip().strip(".!").title()
        return None

    # -- answering ---------------------------------------------------------------------------

    def compose(self, history: tuple[ChatLine, ...], lead: LeadFields) -> str:
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
        else:
            parts.append(self._summary(lead))
        return " ".join(parts)

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


def _phone(text: str) -> str | None:
    for match in _PHONE.finditer(text):
        digits = re.sub(r"\D", "", match.group(1))
        if 8 <= len(digits) <= 15:
            return ("+" if match.group(1).startswith("+") else "") + digits
    return None


def _name(text: str, asked: str | None, *, has_other_data: bool) -> str | None:
    phrase = _NAME_PHRASE.search(text)
    if phrase:
        words = [w for w in phrase.group(1).split() if fold(w) not in _STOPWORDS]
        if words and fold(words[0]) not in _NOT_NAMES:
            return " ".join(w.capitalize() for w in words[:2])
    if asked == "name" and not has_other_data:
        words = re.findall(r"[A-Za-zÁÉÍÓÚÑÜáéíóúñü]+", text)
        if 1 <= len(words) <= 3 and fold(words[0]) not in _NOT_NAMES:
            return " ".join(w.capitalize() for w in words)
    return None


_URGENCY = [(re.compile(rf"\b{needle}"), label) for needle, label in _URGENCY_WORDS]


def _urgency(folded: str) -> str | None:
    for pattern, label in _URGENCY:
        if pattern.search(folded):
            return label
    return None


def classify(lead: LeadFields, history: tuple[ChatLine, ...]) -> str:
    """A first estimate until the classifier actor (its own issue) takes over: hot with
    contact plus a service or an urgent need, warm with any data, cold otherwise."""
    urgent = lead.urgency in {"urgente", "hoy", "inmediata", "lo antes posible"}
    contact = bool(lead.name and lead.phone)
    if contact and (lead.service or urgent):
        return "caliente"
    if lead.any() or any(len(line.content) > 80 for line in history if line.role == "user"):
        return "tibio"
    return "frio"
