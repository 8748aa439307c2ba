"""What the messaging channels allow: message length limits and splitting long replies."""

from __future__ import annotations

import re

MESSAGING = frozenset({"whatsapp", "instagram"})
TEXT_LIMIT = {"whatsapp": 4096, "instagram": 1000}
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
