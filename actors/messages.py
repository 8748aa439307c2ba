"""The closed set of messages that travel on the suite's memory channels.

Every message is a frozen dataclass; channels carry notices, the store holds the truth, so a
message names the stored rows it is about.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from store.leads import Lead, LeadClass
from store.messages import StoredMessage


@dataclass(frozen=True)
class LeadView:
    """The lead as the web chat shows it after a turn."""

    name: str | None
    phone: str | None
    service: str | None
    area: str | None
    classification: LeadClass
    channel: str
    reasons: tuple[str, ...] = ()
    score: int = 0

    @classmethod
    def of(cls, lead: Lead | None, conversation_id: int, channel: str) -> LeadView:
        """What the visitor of `conversation_id` may see of the lead: only the values their
        own conversation collected."""
        if lead is None:
            return cls(None, None, None, None, "frio", channel)
        f = lead.visible_in(conversation_id)
        # The reasons name values ("comuna fuera de cobertura: …"): shown only when every
        # known value is this conversation's own.
        own = f == lead.fields
        return cls(
            f.name,
            f.phone,
            f.service,
            f.area,
            lead.classification,
            lead.channel,
            tuple(lead.reasons) if own else (),
            lead.score,
        )

    @property
    def complete(self) -> bool:
        return all((self.name, self.phone, self.service, self.area))

    @property
    def priority(self) -> str:
        return {"caliente": "alta", "tibio": "media"}.get(self.classification, "baja")

    @property
    def saved(self) -> bool:
        """The original system's rule: a lead counts once it has a name and a phone or
        service."""
        return bool(self.name and (self.phone or self.service))


@dataclass(frozen=True)
class ReplyChunk:
    """Part of a reply as the model writes it (streaming)."""

    text: str


@dataclass(frozen=True)
class TurnCompleted:
    """A user's message answered: the reply is stored, this is the notice."""

    conversation_id: int
    inbound_id: int
    reply_id: int | None
    reply: str
    source: str
    lead: LeadView
    model_seconds: float = 0.0  # of the turn's time, what the brain (the model) took


ReplyEvent = ReplyChunk | TurnCompleted
ReplySlot = trio.MemorySendChannel[ReplyEvent]  # where a waiting web request hears its turn


@dataclass(frozen=True)
class InboundMessage:
    """A stored, pending user message for the conversation actor.

    `reply_slot` is where a waiting web chat request hears the reply; None for messages
    picked up again after a restart, whose replies are only stored."""

    conversation_id: int
    message_id: int
    channel: str
    text: str
    reply_slot: ReplySlot | None = None
    stream: bool = False  # the waiting client wants the reply as it is written
    external_id: str | None = None  # the provider's id (WhatsApp/Instagram)
    kind: str = "text"  # "text", or what a message without text was (image, audio...)
    attempted: bool = False  # its first attempt was counted when it was stored

    @classmethod
    def of(cls, stored: StoredMessage) -> InboundMessage:
        """The notice for a stored row (no one waiting on it)."""
        return cls(
            stored.conversation_id,
            stored.id,
            stored.channel,
            stored.content,
            external_id=stored.external_id,
            kind=stored.kind,
        )


@dataclass(frozen=True)
class OutboxReady:
    """New sends are committed to the outbox; the notifier should look now."""

    conversation_id: int


@dataclass(frozen=True)
class LeadChanged:
    """A lead changed class; owner notifications for it may be queued."""

    lead_id: int
    classification: LeadClass


@dataclass(frozen=True)
class OpsNoticeQueued:
    """A notice to operations about the suite's health is queued (store/ops_notices.py)."""


NotifierNotice = OutboxReady | LeadChanged | OpsNoticeQueued
