"""Matching what people type: folded (no accents, no case), by whole words.

The original matched substrings, so "ya" fired inside "playa". Here a phrase matches only
at word boundaries, and a phrase right after a negation ("no es urgente", "sin apuro" is
its own phrase) does not count."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sales.business import fold

NEGATIONS = frozenset({"no", "sin", "ni", "nada"})
NEGATION_WINDOW = 3  # words before a phrase that can negate it

_WORD = re.compile(r"[a-z0-9ñ]+")


def words(folded: str) -> list[str]:
    return _WORD.findall(folded)


def normalize(text: str) -> str:
    """Folded, with every run of non-word characters as one space: what phrases match."""
    return " ".join(words(fold(text)))


@dataclass(frozen=True)
class PhraseSet:
    """Labelled phrases compiled into one pattern; `find` returns the labels that match."""

    pattern: re.Pattern[str] | None
    labels: dict[str, str]  # normalized phrase -> label
    negatable: bool = True

    @classmethod
    def of(cls, phrases: Mapping[str, Iterable[str]], *, negatable: bool = True) -> PhraseSet:
        labels: dict[str, str] = {}
        for label, items in phrases.items():
            for phrase in items:
                key = normalize(phrase)
                if key:
                    labels.setdefault(key, label)
        if not labels:
            return cls(None, {}, negatable)
        # Longest first, so "no funciona" wins over a shorter phrase inside it.
        alternatives = "|".join(re.escape(k) for k in sorted(labels, key=len, reverse=True))
        return cls(re.compile(rf"(?<![a-z0-9ñ])(?:{alternatives})(?![a-z0-9ñ])"), labels, negatable)

    @classmethod
    def flat(cls, phrases: Iterable[str], *, negatable: bool = True) -> PhraseSet:
        return cls.of({p: [p] for p in phrases}, negatable=negatable)

    def find(self, normalized: str) -> list[str]:
        """Labels of the phrases in `normalized` text, in order of appearance, once each."""
        if self.pattern is None:
            return []
        found: list[str] = []
        for match in self.pattern.finditer(normalized):
            if self.negatable and _negated(normalized, match.start()):
                continue
            label = self.labels[match.group(0)]
            if label not in found:
                found.append(label)
        return found


def _negated(normalized: str, start: int) -> bool:
    before = normalized[:start].split()[-NEGATION_WINDOW:]
    return any(word in NEGATIONS for word in before)


class OptOut:
    """ "STOP", "baja", "no me escriban más": the person wants no more messages from us.

    A one-word phrase counts only as the whole message ("baja" alone, not "la temperatura
    baja"); a longer phrase counts anywhere in it."""

    def __init__(self, phrases: Iterable[str]) -> None:
        normalized = [normalize(p) for p in phrases]
        self.whole = frozenset(p for p in normalized if p and " " not in p)
        self.anywhere = PhraseSet.flat([p for p in normalized if " " in p])

    def __call__(self, text: str) -> bool:
        normalized = normalize(text)
        return normalized in self.whole or bool(self.anywhere.find(normalized))
