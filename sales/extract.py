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

from sales.business import BusinessConfig, Service, fold
from store.leads import LeadFields

from .fields import Finding, How, settle
from .names import answered_name, clean_name, name_in_phrase
from .places import AMBIGUOUS_PLACES, COMUNAS, ambiguous_after_locative
from .spoken import spoken_digits
from .text import PhraseSet, normalize, words

DEFAULT_REGION = "CL"
MIN_DIGITS = 8  # country code included: shorter "numbers" are service codes
MAX_TEXT = 4000  # a longer text is read only this far (inputs are capped at 4,000 anyway)
FUZZY_WORD = 86  # rapidfuzz ratio for a typo in one word ("acondisionado")
FUZZY_PLACE = 90
STRONG_WEIGHT = 3  # a service's head word, id or keyword, against 1 for other name words

_EMAIL_CANDIDATE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
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
    """What a turn's lines said: every value found, with how and where (`findings`), and
    the plain fields they add up to when nothing was known before."""

    findings: tuple[Finding, ...] = ()
    budget: str | None = None

    @property
    def fields(self) -> LeadFields:
        return settle(LeadFields(), {}, self.findings)[0]


@dataclass(frozen=True)
class Reading:
    """A turn's lines, as (role, text) oldest first, and what they said: read once by the
    offline brain and handed to the turn's classification with the reply."""

    lines: tuple[tuple[str, str], ...]
    extracted: Extracted


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
        covered = [*business.coverage.communes]
        self._places: list[tuple[str, str]] = []  # (display name, normalized)
        seen: set[str] = set()
        for place in (*covered, *COMUNAS):
            key = normalize(place)
            if key and key not in seen and (place in covered or key not in AMBIGUOUS_PLACES):
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
        findings: list[Finding] = []
        budget: str | None = None
        asked: str | None = None
        for index, (role, text) in enumerate(lines):
            if role == "assistant":
                asked = self.asked_field(text)
                continue
            one = self.read(text, asked, line=index)
            findings.extend(one.findings)
            budget = one.budget or budget
            # In a burst the name may come in a later line ("le escribo por mi mamá…",
            # "soy el hijo, Felipe"): the question stands until a name is given.
            if asked != "name" or any(f.field == "name" for f in one.findings):
                asked = None
        return Extracted(tuple(findings), budget)

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

    def read(self, text: str, asked: str | None = None, *, line: int = -1) -> Extracted:
        text = text[:MAX_TEXT]
        normalized = normalize(text)
        correcting = bool(_CORRECTION.search(normalized))
        typed = How.CORRECTION if correcting else How.TYPED
        found: list[Finding] = []

        def add(field: str, value: str | None, how: How = typed) -> None:
            if value:
                found.append(Finding(field, value, how, line))

        name = self.name(text)
        phone = self.phone(_TRUNK_ZERO.sub(r"\1", _without_third_party(spoken_digits(text))))
        phone_how = How.CORRECTION if _PHONE_CORRECTION.search(normalized) else typed
        add("name", name)
        add("phone", phone, phone_how)
        add("email", self.email(text))
        services = [s.name for s in self.services(normalized)]
        add("service", _chosen(normalized, services, correcting))
        areas = [a for a in self.areas(normalized) if not (name and fold(a) in fold(name))]
        area = _chosen(normalized, areas, correcting)
        add("area", area)
        if not ("?" in text and _SCHEDULE_QUESTION.search(normalized)):  # "¿cierran hoy?"
            add("urgency", next(iter(self.urgency.find(normalized)), None), How.TYPED)
        if asked == "name" and not name:
            add(
                "name",
                answered_name(text, lambda n: bool(self.areas(n) or self.services(n))),
                How.ASKED,
            )
        elif asked == "urgency" and not (phone or found):
            add("urgency", self._short_urgency(text, normalized), How.ASKED)
        return Extracted(tuple(found), budget=self.budget(normalized, text))

    def _is_place_or_service(self, normalized: str) -> bool:
        return bool(self.areas(normalized) or self.services(normalized))

    def _short_urgency(self, text: str, normalized: str) -> str | None:
        """A short reply to "¿Para cuándo lo necesitas?" is the urgency as written ("el
        viernes", "noviembre") unless it is a question or only a courtesy."""
        if not 0 < len(normalized.split()) <= 4 or "?" in text:
            return None
        if self.urgency.find(normalized) or _COURTESY_ONLY.fullmatch(normalized):
            return None
        return text.strip()[:60]

    def model_fields(self, raw: dict[str, str], user_text: str) -> dict[str, str]:
        """A model's field values that hold up as typed ones and against what the person
        wrote (`user_text`): a name that is a name and was written, a phone whose digits
        were written, a written e-mail, a comuna that was named, a known service, an urgency
        phrase. Everything else the model said is dropped."""
        checked: dict[str, str] = {}
        written = normalize(user_text)
        name = clean_name(raw.get("name", ""))
        if name and all(w in written.split() for w in words(fold(name))[:1]):
            checked["name"] = name
        phone = self.phone(raw.get("phone", "")) if raw.get("phone") else None
        if phone and phone[-8:] in re.sub(r"\D", "", spoken_digits(user_text)):
            checked["phone"] = phone
        email = self.email(raw.get("email", "")) if raw.get("email") else None
        if email and email.lower() in user_text.lower():
            checked["email"] = email
        service = self.service(normalize(raw.get("service", "")))
        if service:
            checked["service"] = service.name
        area = self.area(normalize(raw.get("area", ""))) if raw.get("area") else None
        if area and area in self.areas(written):
            checked["area"] = area
        urgency = self.urgency.find(normalize(raw.get("urgency", "")))
        if urgency:
            checked["urgency"] = urgency[0]
        return checked

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
        return name_in_phrase(text)

    def service(self, normalized: str) -> Service | None:
        found = self.services(normalized)
        return found[0] if found else None

    def services(self, normalized: str) -> list[Service]:
        """The services the text names, best first: a strong word (a service's first word,
        its id, a keyword) counts 3, another word of its name 1; a service needs a strong
        word or two others ("aire acondicionado"). A word matches a key exactly, by its
        first six letters ("instalar" / "instalación"), or with a typo ("acondisionado")."""
        scores = [0] * len(self.business.services)
        first_at = [len(normalized)] * len(self.business.services)
        for position, word in enumerate(words(normalized)):
            for key in self._service_words(word):
                for index, weight in self._service_index[key]:
                    scores[index] += weight
                    first_at[index] = min(first_at[index], position)
        ranked = sorted(
            (i for i, score in enumerate(scores) if score >= 2),
            key=lambda i: (-min(scores[i], STRONG_WEIGHT), first_at[i]),
        )
        return [self.business.services[i] for i in ranked]

    def _service_words(self, word: str) -> set[str]:
        if len(word) < 4 or (word.endswith(_PAST) and word not in self._service_index):
            return set()  # "me instalaron", "lo instalado": what was done, not asked for
        matched: set[str] = set()
        if word in self._service_index:
            matched.add(word)
        if len(word) >= 6 and word[:6] in self._stems:
            matched |= self._stems[word[:6]]
        if not matched and len(word) >= 5:
            for key, _score, _i in process.extract(
                word, self._service_keys, scorer=fuzz.ratio, score_cutoff=FUZZY_WORD, limit=None
            ):
                matched.add(key)
        return matched

    def area(self, normalized: str) -> str | None:
        found = self.areas(normalized)
        return found[0] if found else None

    def areas(self, normalized: str) -> list[str]:
        """Comunas named in the text, in order: exact names (a comuna that is also a common
        word, such as "Independencia" or "Caldera", only after "en" or "comuna"), else one
        close to a comuna's name ("Ñunoa", "Providensia")."""
        exact = self._place_pattern.find(normalized)
        exact += [place for place in ambiguous_after_locative(normalized) if place not in exact]
        if exact:
            return exact
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
                    return [self._places[hit[2]][0]]
        return []

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


