"""The labelled corpus (`tests/data/conversations/`) run through the real store and the real
classifier, with per-field precision and recall and class accuracy.

Two paths: `offline` (what the suite does with no model: the person's lines alone) and `llm`
(the same transcripts, each reply carrying a model's structured answer that is realistic and
sometimes wrong — a name nobody wrote, the business's own comuna, an invented e-mail, a wrong
service, "N/A" — merged by the classifier's rules). The fake model is deterministic: its
mistakes are drawn from a generator seeded by the conversation's id."""

from __future__ import annotations

import json
import random
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sales.business import BusinessConfig, fold
from sales.classify import LeadClassifier
from sales.settings import Settings
from sales.text import OptOut
from store import conversations, leads, messages
from store.db import open_database
from store.messages import ReplyRecord
from tests.sales.harness import example_business

CORPUS = Path(__file__).resolve().parents[1] / "data" / "conversations"
FIELDS = ("name", "phone", "email", "service", "area")


@dataclass(frozen=True)
class Conversation:
    id: str
    channel: str
    sender: str
    transcript: list[tuple[str, str]]
    expected: dict[str, Any]
    style: tuple[str, ...] = ()


def load_corpus(folder: Path = CORPUS) -> list[Conversation]:
    found = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        found.append(
            Conversation(
                data["id"],
                data["channel"],
                str(data["sender"]),
                [(line["role"], line["text"]) for line in data["transcript"]],
                data["expected"],
                tuple(data.get("style", ())),
            )
        )
    return found


@dataclass
class Tally:
    predicted: int = 0
    expected: int = 0
    correct: int = 0

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.correct / self.expected if self.expected else 1.0


@dataclass
class Report:
    fields: dict[str, Tally] = field(default_factory=lambda: {f: Tally() for f in FIELDS})
    classes_right: int = 0
    conversations: int = 0
    misses: list[str] = field(default_factory=list)

    @property
    def class_accuracy(self) -> float:
        return self.classes_right / self.conversations if self.conversations else 1.0


def _same(name: str, got: str | None, want: str | None) -> bool:
    if got is None or want is None:
        return got == want
    if name == "email":
        return got.lower() == want.lower()
    return " ".join(fold(got).split()) == " ".join(fold(want).split())


def evaluate(
    corpus: list[Conversation], path: str, business: BusinessConfig | None = None
) -> Report:
    business = business or example_business()
    service_names = {s.id: s.name for s in business.services}
    report = Report()
    with tempfile.TemporaryDirectory() as tmp:
        db = open_database(Path(tmp) / "corpus.db")
        classifier = LeadClassifier(business, Settings())
        for conv in corpus:
            lead = _replay(db, classifier, conv, path, business)
            got = {
                "name": lead.fields.name if lead else None,
                "phone": lead.fields.phone if lead else None,
                "email": lead.fields.email if lead else None,
                "service": lead.fields.service if lead else None,
                "area": lead.fields.area if lead else None,
            }
            want = dict(conv.expected)
            if want.get("service"):
                want["service"] = service_names[want["service"]]
            report.conversations += 1
            for name in FIELDS:
                tally = report.fields[name]
                tally.predicted += got[name] is not None
                tally.expected += want.get(name) is not None
                right = got[name] is not None and _same(name, got[name], want.get(name))
                tally.correct += right
                if not _same(name, got[name], want.get(name)):
                    report.misses.append(
                        f"{conv.id} {name}: got {got[name]!r}, want {want.get(name)!r}"
                    )
            klass = lead.classification if lead else "frio"
            report.classes_right += klass == conv.expected["class"]
            if klass != conv.expected["class"]:
                report.misses.append(f"{conv.id} class: got {klass}, want {conv.expected['class']}")
        db.close()
    return report


def _turns(conv: Conversation) -> Iterator[tuple[list[str], str]]:
    """(the user's lines, the assistant's answer to them), in order; a transcript that ends
    on the person's lines gets a plain acknowledgement as its last answer."""
    pending: list[str] = []
    for role, text in conv.transcript:
        if role == "user":
            pending.append(text)
        elif pending:
            yield pending, text
            pending = []
    if pending:
        yield pending, "Gracias."


def _replay(
    db: Any, classifier: LeadClassifier, conv: Conversation, path: str, business: BusinessConfig
) -> leads.Lead | None:
    key = conv.sender if conv.channel != "web" else f"corpus:{conv.id}"
    conversation = conversations.open_conversation(db, conv.channel, key)
    model = FakeModel(conv, business) if path == "llm" else None
    opt_out = OptOut(business.leadRules.optOutPhrases)  # as the conversation actor decides
    said: list[str] = []
    for number, (lines, answer) in enumerate(_turns(conv)):
        ids = []
        for text in lines:
            stored = messages.add_inbound(db, conversation.id, conv.channel, text)
            assert stored is not None
            ids.append(stored.id)
        said += lines
        brain_lead = json.dumps(model.answer(number, said)) if model else None
        reply_id = messages.record_reply(
            db,
            conversation.id,
            conv.channel,
            ids,
            ReplyRecord(
                answer,
                "optout" if any(opt_out(t) for t in lines) else "llm" if model else "offline",
                brain_lead=brain_lead,
            ),
        )
        assert reply_id is not None
        classifier.classify(db, reply_id)
    return leads.for_conversation(db, conversation.id)


class FakeModel:
    """A model's structured answer after each turn: the true values once the person has
    written them, plus the mistakes real models make, drawn deterministically."""

    def __init__(self, conv: Conversation, business: BusinessConfig) -> None:
        self.conv = conv
        self.random = random.Random(conv.id)
        self.business = business
        self.services = {s.id: s.name for s in business.services}

    def answer(self, turn: int, said: list[str]) -> dict[str, Any]:
        text = fold(" ".join(said))
        digits = re.sub(r"\D", "", " ".join(said))
        want = self.conv.expected
        out: dict[str, Any] = {}
        if want.get("name") and fold(want["name"]).split()[0] in text:
            out["name"] = want["name"]
        if want.get("phone") and want["phone"][-8:] in digits:
            out["phone"] = "9 " + want["phone"][-8:-4] + " " + want["phone"][-4:]
        if want.get("email") and want["email"].lower() in " ".join(said).lower():
            out["email"] = want["email"]
        if want.get("service") and turn >= 1:  # once the need has been described
            out["service"] = self.services[want["service"]].lower()
        if want.get("area") and fold(want["area"]) in text:
            out["area"] = want["area"]
        self._mistakes(out)
        out["estado"] = want["class"] if self.random.random() < 0.7 else "tibio"
        return out

    def _mistakes(self, out: dict[str, Any]) -> None:
        roll = self.random.random
        if roll() < 0.15:
            out["name"] = self.random.choice(["Juan", "Cliente", "María", "Usuario", "Don Pedro"])
        if roll() < 0.10:
            out["area"] = self.business.coverage.communes[0]
        if roll() < 0.10:
            out["email"] = "cliente@gmail.com"
        if roll() < 0.10:
            out["service"] = self.random.choice(list(self.services.values()))
        if roll() < 0.10:
            out["phone"] = "+56 9 1234 5678"
        for name in list(out):
            if roll() < 0.05:
                out[name] = self.random.choice(["N/A", "no indicado", "", None])
