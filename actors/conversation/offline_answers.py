"""What a prospect asks the offline brain, answered from business.json.

A topic is a pattern over the message, folded and with typos of the longer keywords fixed,
and a method that turns the config into reply blocks. Days ("¿pueden el jueves?", "mañana")
are read apart: they need the business's clock. Anything the config does not say ("¿hacen
factura?") is left to a human, said so."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from rapidfuzz import fuzz, process

from sales.business import WEEKDAYS, WEEKDAYS_ES, BusinessConfig, Service
from sales.extract import Extractor
from sales.text import normalize

from .prompt import schedule_lines

Clock = Callable[[], datetime]  # timezone-aware "now"
FUZZY_KEYWORD = 85  # rapidfuzz ratio for a typo in a long keyword ("horaio", "garantai")
TYPO_MIN_LETTERS = 6  # shorter words are too easily another word ("vienes" / "viernes")

# Long keywords whose typos are fixed before matching: only words that no common word is
# close to ("servicios" is not here: "servicio" would become it).
_KEYWORDS = (
    "horario horarios garantia garantias cobertura transferencia certificado certificados"
    " certificacion experiencia feriado feriados miercoles factura facturas"
).split()


@dataclass(frozen=True)
class Block:
    """One part of a reply. The first wording not already in the previous reply is sent; with
    none left, the block is left out. A block said `once` is never said again."""

    wordings: tuple[str, ...]
    once: bool = False

    @classmethod
    def of(cls, *wordings: str, once: bool = False) -> Block:
        return cls(tuple(wordings), once)


@dataclass(frozen=True)
class Voice:
    """The words that change with the business's formality (tú / usted)."""

    te: str  # "te" / "le": "un asesor te enviará"
    te_lo: str  # "te lo" / "se lo": "te lo confirma un asesor"
    lo: str  # "te" / "lo": "un asesor te contactará"
    tu: str  # "tu" / "su"
    puedes: str  # "Puedes" / "Puede"

    @classmethod
    def of(cls, formality: str) -> Voice:
        if formality == "usted":
            return cls("le", "se lo", "lo", "su", "Puede")
        return cls("te", "te lo", "te", "tu", "Puedes")

    def recalled(self, text: str) -> str:
        """A short answer said again: "Sí, atendemos en Ñuñoa, como te comenté." """
        return f"{text.rstrip('.')}, como {self.te} comenté."


def _topic(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"\b(?:{pattern})\b")


_PRICE = _topic(
    r"precios?|presios?|valor(?:es)?|tarifas?|costos?|cuesta|cuestan|cobran|presupuesto"
    r"|cotiza\w*|cuanto (?:me )?(?:sale|salen|cuesta|cuestan|cobran|cobra|vale|valen|es|seria)"
    r"|en cuanto (?:me )?sale|cuanto (?:tengo|hay) que pagar"
)
_SERVICES = _topic(
    r"servicios|que (?:hacen|ofrecen|venden)|ofrecen|que servicio|que trabajos|a que se dedican"
    r"|incluye|consiste"
)
_DURATION = _topic(
    r"cuanto (?:se )?(?:demora|demoran|tarda|tardan|dura|duran|tiempo)|demora|demoran|tardan"
    r"|duracion|tiempo estimado|cuantas horas"
)
_HOURS = _topic(
    r"horarios?|orarios?|a que hora|hasta que hora|desde que hora|abren|cierran|dias de atencion"
    r"|que dias|cuando (?:atienden|abren|trabajan|pueden)"
)
_EMERGENCY = _topic(r"urgencias|emergencias|servicio de (?:urgencia|emergencia)")
_COVERAGE = _topic(
    r"cobertura|comunas|zonas?|sectores|llegan a|llegan hasta|atienden en|cubren|trabajan en"
    r"|vienen a|hasta donde"
)
_PAYMENT = _topic(
    r"pagos?|pagar|tarjetas?|transferencias?|efectivo|credito|debito|cuotas|webpay"
    r"|medios? de pago|formas? de pago"
)
_INVOICE = _topic(r"boletas?|facturas?|facturan")
_WARRANTY = _topic(r"garantias?|garantizan|garantizado")
_CREDENTIALS = _topic(
    r"certificad\w*|certificacion\w*|sec|experiencia|trayectoria|acreditad\w*|autorizad\w*"
    r"|cuantos anos"
)
_HOLIDAYS = _topic(r"feriados?|festivos?|fiestas patrias|navidad|ano nuevo")

