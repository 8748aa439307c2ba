"""Which value a lead field keeps: every value has a provenance, and a stray word never
replaces a value the person gave.

A value found in a turn is a `Finding`: the field, the value, how it was found and the
message it came from. `settle` folds a turn's findings into the lead's fields:
- an empty field takes any finding;
- a correction ("no, me llamo …", "mi número es otro: …", "mejor mantención") replaces;
- a stronger kind of evidence replaces a weaker one (a typed "me llamo Ana" over a short
  answer, a typed phone over the WhatsApp number, anything over the model's guess);
- urgency follows the newest typed phrase (needs change), and a name may grow
  ("Ana" → "Ana María Rojas") when the person spells it out;
- nothing else replaces: a confirmed service stays when a later message merely mentions
  another service's keyword ("… porque hace mucho calor")."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from enum import IntEnum
from typing import Any

from sales.business import fold
from store.leads import LeadFields

FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(LeadFields))


class How(IntEnum):
    """How a value was found, weakest first."""

    MODEL = 1  # the model's structured answer, checked against what the person wrote
    CHANNEL = 2  # the verified channel identity (the WhatsApp number)
    ASKED = 3  # a short answer right after the assistant asked for that field
    TYPED = 4  # said outright: "me llamo Ana", a phone, an e-mail, a comuna, a service
    CORRECTION = 5  # the person corrected what they said before

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def of(cls, label: str) -> How:
        return cls[label.upper()] if label.upper() in cls.__members__ else cls.TYPED


@dataclass(frozen=True)
class Finding:
    field: str
    value: str
    how: How
    line: int = -1  # index of the line it came from in the turn's lines (-1: not a line)


@dataclass(frozen=True)
class Source:
    """Where a lead field's value came from."""

    how: How
    message: int | None = None
    conversation: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"how": self.how.label, "message": self.message, "conversation": self.conversation}

    @classmethod
    def from_json(cls, data: Any) -> Source | None:
        if not isinstance(data, dict):
            return None
        message, conversation = data.get("message"), data.get("conversation")
        return cls(
            How.of(str(data.get("how") or "")),
            message if isinstance(message, int) else None,
            conversation if isinstance(conversation, int) else None,
        )


Sources = Mapping[str, Source]


def sources_from_json(data: Any) -> dict[str, Source]:
    if not isinstance(data, dict):
        return {}
    found = {name: Source.from_json(data.get(name)) for name in FIELD_NAMES}
    return {name: source for name, source in found.items() if source is not None}


def sources_as_json(sources: Sources) -> dict[str, Any]:
    return {name: source.as_json() for name, source in sources.items()}


def replaces(field: str, current: str | None, source: Source | None, finding: Finding) -> bool:
    """Whether `finding` takes the place of the field's current value."""
    if not current:
        return True
    if fold(current) == fold(finding.value):
        return False
    if finding.how is How.CORRECTION:
        return True
    held = source.how if source is not None else How.TYPED
    if finding.how > held:
        return True
    if field == "urgency" and finding.how >= How.TYPED:
        return True
    # A name spelled out in full: "Ana" → "Ana María Rojas".
    return (
        field == "name"
        and finding.how >= How.TYPED
        and fold(finding.value).startswith(fold(current) + " ")
    )


def settle(
    current: LeadFields,
    sources: Sources,
    findings: Iterable[Finding],
    *,
    message_ids: Sequence[int | None] = (),
    conversation_id: int | None = None,
) -> tuple[LeadFields, dict[str, Source]]:
    """The lead's fields after a turn's findings (oldest first), with their sources."""
    values = {name: getattr(current, name) for name in FIELD_NAMES}
    settled = dict(sources)
    for finding in findings:
        if finding.field not in values or not finding.value:
            continue
        message = message_ids[finding.line] if 0 <= finding.line < len(message_ids) else None
        held = settled.get(finding.field)
        current_value = values[finding.field]
        if current_value and fold(current_value) == fold(finding.value):
            if held is None or finding.how > held.how:  # the same value, better evidence
                settled[finding.field] = Source(finding.how, message, conversation_id)
            continue
        if not replaces(finding.field, values[finding.field], settled.get(finding.field), finding):
            continue
        values[finding.field] = finding.value
        settled[finding.field] = Source(finding.how, message, conversation_id)
    return replace(current, **values), settled
