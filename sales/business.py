"""The business's own config (`config/business.json`, the original system's format).

Unknown keys are kept, so a file written for the original system loads unchanged; what the
assistant relies on is typed and validated, and every problem names its field path.
"""

from __future__ import annotations

import json
import re
import zoneinfo
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from store.text import fold as fold  # re-exported: the actors compare text with it

from .errors import ConfigProblem

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WEEKDAYS_ES = {
    "monday": "lunes",
    "tuesday": "martes",
    "wednesday": "miércoles",
    "thursday": "jueves",
    "friday": "viernes",
    "saturday": "sábado",
    "sunday": "domingo",
}
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class BusinessInfo(_Section):
    name: str = Field(min_length=1)
    industry: str
    shortName: str | None = None
    description: str = ""
    phone: str | None = None
    email: str | None = None
    website: str | None = None
    # ISO 3166 region for phone numbers written without a country code ("CL"); by default
    # the region of `phone`, else Chile.
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")

    @field_validator("email")
    @classmethod
    def _email_shape(cls, value: str | None) -> str | None:
        if value and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
            raise ValueError("is not an e-mail address")
        return value


class Service(_Section):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    description: str = ""
    estimatedTime: str | None = None
    requiresVisit: bool = False
    price: float | str | None = None
    # Optional words that also name this service ("split", "aire", "climatizador").
    keywords: list[str] = []


class AdditionalFees(_Section):
    enabled: bool = False
    message: str = ""


class Coverage(_Section):
    regions: list[str]
    communes: list[str]
    additionalFees: AdditionalFees | None = None


class WorkingDay(_Section):
    enabled: bool = False
    open: str = "09:00"
    close: str = "18:00"

    @field_validator("open", "close")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError("must be a time HH:MM (24 h)")
        return value


class Schedule(_Section):
    timezone: str
    workingDays: dict[str, WorkingDay]
    emergencyService: dict[str, Any] | None = None
    holidays: dict[str, Any] | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use e.g. America/Santiago)") from None
        return value

    @field_validator("workingDays")
    @classmethod
    def _weekday_names(cls, value: dict[str, WorkingDay]) -> dict[str, WorkingDay]:
        unknown = sorted(set(value) - set(WEEKDAYS))
        if unknown:
            raise ValueError(f"unknown weekday(s) {', '.join(unknown)}; use {', '.join(WEEKDAYS)}")
        return value


class Pricing(_Section):
    showPrices: bool = False
    requireQuote: bool = True
    message: str = ""
    paymentMethods: list[str] = []


class ConversationStyle(_Section):
    tone: str = "cercano y profesional"
    formality: Literal["tú", "usted"] = "tú"
    personality: str = ""
    guidelines: list[str] = []


class Notifications(_Section):
    ownerEmail: str | None = None
    ownerPhone: str | None = None
    notifyOn: list[Literal["caliente", "tibio", "frio"]] = ["caliente", "tibio"]
    emailSubjectPrefix: str = "Nuevo lead -"


_PHRASES = list[str]


class FollowUpRules(_Section):
    hotAfterHours: float = Field(default=12, gt=0, le=24 * 30)
    warmAfterHours: float = Field(default=24, gt=0, le=24 * 30)
    maxCount: int = Field(default=2, ge=0, le=10)


