"""Hot, warm or cold, with a score and the reasons a salesperson would give.

The defaults follow the original system's criteria, with whole-word matching:
- hot (caliente): an action phrase ("quiero agendar", "necesito cotizar"), or an urgent need
  ("hoy", "urgente", "no funciona"), or name + phone + service, or name + phone + a hot
  keyword ("precio", "disponibilidad");
- warm (tibio): any contact data given, a service named, or a budget; interest words or a
  long message alone stay cold;
- cold (frio) otherwise.
The model's estimate is a reason and points for sorting, never the class (measured on the
labelled corpus, it lifted cold price questions to warm). A person who opts out becomes cold
(the classifier decides that).
A lead never cools down by itself: signals seen once stay with it."""

from __future__ import annotations

from dataclasses import dataclass

from sales.business import LeadRules
from store.leads import LeadClass, LeadFields

from .text import PhraseSet

RANK: dict[str, int] = {"frio": 0, "tibio": 1, "caliente": 2}

# Points for the score (0-100), used to sort leads of one class.
POINTS = {
    "action": 40,
    "urgent": 30,
    "name": 10,
    "phone": 15,
    "email": 10,
    "service": 15,
    "area": 5,
    "hot_keyword": 10,
    "warm_keyword": 5,
    "long": 5,
    "budget": 10,
    "model": 5,
}


@dataclass(frozen=True)
class Signals:
    """What the person's messages showed, accumulated over the lead's life."""

    actions: frozenset[str] = frozenset()  # labels, e.g. "pidió agendar"
    hot_keywords: frozenset[str] = frozenset()
    warm_keywords: frozenset[str] = frozenset()
    long_message: bool = False

    def with_(self, other: Signals) -> Signals:
        return Signals(
            self.actions | other.actions,
            self.hot_keywords | other.hot_keywords,
            self.warm_keywords | other.warm_keywords,
            self.long_message or other.long_message,
        )

    def as_list(self) -> list[str]:
        return sorted(
            [f"action:{a}" for a in self.actions]
            + [f"hot:{k}" for k in self.hot_keywords]
            + [f"warm:{k}" for k in self.warm_keywords]
            + (["long"] if self.long_message else [])
        )

    @classmethod
    def from_list(cls, items: list[str]) -> Signals:
        def pick(prefix: str) -> frozenset[str]:
            return frozenset(i.split(":", 1)[1] for i in items if i.startswith(prefix + ":"))

        return cls(pick("action"), pick("hot"), pick("warm"), "long" in items)


@dataclass(frozen=True)
class Verdict:
    classification: LeadClass
    score: int
    reasons: tuple[str, ...]


class Scorer:
    def __init__(self, rules: LeadRules) -> None:
        self.rules = rules
        self.actions = PhraseSet.of(rules.actionPhrases)
        self.hot_keywords = PhraseSet.flat(rules.hotKeywords)
        self.warm_keywords = PhraseSet.flat(rules.warmKeywords)
        self.hot_urgency = frozenset(rules.hotUrgency)

    def signals(self, normalized_user_texts: list[str]) -> Signals:
        actions: set[str] = set()
        hot: set[str] = set()
        warm: set[str] = set()
        long_message = False
        for text in normalized_user_texts:
            actions.update(self.actions.find(text))
            hot.update(self.hot_keywords.find(text))
            warm.update(self.warm_keywords.find(text))
            long_message = long_message or len(text.split()) >= self.rules.longMessageWords
        return Signals(frozenset(actions), frozenset(hot), frozenset(warm), long_message)

    def verdict(
        self,
        fields: LeadFields,
        signals: Signals,
        *,
        budget: str | None = None,
        channel_phone: bool = False,
        model_guess: str | None = None,
    ) -> Verdict:
        """`channel_phone`: we know the phone from the channel itself (WhatsApp), so the
        person can be called even if they never typed the number."""
        urgent = bool(fields.urgency and fields.urgency in self.hot_urgency)
        tally = _Tally()
        _count_fields(tally, fields, signals, urgent=urgent, channel_phone=channel_phone)
        _count_words(tally, signals, budget)
        classification = _classify(
            fields, signals, budget=budget, urgent=urgent, channel_phone=channel_phone
        )
        if model_guess in ("tibio", "caliente"):
            # A reason and points for sorting; the class comes from what the person did.
            tally.add(f"el asistente lo estimó {model_guess}", "model")
        return Verdict(classification, min(tally.points, 100), tuple(tally.reasons))


class _Tally:
    """The reasons a salesperson would give, and the points they add up to."""

    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.points = 0

    def add(self, text: str, key: str) -> None:
        self.reasons.append(text)
        self.points += POINTS[key]


def _count_fields(
    tally: _Tally, fields: LeadFields, signals: Signals, *, urgent: bool, channel_phone: bool
) -> None:
    """What the person asked for and told us."""
    for label in sorted(signals.actions):
        tally.add(label, "action")
    if urgent:
        tally.add(f"urgencia: {fields.urgency}", "urgent")
    if fields.name:
        tally.add("dio su nombre", "name")
    if fields.phone and not channel_phone:
        tally.add("dio su teléfono", "phone")
    elif channel_phone:
        tally.add("teléfono de WhatsApp", "phone")
    if fields.email:
        tally.add("dio su e-mail", "email")
    if fields.service:
        tally.add(f"servicio: {fields.service}", "service")
    if fields.area:
        tally.add(f"comuna: {fields.area}", "area")
    if fields.urgency and not urgent:
        tally.reasons.append(f"plazo: {fields.urgency}")  # a reason, no points


def _count_words(tally: _Tally, signals: Signals, budget: str | None) -> None:
    for word in sorted(signals.hot_keywords):
        tally.add(f"preguntó por «{word}»", "hot_keyword")
    if signals.warm_keywords and not signals.hot_keywords:
        tally.add(f"mostró interés («{sorted(signals.warm_keywords)[0]}»)", "warm_keyword")
    if signals.long_message:
        tally.add("mensaje detallado", "long")
    if budget:
        tally.add(f"presupuesto: {budget}", "budget")


def _classify(
    fields: LeadFields,
    signals: Signals,
    *,
    budget: str | None,
    urgent: bool,
    channel_phone: bool,
) -> LeadClass:
    reachable = bool(fields.phone) or channel_phone
    contact = bool(fields.name and reachable)
    if (
        signals.actions
        or urgent
        or (contact and fields.service)
        or (contact and signals.hot_keywords)
    ):
        return "caliente"
    if (
        fields.name
        or (fields.phone and not channel_phone)
        or fields.email
        or fields.service
        or budget
    ):
        # Interest words or a long message alone (a price question, a job application)
        # stay cold: warm needs something a salesperson can act on.
        return "tibio"
    return "frio"


def warmer(a: LeadClass, b: LeadClass) -> LeadClass:
    return a if RANK[a] >= RANK[b] else b
