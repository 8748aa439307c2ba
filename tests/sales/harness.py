"""Runs turns through the real store and the real classifier (no suite, no network)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sales.business import BusinessConfig, load_business
from sales.classify import LeadClassifier
from sales.settings import Settings
from store import conversations, leads, messages
from store.db import Database, open_database
from store.leads import Lead
from store.messages import ReplyRecord

ROOT = Path(__file__).resolve().parents[2]
WA_ID = "56987654321"


def example_business() -> BusinessConfig:
    return load_business(ROOT / "config" / "business.json")


@dataclass
class Desk:
    """A store and a classifier; `say` stores a turn as the conversation actor would."""

    db: Database
    classifier: LeadClassifier

    @classmethod
    def open(
        cls, tmp: Path, business: BusinessConfig | None = None, settings: Settings | None = None
    ) -> Desk:
        db = open_database(tmp / "leads.db")
        return cls(db, LeadClassifier(business or example_business(), settings or Settings()))

    def say(
        self,
        text: str,
        *,
        channel: str = "web",
        key: str = "s",
        answer: str = "Gracias.",
        source: str = "offline",
        brain_lead: str | None = None,
    ) -> Lead | None:
        conversation = conversations.find_active(
            self.db, channel, key
        ) or conversations.open_conversation(self.db, channel, key)
        inbound = messages.add_inbound(self.db, conversation.id, channel, text)
        assert inbound is not None
        reply_id = messages.record_reply(
            self.db,
            conversation.id,
            channel,
            [inbound.id],
            ReplyRecord(answer, source, brain_lead=brain_lead),
        )
        assert reply_id is not None
        self.classifier.classify(self.db, reply_id)
        return leads.for_conversation(self.db, conversation.id)

    def asked(self, question: str, *, channel: str = "web", key: str = "s") -> None:
        """The assistant's question before the person's next line ("¿Cómo te llamas?")."""
        conversation = conversations.find_active(
            self.db, channel, key
        ) or conversations.open_conversation(self.db, channel, key)
        self.db.insert(
            "INSERT INTO messages (conversation_id, channel, role, content, created_at,"
            " classified_at) VALUES (?, ?, 'assistant', ?, 'x', 'x')",
            (conversation.id, channel, question),
        )