class LeadRules(_Section):
    """How a lead is scored (optional section `leadRules`; these are the defaults).

    Phrases match whole words, without regard to accents or case; a phrase just after "no",
    "sin" or "ni" does not count ("no es urgente")."""

    # Alone make a lead hot; the key is the reason shown to the salesperson.
    actionPhrases: dict[str, _PHRASES] = {
        "pidió agendar": [
            "agendar",
            "agendemos",
            "agenda una visita",
            "reservar hora",
            "reservar una hora",
            "pueden venir",
            "cuando pueden venir",
            "necesito una visita",
            "coordinar una visita",
            "coordinar la visita",
        ],
        "pidió cotización": [
            "necesito cotizar",
            "quiero cotizar",
            "quiero una cotizacion",
            "necesito una cotizacion",
            "me pueden cotizar",
            "me cotizan",
            "enviame una cotizacion",
            "envienme una cotizacion",
            "mandame una cotizacion",
            "mandenme una cotizacion",
        ],
        "quiere contratar": [
            "quiero contratar",
            "quiero comprar",
            "lo quiero",
            "lo contrato",
            "como contrato",
            "como pago",
            "cerremos",
            "hagamoslo",
        ],
    }
    # Urgency: the key is the urgency recorded; `hotUrgency` lists the ones that make a lead
    # hot on their own.
    urgencyWords: dict[str, _PHRASES] = {
        "hoy": ["hoy", "hoy mismo", "esta tarde", "esta noche", "para ya", "lo necesito ya"],
        "urgente": [
            "urgente",
            "urgencia",
            "emergencia",
            "no funciona",
            "no enciende",
            "no prende",
            "dejo de funcionar",
            "se echo a perder",
            "lo antes posible",
            "cuanto antes",
            "asap",
        ],
        "inmediata": ["inmediato", "inmediata", "inmediatamente", "de inmediato", "ahora mismo"],
        "mañana": ["manana", "pasado manana"],
        "esta semana": ["esta semana", "estos dias"],
        "próxima semana": ["proxima semana", "la otra semana", "semana que viene"],
        "este mes": ["este mes", "fin de mes"],
        "sin apuro": ["sin apuro", "no hay apuro", "con calma", "mas adelante", "ya veremos"],
    }
    hotUrgency: list[str] = ["hoy", "urgente", "inmediata"]
    # With a name and a phone, make a lead hot; alone, warm.
    hotKeywords: _PHRASES = [
        "precio",
        "precios",
        "cuanto cuesta",
        "cuanto sale",
        "cuanto cobran",
        "valor",
        "disponibilidad",
        "forma de pago",
        "formas de pago",
        "me interesa",
    ]
    # Alone, warm.
    warmKeywords: _PHRASES = [
        "informacion",
        "consulta",
        "consultar",
        "quisiera saber",
        "me gustaria saber",
        "cotizacion",
        "presupuesto",
        "tienen",
        "hacen",
    ]
    # A message of at least this many words shows interest (warm).
    longMessageWords: int = Field(default=25, ge=1)
    # The person wants no more messages. A one-word phrase counts only as the whole message.
    optOutPhrases: _PHRASES = [
        "stop",
        "baja",
        "darme de baja",
        "dame de baja",
        "no me escriban mas",
        "no me escribas mas",
        "no me sigan escribiendo",
        "no me manden mas mensajes",
        "no me manden mas",
        "no me contacten",
        "no me contactes",
        "no quiero mas mensajes",
        "dejen de escribirme",
        "deja de escribirme",
        "unsubscribe",
    ]
    followUps: FollowUpRules = FollowUpRules()

    @field_validator("hotUrgency")
    @classmethod
    def _known_urgency(cls, value: list[str], info: Any) -> list[str]:
        known = set(info.data.get("urgencyWords", {}))
        unknown = [v for v in value if v not in known]
        if unknown:
            raise ValueError(f"not a key of urgencyWords: {', '.join(unknown)}")
        return value


class Branding(_Section):
    primaryColor: str = "#2563eb"
    secondaryColor: str = "#0ea5e9"
    logo: str | None = None
    slogan: str = ""

    @field_validator("primaryColor", "secondaryColor")
    @classmethod
    def _hex_colour(cls, value: str) -> str:
        if not re.fullmatch(r"#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?", value):
            raise ValueError("must be a colour like #6366f1")
        return value


class Metadata(_Section):
    version: str
    clientId: str
    instanceType: Literal["development", "staging", "production"] | None = None


class BusinessConfig(_Section):
    business: BusinessInfo
    services: list[Service] = Field(min_length=1)
    coverage: Coverage
    schedule: Schedule
    pricing: Pricing = Pricing()
    qualifications: dict[str, Any] | None = None
    conversationStyle: ConversationStyle = ConversationStyle()
    notifications: Notifications = Notifications()
    branding: Branding = Branding()
    metadata: Metadata | None = None
    language: str = "es"
    leadRules: LeadRules = LeadRules()

    @property
    def display_name(self) -> str:
        return self.business.shortName or self.business.name


