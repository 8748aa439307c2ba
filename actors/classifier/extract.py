"""Deterministic extraction of a lead's fields from what a person wrote.

Name phrases ("me llamo", "mi nombre es", "soy"...), phones through `phonenumbers` with the
business's country as the default region (E.164 out), e-mails through `email-validator`,
services and comunas matched to business.json tolerant of accents and typos (rapidfuzz),
urgency from the rules' phrases, and a budget. A short answer right after the assistant asked
for a field is read as that field ("¿Cómo te llamas?" → "Ana").

Never raises on any text: what cannot be read is simply not found."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from rapidfuzz import fuzz, process

from store.leads import LeadFields
from supervisor.business import BusinessConfig, Service, fold

from .places import KNOWN_PLACES
from .text import PhraseSet, normalize, words

DEFAULT_REGION = "CL"
MIN_DIGITS = 8  # country code included: shorter "numbers" are service codes
MAX_TEXT = 4000  # a longer text is read only this far (inputs are capped at 4,000 anyway)
FUZZY_WORD = 86  # rapidfuzz ratio for a typo in one word ("acondisionado")
FUZZY_PLACE = 90
STRONG_WEIGHT = 3  # a service's head word, id or keyword, against 1 for other name words

_EMAIL_CANDIDATE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_NAME_PHRASE = re.compile(
    r"(?:^|[^\w])(?:me llamo|mi nombre es|mi nombre:|soy|habla|te escribe|le escribe|aqui)"
    r"\s+([^\W\d_]+(?:\s+[^\W\d_]+){0,3})",
    re.IGNORECASE,
)
# Words that follow "soy" without being a name.
_NOT_NAMES = frozenset(
    (
        "de del la el los las un una al y o en con para por que muy tan bien mal yo tu su mi"
        " hola si no gracias ok okey bueno buena buenas quiero necesito tengo busco estoy"
        " cliente clienta dueno duena nuevo nueva interesado interesada administrador"
        " administradora encargado encargada vecino vecina propietario propietaria estudiante"
        " ingeniero ingeniera tecnico tecnica arquitecto arquitecta profesor profesora"
        " medico doctora senor senora sr sra don dona persona alguien otro otra ese esa"
        " como cuando donde quien urgente hoy manana mismo misma"
    ).split()
)
_NAME_STOP = frozenset("de del y en con para por que desde a al".split())
_ASKED = (
    ("name", re.compile(r"\b(como te llamas|tu nombre|su nombre|como se llama|con quien)\b")),
    ("phone", re.compile(r"\b(telefono|numero|celular|fono|whatsapp)\b")),
    ("email", re.compile(r"\b(correo|email|e mail|mail)\b")),
    ("area", re.compile(r"\b(comuna|sector|donde (estas|esta|vives|vive|te encuentras))\b")),
    ("urgency", re.compile(r"\b(para cuando|que tan urgente|cuando (lo|la) necesitas?)\b")),
    ("service", re.compile(r"\b(que servicio|que necesitas|en que te (podemos|puedo) ayudar)\b")),
)
_MONEY = re.compile(
    r"(?:presupuesto|tengo|hasta|dispongo de|cuento con|maximo|max|pagar|gastar)"
    r"[^0-9$]{0,25}(\$?\s?\d{1,3}(?:[.\s]\d{3})+|\$?\s?\d+(?:[.,]\d+)?)"
    r"\s*(millones|millon|mil|lucas|k)?",
)
_DOLLAR = re.compile(r"\$\s?(\d{1,3}(?:\.\d{3})+|\d{4,})")


@dataclass(frozen=True)
class Extracted:
    fields: LeadFields
    budget: str | None = None


class Extractor:
    """Built once per business config; `read` is pure and cheap."""

    def __init__(self, business: BusinessConfig) -> None:
        self.business = business
        self.region = _region(business)
        rules = business.leadRules
        self.urgency = PhraseSet.of(rules.urgencyWords)
        # key -> [(service index, weight)]; first six letters -> keys; every key (fuzzy).
        self._service_index: dict[str, list[tuple[int, int]]] = {}
        for index, service in enumerate(business.services):
            for key, weight in _service_keys(service).items():
                self._service_index.setdefault(key, []).append((index, weight))
        self._stems: dict[str, set[str]] = {}
        for key in self._service_index:
            if len(key) >= 6:
                self._stems.setdefault(key[:6], set()).add(key)
        self._service_keys = list(self._service_index)
        covered = [*business.coverage.communes, *business.coverage.regions]
        self._places: list[tuple[str, str]] = []  # (display name, normalized)
        seen: set[str] = set()
        for place in (*covered, *KNOWN_PLACES):
            key = normalize(place)
            if key and key not in seen:
                seen.add(key)
                self._places.append((place, key))
        self._place_keys = [key for _place, key in self._places]
        self._place_pattern = PhraseSet.of(
            {place: [place] for place, _key in self._places}, negatable=False
        )

    # -- a conversation ---------------------------------------------------------------------

    def read_turn(self, lines: Sequence[tuple[str, str]]) -> Extracted:
        """What the user's lines in `lines` (role, text; oldest first) say; an assistant line
        tells which field was being asked for the user line after it."""
        found = LeadFields()
        budget: str | None = None
        asked: str | None = None
        for role, text in lines:
            if role == "assistant":
                asked = self.asked_field(text)
                continue
            one = self.read(text, asked)
            found = one.fields.merged_over(found)
            budget = one.budget or budget
            asked = None
        return Extracted(found, budget)

    @staticmethod
    def asked_field(assistant_text: str) -> str | None:
        """The field an assistant line asks for, read from its last question."""
        questions = [q for q in re.split(r"(?<=[.!?])\s+", assistant_text.strip()) if "?" in q]
        if not questions:
            return None
        last = normalize(questions[-1])
        for name, pattern in _ASKED:
            if pattern.search(last):
                return name
        return None

    # -- one message --------------------------------------------------------------------------

    def read(self, text: str, asked: str | None = None) -> Extracted:
        text = text[:MAX_TEXT]
        normalized = normalize(text)
        phone = self.phone(text)
        email = self.email(text)
        service = self.service(normalized)
        area = self.area(normalized)
        urgency = next(iter(self.urgency.find(normalized)), None)
        name = self.name(text)
        if asked and not (name or phone or email):
            short = 0 < len(normalized.split()) <= 4
            if asked == "name" and short:
                name = _clean_name(text)
            elif asked == "area" and short and not area:
                area = _title(text)
            elif asked == "urgency" and not urgency and short:
                urgency = text.strip()[:60]
        return Extracted(
            LeadFields(
                name=name,
                phone=phone,
                email=email,
                service=service.name if service else None,
                area=area,
                urgency=urgency,
            ),
            budget=self.budget(normalized, text),
        )

    def phone(self, text: str) -> str | None:
        """A valid number first; else one of a possible length for its country that is not a
        RUT ("12.345.678-9") nor one digit repeated — people often type example numbers such
        as 9 1234 5678, and a salesperson still wants what they typed."""
        try:
            fallback: str | None = None
            for match in phonenumbers.PhoneNumberMatcher(
                text, self.region, leniency=phonenumbers.Leniency.POSSIBLE
            ):
                number = match.number
                e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
                if len(e164) - 1 < MIN_DIGITS:
                    continue  # a short code ("+43 0010"): no one a salesperson can call
                if phonenumbers.is_valid_number(number):
                    return e164
                if fallback is None and _plausible(number, match.raw_string):
                    fallback = e164
        except Exception:  # a library hiccup on odd text must not stop a turn
            return None
        return fallback

    @staticmethod
    def email(text: str) -> str | None:
        for candidate in _EMAIL_CANDIDATE.findall(text):
            try:
                return str(
                    validate_email(candidate.strip("."), check_deliverability=False).normalized
                )
            except EmailNotValidError:
                continue
        return None

    @staticmethod
    def name(text: str) -> str | None:
        for match in _NAME_PHRASE.finditer(text):
            name = _clean_name(match.group(1))
            if name:
                return name
        return None

    def service(self, normalized: str) -> Service | None:
        """The service whose words the text names best: a strong word (its first word, its
        id, a keyword) counts 3, another word of its name 1; a service needs a strong word
        or two others ("aire acondicionado"). A word matches a key exactly, by its first
        six letters ("instalar" / "instalación"), or with a typo ("acondisionado")."""
        matched: set[str] = set()
        for word in set(words(normalized)):
            if len(word) < 4:
                continue
            found = False
            if word in self._service_index:
                matched.add(word)
                found = True
            if len(word) >= 6 and word[:6] in self._stems:
                matched |= self._stems[word[:6]]
                found = True
            if not found and len(word) >= 5:
                for key, _score, _i in process.extract(
                    word, self._service_keys, scorer=fuzz.ratio, score_cutoff=FUZZY_WORD, limit=None
                ):
                    matched.add(key)
        scores = [0] * len(self.business.services)
        for key in matched:
            for index, weight in self._service_index[key]:
                scores[index] += weight
        best = max(range(len(scores)), key=scores.__getitem__, default=None)
        if best is None or scores[best] < 2:
            return None
        return self.business.services[best]

    def area(self, normalized: str) -> str | None:
        exact = self._place_pattern.find(normalized)
        if exact:
            return exact[0]
        tokens = normalized.split()
        for size in (3, 2, 1):
            for i in range(len(tokens) - size + 1):
                gram = " ".join(tokens[i : i + size])
                if len(gram) < 6:
                    continue
                hit = process.extractOne(
                    gram, self._place_keys, scorer=fuzz.ratio, score_cutoff=FUZZY_PLACE
                )
                if hit is not None:
                    return self._places[hit[2]][0]
        return None

    def budget(self, normalized: str, text: str) -> str | None:
        amount: float | None = None
        dollar = _DOLLAR.search(text)
        if dollar:
            amount = float(dollar.group(1).replace(".", ""))
        else:
            money = _MONEY.search(normalized_money(text))
            if money:
                amount = _amount(money.group(1), money.group(2))
        if amount is None or amount < 1000 or amount > 10**10:
            return None
        return "$" + f"{int(amount):,}".replace(",", ".")


def normalized_money(text: str) -> str:
    """Folded text that keeps the characters of amounts ($ . ,)."""
    return re.sub(r"\s+", " ", fold(text))


def _amount(number: str, unit: str | None) -> float | None:
    raw = number.replace("$", "").replace(" ", "")
    if re.fullmatch(r"\d{1,3}(?:\.\d{3})+", raw):
        raw = raw.replace(".", "")
    try:
        value = float(raw.replace(",", "."))
    except ValueError:
        return None
    multiplier = {"mil": 1e3, "lucas": 1e3, "k": 1e3, "millon": 1e6, "millones": 1e6}
    return value * multiplier.get(unit or "", 1)


def _service_keys(service: Service) -> dict[str, int]:
    """The words that name a service, with their weight (3 strong, 1 other)."""
    name_words = [w for w in words(fold(service.name)) if len(w) >= 4]
    keys = {w: 1 for w in name_words}
    strong = {w for w in words(fold(" ".join([service.id, *service.keywords]))) if len(w) >= 4}
    if name_words:
        strong.add(name_words[0])  # the head: "Instalación", "Reparación"
    keys.update({w: STRONG_WEIGHT for w in strong})
    return keys


_RUT = re.compile(r"\d{1,2}\.?\d{3}\.?\d{3}\s?-\s?[\dkK]$")


def _plausible(number: phonenumbers.PhoneNumber, raw: str) -> bool:
    reason = phonenumbers.is_possible_number_with_reason(number)
    national = str(number.national_number)
    return (
        reason == phonenumbers.ValidationResult.IS_POSSIBLE
        and len(set(national)) > 1
        and not _RUT.search(raw.strip())  # a Chilean RUT with its check digit
    )


def _clean_name(raw: str) -> str | None:
    kept: list[str] = []
    for word in re.findall(r"[^\W\d_]+", raw):
        folded = fold(word)
        if folded in _NAME_STOP:
            break
        kept.append(word)
        if len(kept) == 3:
            break
    if not kept or fold(kept[0]) in _NOT_NAMES or len(kept[0]) < 2:
        return None
    kept = [w for w in kept if fold(w) not in _NOT_NAMES] or []
    if not kept:
        return None
    return " ".join(w[:1].upper() + w[1:].lower() for w in kept)


def _title(text: str) -> str:
    cleaned = re.sub(r"[^\w\s-]", "", text).strip()
    return " ".join(w[:1].upper() + w[1:] for w in cleaned.split())[:60]


def _region(business: BusinessConfig) -> str:
    if business.business.country:
        return business.business.country
    phone = business.business.phone
    if phone:
        try:
            region = phonenumbers.region_code_for_number(phonenumbers.parse(phone, None))
        except phonenumbers.NumberParseException:
            region = None
        if region:
            return str(region)
    return DEFAULT_REGION
