"""The channels, and what the messaging ones allow: length limits and splitting replies."""

from __future__ import annotations

import re
from enum import StrEnum


class Channel(StrEnum):
    """Where a person writes from (equal to its plain string: rows keep the string)."""

    WEB = "web"
    WHATSAPP = "whatsapp"
    INSTAGRAM = "instagram"


CHANNELS = tuple(Channel)
MESSAGING = frozenset({Channel.WHATSAPP, Channel.INSTAGRAM})  # Meta's, answered through Graph
TEXT_LIMIT: dict[str, int] = {Channel.WHATSAPP: 4096, Channel.INSTAGRAM: 1000}
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n+")


def split_text(text: str, limit: int) -> list[str]:
    """Parts of at most `limit` characters, cut at sentence ends where possible, then at
    spaces, and only as a last resort inside a word."""
    text = text.strip()
    if len(text) <= limit:
        return [text] if text else []
    parts: list[str] = []
    current = ""
    for sentence in (s.strip() for s in _SENTENCE_END.split(text)):
        if not sentence:
            continue
        candidate = f"{current} {sentence}".strip()
        if len(candidate) <= limit:
            current = candidate
            continue
        if current:
            parts.append(current)
        while len(sentence) > limit:
            cut = sentence.rfind(" ", 0, limit + 1)
            cut = cut if cut > limit // 2 else limit
            parts.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        current = sentence
    if current:
        parts.append(current)
    return parts