# Days: "mañana" but not "en la mañana"; a day counts only in a question about it.
_DAY = re.compile(
    r"\b(pasado manana|fin(?:es)? de semana|finde|lunes|martes|miercoles|jueves|viernes"
    r"|sabados?|domingos?|hoy|(?<!la )manana)\b"
)
_ASKING = _topic(
    r"pueden|puede|podrian|podria|atienden|atiende|trabajan|trabaja|abren|abre|vienen|viene"
    r"|hay|disponibles?|disponibilidad|alcanzan|se puede"
)
_WEEKDAY_WORDS = {normalize(WEEKDAYS_ES[day]): day for day in WEEKDAYS}  # "sabado": "saturday"
_RELATIVE_DAYS = {"hoy": 0, "manana": 1, "pasado manana": 2}
_NATIONWIDE = _topic(r"nacional|todo chile|todo el pais")


def fix_typos(normalized: str) -> str:
    """Long words a letter or two away from a keyword become that keyword."""
    fixed = []
    for word in normalized.split():
        if len(word) >= TYPO_MIN_LETTERS and word not in _KEYWORDS:
            hit = process.extractOne(word, _KEYWORDS, scorer=fuzz.ratio, score_cutoff=FUZZY_KEYWORD)
            word = hit[0] if hit else word
        fixed.append(word)
    return " ".join(fixed)