def load_business(path: Path) -> BusinessConfig:
    """Load and validate; raise `ConfigProblem` with file, field path and reason for each."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigProblem([(file, "(file)", "not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigProblem([(file, "(file)", f"cannot be read: {exc}")]) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise ConfigProblem([(file, where, f"invalid JSON: {exc.msg}")]) from None
    if not isinstance(data, dict):
        raise ConfigProblem([(file, "(root)", "must be a JSON object")])
    try:
        return BusinessConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigProblem(
            [(file, _field_path(e["loc"]), _reason(e)) for e in exc.errors()]
        ) from None


# What the dashboard shows for a field (Spanish, as the owner reads it); the CLI keeps
# pydantic's English through `_reason`.
_SPANISH = {
    "missing": "es obligatorio",
    "string_type": "debe ser texto",
    "int_type": "debe ser un número entero",
    "int_parsing": "debe ser un número entero",
    "float_type": "debe ser un número",
    "float_parsing": "debe ser un número",
    "bool_type": "debe ser verdadero o falso",
    "bool_parsing": "debe ser verdadero o falso",
    "list_type": "debe ser una lista",
    "dict_type": "debe ser un objeto",
    "model_type": "debe ser un objeto",
    "extra_forbidden": "no es un campo conocido",
    "literal_error": "debe ser uno de: {expected}",
    "enum": "debe ser uno de: {expected}",
    "string_too_short": "debe tener al menos {min_length} caracteres",
    "string_too_long": "debe tener como máximo {max_length} caracteres",
    "too_short": "debe tener al menos {min_length} elementos",
    "too_long": "debe tener como máximo {max_length} elementos",
    "greater_than": "debe ser mayor que {gt}",
    "greater_than_equal": "debe ser al menos {ge}",
    "less_than": "debe ser menor que {lt}",
    "less_than_equal": "debe ser como máximo {le}",
}
_SPANISH_VALUE_ERRORS = (
    ("is not an e-mail address", "no es un correo válido"),
    ("must be a time HH:MM", "debe ser una hora HH:MM (24 h)"),
    ("unknown time zone", "zona horaria desconocida (por ejemplo America/Santiago)"),
    ("unknown weekday", "día de la semana desconocido"),
    ("not a key of urgencyWords", "no es una clave de urgencyWords"),
    ("must be a colour", "debe ser un color como #6366f1"),
)


def _razon(error: Any) -> str:
    """`_reason` in Spanish, for the owner's dashboard."""
    template = _SPANISH.get(error["type"])
    if template is not None:
        try:
            return template.format(**(error.get("ctx") or {}))
        except (KeyError, IndexError):
            return template.split(":")[0]
    message = str(error["msg"]).removeprefix("Value error, ")
    for english, spanish in _SPANISH_VALUE_ERRORS:
        if message.startswith(english):
            return spanish
    return message


def field_errors(
    exc: ValidationError, data: object, *, spanish: bool = False
) -> list[tuple[str, str]]:
    """Each field with a problem as (its path joined with dots, "services.0.price"; the
    reasons): how an API names fields, where check-config writes "services[0].price". `data`
    is what was validated: a path stops where it does, so that the member names pydantic adds
    for a union ("price.float", "price.str") fold into the field's one path."""
    reasons: dict[str, list[str]] = {}
    for error in exc.errors():
        loc = error["loc"] if error["type"] == "missing" else _within(error["loc"], data)
        path = ".".join(map(str, loc)) or "(root)"
        reasons.setdefault(path, []).append(_razon(error) if spanish else _reason(error))
    return [(path, "; ".join(dict.fromkeys(why))) for path, why in reasons.items()]


def _within(loc: tuple[int | str, ...], data: object) -> tuple[int | str, ...]:
    """The longest start of `loc` that names something present in `data`."""
    for depth, part in enumerate(loc):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return loc[:depth]
    return loc


def _field_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + part)
    return "".join(parts) or "(root)"


def _reason(error: Any) -> str:
    kind = error["type"]
    if kind == "missing":
        return "is required"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")
