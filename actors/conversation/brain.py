"""What every brain (OpenAI-compatible or offline) takes and gives."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sales.extract import Reading
from store.leads import LeadClass, LeadFields

OnChunk = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class ChatLine:
    role: str  # "user" | "assistant"
    content: str


@dataclass(frozen=True)
class BrainTurn:
    channel: str
    history: tuple[ChatLine, ...]  # oldest first, ending with the user's new message(s)
    known: LeadFields = field(default_factory=LeadFields)  # what this conversation collected
    known_sources: dict[str, Any] = field(default_factory=dict)  # where each value came from
    system_prompt: str = ""  # for a model brain: the rules in force, for this channel


@dataclass(frozen=True)
class BrainReply:
    text: str
    lead: LeadFields
    classification: LeadClass
    source: str  # "llm" | "offline" | "fallback"
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    read: Reading | None = None  # what the brain read of the turn's lines, if it did
    model_seconds: float = 0.0  # how long the brain took (set by the turn)


class Brain(Protocol):
    async def reply(self, turn: BrainTurn, on_chunk: OnChunk | None = None) -> BrainReply: ...


def approx_tokens(text: str) -> int:
    """A cheap, conservative token estimate (about 4 characters a token in Spanish)."""
    return len(text) // 4 + 4


def trim_history(lines: list[ChatLine], budget_tokens: int) -> tuple[ChatLine, ...]:
    """The newest lines that fit the budget; the newest one always stays."""
    kept: list[ChatLine] = []
    used = 0
    for line in reversed(lines):
        cost = approx_tokens(line.content)
        if kept and used + cost > budget_tokens:
            break
        kept.append(line)
        used += cost
    return tuple(reversed(kept))