class Answers:
    """The business's answers to one message; `to` returns them as reply blocks."""

    def __init__(self, business: BusinessConfig, extractor: Extractor, now: Clock) -> None:
        self.business = business
        self.extractor = extractor
        self.now = now
        self.voice = Voice.of(business.conversationStyle.formality)
        self.zone = ZoneInfo(business.schedule.timezone)
        coverage = business.coverage
        self._covered = [normalize(p) for p in (*coverage.communes, *coverage.regions)]
        self._nationwide = any(_NATIONWIDE.search(p) for p in self._covered)
        self._topics: tuple[tuple[re.Pattern[str], Callable[[str], list[Block]]], ...] = (
            (_PRICE, self.price),
            (_SERVICES, self.services),
            (_DURATION, self.duration),
            (_EMERGENCY, self.emergency),
            (_COVERAGE, self.coverage),
            (_PAYMENT, self.payment),
            (_INVOICE, self.invoice),
            (_WARRANTY, self.warranty),
            (_CREDENTIALS, self.credentials),
            (_HOLIDAYS, self.holidays),
        )

    def to(self, text: str) -> list[Block]:
        """Every topic the message asks about, in the table's order; a named day takes the
        place of the whole week's hours; a comuna named in a question is a coverage one."""
        normalized = normalize(text)
        keywords = fix_typos(normalized)
        asking = "?" in text or bool(_ASKING.search(keywords))
        days = self.days(keywords) if asking else []
        blocks: list[Block] = []
        for pattern, answer in self._topics:
            # A price list already names every service: "¿cuánto cuestan sus servicios?"
            # gets it once, not a second list of the same names.
            listed = answer == self.services and _PRICE.search(keywords)
            if pattern.search(keywords) and not (listed and not self.extractor.service(normalized)):
                blocks += answer(normalized)
        if _HOURS.search(keywords) and not days:
            blocks += self.hours()
        if "?" in text and not _COVERAGE.search(keywords):
            place = self.extractor.area(normalized)
            blocks += [self.place(place)] if place else []
        return blocks + days

    def unknown(self) -> Block:
        """A question none of the topics knows: a human answers it."""
        v = self.voice
        return Block.of(f"Eso {v.te_lo} confirma un asesor.", f"Un asesor {v.te} confirmará eso.")

    # -- topics --------------------------------------------------------------------------------

    def price(self, normalized: str) -> list[Block]:
        """The named service's price, else the list; a quote when prices are not shown."""
        pricing, v = self.business.pricing, self.voice
        note = [Block.of(_sentence(pricing.message))] if pricing.message else []
        quote = f"un asesor {v.te} enviará una cotización"
        named = self.extractor.service(normalized)
        priced = [s for s in self.business.services if s.price not in (None, "")]
        if not pricing.showPrices or not priced:
            text = f"El precio depende de cada caso; {quote}."
            return [Block.of(text, v.recalled(text)), *note]
        if named is not None:
            text = (
                f"{named.name}: {_money(named.price)}."
                if named in priced
                else f"El precio de {named.name} depende del trabajo; {quote}."
            )
            return [Block.of(text, v.recalled(text)), *note]
        listed = "; ".join(
            f"{s.name}: {_money(s.price) if s in priced else 'según cotización'}"
            for s in self.business.services
        )
        recalled = f"Como {v.te} comenté, los precios están en mi mensaje anterior."
        return [Block.of(f"Precios: {listed}.", recalled), *note]

    def services(self, normalized: str) -> list[Block]:
        named = self.extractor.service(normalized)
        if named is not None and named.description:
            text = f"{named.name}: {_sentence(named.description)}"
            return [Block.of(text, self.voice.recalled(text))]
        names = ", ".join(s.name for s in self.business.services)
        recalled = f"Como {self.voice.te} comenté, nuestros servicios están en mi mensaje anterior."
        return [Block.of(f"Ofrecemos: {names}.", recalled)]

    def duration(self, normalized: str) -> list[Block]:
        named = self.extractor.service(normalized)
        services: list[Service] = [named] if named else self.business.services
        timed = [f"{s.name}: {s.estimatedTime}" for s in services if s.estimatedTime]
        if not timed:
            return [self._ask_a_human("El tiempo de cada trabajo")]
        text = "Tiempo estimado: " + "; ".join(timed) + "."
        return [Block.of(text, self.voice.recalled(text))]

    def hours(self) -> list[Block]:
        recalled = f"Como {self.voice.te} comenté, el horario está en mi mensaje anterior."
        week = "; ".join(schedule_lines(self.business))  # "lunes: 09:00 a 19:00; ..."
        return [Block.of(f"Nuestro horario: {week}.", recalled), *self._urgent(False)]

    def emergency(self, _normalized: str) -> list[Block]:
        return self._urgent(True)

    def _urgent(self, asked: bool) -> list[Block]:
        service = self.business.schedule.emergencyService or {}
        if not service.get("enabled"):
            return [Block.of("Por ahora no tenemos servicio de urgencias.")] if asked else []
        fee = " (con recargo)" if service.get("additionalFee") else ""
        hours = service.get("hours")
        text = f"Servicio de urgencias: {hours}{fee}." if hours else f"Atendemos urgencias{fee}."
        return [Block.of(text)]

    def coverage(self, normalized: str) -> list[Block]:
        place = self.extractor.area(normalized)
        if place:
            return [self.place(place)]
        coverage = self.business.coverage
        regions = f" ({', '.join(coverage.regions)})" if coverage.regions else ""
        text = f"Atendemos en {', '.join(coverage.communes)}{regions}."
        recalled = f"Como {self.voice.te} comenté, las comunas están en mi mensaje anterior."
        fees = coverage.additionalFees
        note = [Block.of(_sentence(fees.message))] if fees and fees.enabled and fees.message else []
        return [Block.of(text, recalled), *note]

    def place(self, place: str) -> Block:
        if self.covers(place):
            text = f"Sí, atendemos en {place}."
            return Block.of(text, self.voice.recalled(text))
        return self.outside(place)

    def covers(self, place: str) -> bool:
        folded = normalize(place)
        return self._nationwide or any(
            re.search(rf"\b{re.escape(covered)}\b", folded) for covered in self._covered if covered
        )

    def outside(self, place: str, *, once: bool = False) -> Block:
        """`place` is outside the comunas: with the surcharge when the business charges one."""
        coverage = self.business.coverage
        fees = coverage.additionalFees
        tail = (
            _sentence(fees.message)
            if fees and fees.enabled and fees.message
            else f"Un asesor {self.voice.te} confirmará si podemos llegar."
        )
        communes = ", ".join(coverage.communes)
        return Block.of(f"{place} está fuera de nuestras comunas ({communes}). {tail}", once=once)

    def payment(self, _normalized: str) -> list[Block]:
        methods, v = self.business.pricing.paymentMethods, self.voice
        if not methods:
            return [self._ask_a_human("Lo de los medios de pago")]
        recalled = f"Como {v.te} comenté, los medios de pago están en mi mensaje anterior."
        return [Block.of(f"{v.puedes} pagar con: {', '.join(methods)}.", recalled)]

    def invoice(self, _normalized: str) -> list[Block]:
        return [self._ask_a_human("Lo de boleta o factura")]

    def warranty(self, _normalized: str) -> list[Block]:
        warranty = (self.business.qualifications or {}).get("warranty")
        if not warranty:
            return [self._ask_a_human("Lo de la garantía")]
        text = f"Garantía: {_sentence(str(warranty))}"
        return [Block.of(text, self.voice.recalled(text))]

    def credentials(self, _normalized: str) -> list[Block]:
        qualifications = self.business.qualifications or {}
        certifications = qualifications.get("certifications") or []
        if isinstance(certifications, str):
            certifications = [certifications]
        experience = qualifications.get("experience")
        blocks = [Block.of(f"Certificaciones: {', '.join(map(str, certifications))}.")]
        blocks = blocks if certifications else []
        blocks += [Block.of(f"Experiencia: {_sentence(str(experience))}")] if experience else []
        return blocks or [self._ask_a_human("Lo de certificaciones y experiencia")]

    def holidays(self, _normalized: str) -> list[Block]:
        holidays = self.business.schedule.holidays or {}
        if holidays.get("message"):
            return [Block.of(_sentence(str(holidays["message"])))]
        if "attendHolidays" in holidays:
            attends = bool(holidays["attendHolidays"])
            return [Block.of("Atendemos feriados." if attends else "No atendemos feriados.")]
        return [self._ask_a_human("Lo de los feriados")]

    def _ask_a_human(self, subject: str) -> Block:
        return Block.of(f"{subject} {self.voice.te_lo} confirma un asesor.")

    # -- days ------------------------------------------------------------------------------------

    def days(self, keywords: str) -> list[Block]:
        """Whether each day named is a working day, and its hours."""
        asked: list[tuple[str, str, bool]] = []  # (label, weekday, is today)
        for match in _DAY.finditer(keywords):
            for named in self._named_days(match.group(1)):
                if named not in asked:
                    asked.append(named)
        blocks = [self._day(label, day, today) for label, day, today in asked]
        if any(not self._open_on(day) for _label, day, _today in asked):
            blocks += self._urgent(False)
        return blocks

    def _named_days(self, word: str) -> list[tuple[str, str, bool]]:
        if word in ("finde", "fin de semana", "fines de semana"):
            return [("el sábado", "saturday", False), ("el domingo", "sunday", False)]
        if word in _RELATIVE_DAYS:
            local = self.now().astimezone(self.zone) + timedelta(days=_RELATIVE_DAYS[word])
            day = WEEKDAYS[local.weekday()]
            label = {"hoy": "hoy", "manana": "mañana"}.get(word, "pasado mañana")
            return [(f"{label} ({WEEKDAYS_ES[day]})", day, word == "hoy")]
        plural = word in ("sabados", "domingos")  # "¿atienden los sábados?"
        day = _WEEKDAY_WORDS[word.removesuffix("s") if plural else word]
        return [(f"los {WEEKDAYS_ES[day]}s" if plural else f"el {WEEKDAYS_ES[day]}", day, False)]

    def _open_on(self, day: str) -> bool:
        hours = self.business.schedule.workingDays.get(day)
        return bool(hours and hours.enabled)

    def _day(self, label: str, day: str, today: bool) -> Block:
        hours = self.business.schedule.workingDays.get(day)
        if hours is None or not hours.enabled:
            return Block.of(_capital(f"{label} no atendemos{self._next_open(day)}."))
        span = f"de {hours.open} a {hours.close}"
        if today and self.now().astimezone(self.zone).strftime("%H:%M") >= hours.close:
            return Block.of(_capital(f"{label} ya cerramos (atendemos {span})."))
        text = f"Sí, {label} atendemos {span}."
        return Block.of(text, self.voice.recalled(text))

    def _next_open(self, day: str) -> str:
        """ "; el siguiente día de atención es el lunes, de 09:00 a 19:00" """
        start = WEEKDAYS.index(day)
        for n in range(1, 7):
            following = WEEKDAYS[(start + n) % 7]
            hours = self.business.schedule.workingDays.get(following)
            if hours and hours.enabled:
                name = WEEKDAYS_ES[following]
                return (
                    f"; el siguiente día de atención es el {name}, de {hours.open} a {hours.close}"
                )
        return ""


def _money(price: float | str | None) -> str:
    if isinstance(price, (int, float)):
        return "$" + f"{round(price):,}".replace(",", ".")
    return str(price)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."