_SCHEDULE_QUESTION = re.compile(r"\b(?:hora|horario|cierran|abren|atienden|trabajan)\b")
# "09-8765-4321": the old trunk zero before a Chilean mobile.
_TRUNK_ZERO = re.compile(r"(?<![\d+])0[\s.-]*(9(?:[\s.-]*\d){8})(?!\d)")
_PAST = ("aron", "ieron", "ado", "ada", "ados", "adas", "amos")


def _chosen(normalized: str, values: list[str], correcting: bool) -> str | None:
    """The value a message gives: the first one; in a correction, the first one that is
    not negated ("no es Maipú, es Macul", "mantención en vez de instalación")."""
    if not values:
        return None
    if not correcting or len(values) == 1:
        return values[0]
    for value in values:
        at = normalized.find(" ".join(words(fold(value))[:1]))
        before = normalized[:at].split()[-3:] if at >= 0 else []
        if not (set(before) & {"no", "ni", "sin", "vez", "lugar"}):
            return value
    return values[0]


# An explicit correction of something said before.
_CORRECTION = re.compile(
    r"^(?:no|nop|noo)\s+(?:me llamo|soy|es|era|vivo|estoy|quiero|necesito|mi|el|la|en|"
    r"perdon|disculpa)\b"
    r"|\b(?:perdon|perdona|disculpa|disculpe|me equivoque|me confundi|corrijo|correccion|"
    r"en realidad|mejor dicho|mas bien|quise decir|quiero decir|en vez de|en lugar de|"
    r"mejor que sea|mejor quiero|mejor necesito|prefiero|ahora quiero|al final quiero|"
    r"el correcto es|la correcta es|el bueno es|no era|no es)\b"
)
_PHONE_CORRECTION = re.compile(
    r"\b(?:numero|telefono|fono|celular|cel|whatsapp|wsp) (?:es otro|correcto|nuevo|bueno)\b"
    r"|\bes otro (?:numero|telefono|fono|celular)\b|\bcambie (?:de )?(?:numero|celular)\b"
    r"|\bmejor (?:anota|anote|apunta|llamame|llamenme|al|a este|este)\b"
    r"|\b(?:anota|anote|apunta) (?:mi|este)\b"
)
_COURTESY_ONLY = re.compile(r"(?:ok|oka|okey|ya|gracias|muchas gracias|dale|bueno|listo)")
# A phone that belongs to someone else: "el número de mi marido es 9…".
_THIRD_PARTY = re.compile(
    r"\b(?:de|a|al|para) (?:mi|mis) (?:esposo|esposa|marido|mujer|hijo|hija|mama|papa|madre|"
    r"padre|hermano|hermana|abuela|abuelo|tio|tia|suegra|suegro|vecino|vecina|jefe|jefa|"
    r"pareja|polola|pololo|socio|socia|cunado|cunada|primo|prima)\b[^0-9+]{0,30}"
    r"[+\d][\d\s().-]{6,}\d"
    r"|\b(?:de|a) (?:el|ella)\b[^0-9+]{0,12}[+\d][\d\s().-]{6,}\d"
)


def _without_third_party(folded: str) -> str:
    return _THIRD_PARTY.sub(" ", folded)


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
