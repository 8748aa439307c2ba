"""Leads: the people conversations are about, with what they told us and how warm they are.

A conversation finds its lead only by a verified channel identity (`whatsapp:<wa_id>`, Meta's
business-scoped user id, `instagram:<id>`, `web:<session>`). A phone or e-mail a person types
is a *claim*: kept on their own lead, never a link to someone else's. Leads that claim the
same phone or e-mail are shown to the owner as possibly one person; the owner merges them by
hand, and every merge is kept in an audit log with the merged lead as it was. Every change of
class is kept. Leads of the demo sandbox (`sim:` conversations) are flagged and left out of
everything real: follow-ups, summaries, lists, statistics and exports."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from . import conversations
from .db import Database, utc_now

LeadClass = Literal["frio", "tibio", "caliente"]  # cold, warm, hot
CLASSIFICATIONS: tuple[LeadClass, ...] = ("frio", "tibio", "caliente")
STATUSES = ("new", "contacted", "won", "lost")


@dataclass(frozen=True)
class LeadFields:
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    service: str | None = None
    area: str | None = None
    urgency: str | None = None

    def merged_over(self, older: LeadFields) -> LeadFields:
        """What we know now: these values, falling back to what we knew before."""
        return replace(
            older, **{f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}
        )

    def any(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True)
class Lead:
    id: int
    channel: str
    fields: LeadFields
    classification: LeadClass
    status: str
    contacted: bool
    created_at: str
    updated_at: str
    budget: str | None = None
    score: int = 0
    reasons: tuple[str, ...] = ()
    signals: tuple[str, ...] = ()
    opted_out_at: str | None = None
    last_user_message_at: str | None = None
    sources: dict[str, Any] = field(default_factory=dict)  # field -> where it came from
    sandbox: bool = False

    def visible_in(self, conversation_id: int) -> LeadFields:
        """Only the values this conversation collected: all its visitor may be shown (a
        merged lead's other conversations, or data from before, stay with the owner)."""

        def own(name: str) -> bool:
            source = self.sources.get(name)
            return isinstance(source, dict) and source.get("conversation") == conversation_id

        return LeadFields(
            **{
                f.name: getattr(self.fields, f.name) if own(f.name) else None
                for f in fields(LeadFields)
            }
        )


@dataclass(frozen=True)
class Classification:
    """What the classifier decided for a lead after one turn."""

    fields: LeadFields
    budget: str | None
    classification: LeadClass
    score: int
    reasons: Sequence[str]
    signals: Sequence[str]
    sources: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    """A lead after a turn, and the class it had before (None: the lead is new)."""

    lead: Lead
    before: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.lead.classification


_COLUMNS = (
    "id, channel, name, phone, email, service, area, urgency, classification, status,"
    " contacted, created_at, updated_at, budget, score, reasons, signals, opted_out_at,"
    " last_user_message_at, sources, sandbox"
)
SANDBOX_PREFIX = "sim:"  # conversations of the demo and of /api/simulate


def _from_row(row: dict[str, Any]) -> Lead:
    return Lead(
        id=row["id"],
        channel=row["channel"],
        fields=LeadFields(
            name=row["name"],
            phone=row["phone"],
            email=row["email"],
            service=row["service"],
            area=row["area"],
            urgency=row["urgency"],
        ),
        classification=row["classification"],
        status=row["status"],
        contacted=bool(row["contacted"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        budget=row["budget"],
        score=int(row["score"] or 0),
        reasons=tuple(json.loads(row["reasons"] or "[]")),
        signals=tuple(json.loads(row["signals"] or "[]")),
        opted_out_at=row["opted_out_at"],
        last_user_message_at=row["last_user_message_at"],
        sources=_json_object(row["sources"]),
        sandbox=bool(row["sandbox"]),
    )


def _json_object(text: str | None) -> dict[str, Any]:
    try:
        data = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def get(db: Database, lead_id: int) -> Lead | None:
    row = db.one(f"SELECT {_COLUMNS} FROM leads WHERE id = ?", (lead_id,))
    return _from_row(row) if row else None


def for_conversation(db: Database, conversation_id: int) -> Lead | None:
    # A scalar subquery, not a JOIN: the same plan, a third of the time in SQLite.
    row = db.one(
        f"SELECT {_COLUMNS} FROM leads WHERE id = (SELECT lead_id FROM conversations WHERE id = ?)",
        (conversation_id,),
    )
    return _from_row(row) if row else None


def _add_identity(db: Database, kind: str, value: str, lead_id: int) -> None:
    db.execute(
        "INSERT INTO lead_identities (kind, value, lead_id, created_at)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (kind, value) DO NOTHING",
        (kind, value, lead_id, utc_now()),
    )


def resolve(db: Database, conversation_id: int, channel: str, external_key: str) -> Lead | None:
    """The lead of this conversation's person: the conversation's own, else the one its
    verified channel identity belongs to. None: no lead yet. Typed data never links."""
    with db.transaction():
        current = for_conversation(db, conversation_id)
        if current is not None:
            return current
        owner = db.scalar(
            "SELECT lead_id FROM lead_identities WHERE kind = ? AND value = ?",
            (channel, external_key),
        )
        if owner is None:
            return None
        conversations.attach_lead(db, conversation_id, int(owner))
        return get(db, int(owner))


def create(db: Database, conversation_id: int, channel: str, external_key: str) -> Lead:
    now = utc_now()
    with db.transaction():
        lead_id = db.insert(
            "INSERT INTO leads (channel, classification, created_at, updated_at,"
            " last_interaction_at, sandbox) VALUES (?, 'frio', ?, ?, ?, ?)",
            (channel, now, now, now, int(external_key.startswith(SANDBOX_PREFIX))),
        )
        conversations.attach_lead(db, conversation_id, lead_id)
        _add_identity(db, channel, external_key, lead_id)
    lead = get(db, lead_id)
    assert lead is not None
    return lead


class MergeError(ValueError):
    """Two leads that cannot be merged (the same lead, a missing one, sandbox with real)."""


def merge(db: Database, lead_id: int, *, into: int, actor: str) -> Lead:
    """The owner's merge: everything of `lead_id` moves to `into` — both transcripts stay,
    as conversations of the kept lead — known fields fill the kept lead's gaps, the warmer
    class is kept, and the merged lead is written to the audit log as it was."""
    with db.transaction():
        gone, kept = get(db, lead_id), get(db, into)
        if gone is None or kept is None:
            raise MergeError("lead no encontrado")
        if gone.id == kept.id:
            raise MergeError("un lead no se une consigo mismo")
        if gone.sandbox != kept.sandbox:
            raise MergeError("un lead de la demo no se une con uno real")
        merged = kept.fields.merged_over(gone.fields)  # the kept lead's values win
        sources = {**gone.sources, **kept.sources}
        rank = {c: i for i, c in enumerate(CLASSIFICATIONS)}
        warmer = max(kept.classification, gone.classification, key=rank.__getitem__)
        signals = sorted(set(kept.signals) | set(gone.signals))
        _move_rows(db, lead_id, into)
        notes = (db.scalar("SELECT notes FROM leads WHERE id = ?", (into,)) or "") + "\n"
        notes += db.scalar("SELECT notes FROM leads WHERE id = ?", (lead_id,)) or ""
        wrote = [t for t in (kept.last_user_message_at, gone.last_user_message_at) if t]
        db.execute(
            "UPDATE leads SET name = ?, phone = ?, email = ?, service = ?, area = ?, urgency = ?,"
            " classification = ?, signals = ?, sources = ?, budget = coalesce(budget, ?),"
            " opted_out_at = coalesce(opted_out_at, ?), last_user_message_at = ?, notes = ?,"
            " updated_at = ? WHERE id = ?",
            (
                merged.name,
                merged.phone,
                merged.email,
                merged.service,
                merged.area,
                merged.urgency,
                warmer,
                json.dumps(signals, ensure_ascii=False),
                json.dumps(sources, ensure_ascii=False),
                gone.budget,
                gone.opted_out_at,
                max(wrote, default=None),
                notes.strip("\n"),
                utc_now(),
                into,
            ),
        )
        db.execute(
            "INSERT INTO lead_merges (kept_id, merged_id, merged_lead, actor, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (into, lead_id, json.dumps(_snapshot(gone), ensure_ascii=False), actor, utc_now()),
        )
        db.execute("DELETE FROM leads WHERE id = ?", (lead_id,))
    lead = get(db, into)
    assert lead is not None
    return lead


def _move_rows(db: Database, lead_id: int, into: int) -> None:
    """Give the merged lead's rows to the kept one. A follow-up number or a claim the kept
    lead already has stays behind and goes with the merged lead (ON DELETE CASCADE)."""
    for table in ("conversations", "lead_identities", "lead_classifications"):
        db.execute(f"UPDATE {table} SET lead_id = ? WHERE lead_id = ?", (into, lead_id))
    db.execute(
        "UPDATE follow_ups SET lead_id = ? WHERE lead_id = ? AND NOT EXISTS (SELECT 1"
        " FROM follow_ups k WHERE k.lead_id = ? AND k.cycle = follow_ups.cycle"
        " AND k.number = follow_ups.number)",
        (into, lead_id, into),
    )
    db.execute(
        "UPDATE lead_claims SET lead_id = ? WHERE lead_id = ? AND NOT EXISTS (SELECT 1"
        " FROM lead_claims k WHERE k.lead_id = ? AND k.kind = lead_claims.kind"
        " AND k.value = lead_claims.value)",
        (into, lead_id, into),
    )
    db.execute("UPDATE owner_notifications SET lead_id = ? WHERE lead_id = ?", (into, lead_id))


def _snapshot(lead: Lead) -> dict[str, Any]:
    return {
        "id": lead.id,
        "channel": lead.channel,
        **{f.name: getattr(lead.fields, f.name) for f in fields(lead.fields)},
        "classification": lead.classification,
        "status": lead.status,
        "budget": lead.budget,
        "sources": lead.sources,
        "created_at": lead.created_at,
    }


def merges(db: Database, lead_id: int) -> list[dict[str, Any]]:
    """The merges into a lead, oldest first: who, when, and the merged lead as it was."""
    rows = db.all(
        "SELECT merged_id, merged_lead, actor, created_at FROM lead_merges"
        " WHERE kept_id = ? ORDER BY id",
        (lead_id,),
    )
    return [{**r, "merged_lead": _json_object(r["merged_lead"])} for r in rows]


@dataclass(frozen=True)
class PossibleMatch:
    """Another lead that claims the same phone or e-mail: perhaps the same person."""

    lead_id: int
    name: str | None
    channel: str
    kind: str
    value: str


def possible_matches(db: Database, lead_id: int) -> list[PossibleMatch]:
    rows = db.all(
        "SELECT DISTINCT o.lead_id AS lead_id, l.name AS name, l.channel AS channel,"
        " o.kind AS kind, o.value AS value FROM lead_claims c"
        " JOIN lead_claims o ON o.kind = c.kind AND o.value = c.value AND o.lead_id != c.lead_id"
        " JOIN leads l ON l.id = o.lead_id"
        " WHERE c.lead_id = ? AND l.sandbox = (SELECT sandbox FROM leads WHERE id = ?)"
        " ORDER BY o.lead_id",
        (lead_id, lead_id),
    )
    return [PossibleMatch(**r) for r in rows]


def _claim(db: Database, lead_id: int, kind: str, value: str, message_id: int | None) -> None:
    db.execute(
        "INSERT INTO lead_claims (lead_id, kind, value, message_id, created_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (lead_id, kind, value) DO NOTHING",
        (lead_id, kind, value, message_id, utc_now()),
    )


def apply(
    db: Database, lead: Lead, result: Classification, *, reply_id: int | None, user_at: str | None
) -> Change:
    """Store a turn's classification; a change of class is added to the history."""
    now = utc_now()
    with db.transaction():
        _write_classification(db, lead.id, result, now, user_at)
        if result.fields.phone and result.fields.phone != lead.fields.phone:
            _claim(db, lead.id, "phone", result.fields.phone, _message_of(result, "phone"))
        if result.fields.email and result.fields.email != lead.fields.email:
            _claim(db, lead.id, "email", result.fields.email.lower(), _message_of(result, "email"))
        first = lead.score == 0 and not db.scalar(
            "SELECT 1 FROM lead_classifications WHERE lead_id = ?", (lead.id,)
        )
        if first or result.classification != lead.classification:
            _add_to_history(db, lead.id, result, reply_id, now)
    updated = replace(
        lead,
        fields=result.fields,
        budget=result.budget,
        classification=result.classification,
        score=result.score,
        reasons=tuple(result.reasons),
        signals=tuple(result.signals),
        sources=dict(result.sources),
        updated_at=now,
        last_user_message_at=user_at or lead.last_user_message_at,
    )
    return Change(updated, None if first else lead.classification)


def _write_classification(
    db: Database, lead_id: int, result: Classification, now: str, user_at: str | None
) -> None:
    db.execute(
        "UPDATE leads SET name = ?, phone = ?, email = ?, service = ?, area = ?,"
        " urgency = ?, budget = ?, classification = ?, score = ?, reasons = ?, signals = ?,"
        " sources = ?, updated_at = ?, last_interaction_at = ?,"
        " last_user_message_at = coalesce(?, last_user_message_at) WHERE id = ?",
        (
            result.fields.name,
            result.fields.phone,
            result.fields.email,
            result.fields.service,
            result.fields.area,
            result.fields.urgency,
            result.budget,
            result.classification,
            result.score,
            json.dumps(list(result.reasons), ensure_ascii=False),
            json.dumps(list(result.signals), ensure_ascii=False),
            json.dumps(result.sources, ensure_ascii=False),
            now,
            now,
            user_at,
            lead_id,
        ),
    )


def _add_to_history(
    db: Database, lead_id: int, result: Classification, reply_id: int | None, now: str
) -> None:
    db.execute(
        "INSERT INTO lead_classifications (lead_id, classification, score, reasons,"
        " reply_id, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (
            lead_id,
            result.classification,
            result.score,
            json.dumps(list(result.reasons), ensure_ascii=False),
            reply_id,
            now,
        ),
    )


def _message_of(result: Classification, name: str) -> int | None:
    source = result.sources.get(name)
    message = source.get("message") if isinstance(source, dict) else None
    return message if isinstance(message, int) else None


def history(db: Database, lead_id: int) -> list[tuple[str, int, list[str], str]]:
    """(classification, score, reasons, when) of every change, oldest first."""
    rows = db.all(
        "SELECT classification, score, reasons, created_at FROM lead_classifications"
        " WHERE lead_id = ? ORDER BY id",
        (lead_id,),
    )
    return [
        (r["classification"], int(r["score"]), json.loads(r["reasons"]), r["created_at"])
        for r in rows
    ]


def opt_out(db: Database, lead_id: int) -> None:
    db.execute(
        "UPDATE leads SET opted_out_at = coalesce(opted_out_at, ?), updated_at = ? WHERE id = ?",
        (utc_now(), utc_now(), lead_id),
    )


def follow_up_candidates(db: Database, silent_since: str) -> list[Lead]:
    """Warm and hot leads, not contacted nor opted out, silent since before `silent_since`."""
    rows = db.all(
        f"SELECT {_COLUMNS} FROM leads WHERE classification IN ('tibio', 'caliente')"
        " AND contacted = 0 AND status = 'new' AND opted_out_at IS NULL AND sandbox = 0"
        " AND last_user_message_at IS NOT NULL AND last_user_message_at <= ?"
        " ORDER BY last_user_message_at",
        (silent_since,),
    )
    return [_from_row(r) for r in rows]


_IN_CYCLE = "FROM follow_ups f WHERE f.lead_id = leads.id AND f.cycle = leads.last_user_message_at"


def follow_ups_due(
    db: Database,
    silent_since: str,
    hot_before: str,
    warm_before: str,
    max_count: int,
    limit: int,
    count_to: int,
) -> tuple[list[Lead], int]:
    """The candidates (see follow_up_candidates) whose next follow-up is due: fewer than
    `max_count` in this silence, the last one (or the silence's start) before
    `hot_before` for a hot lead, `warm_before` for a warm one. The first `limit`, longest
    silent first, and how many there are, counted to `count_to` at most. In SQL: a store
    imported with years of quiet leads has hundreds of thousands of them."""
    where = (
        "classification IN ('tibio', 'caliente') AND contacted = 0 AND status = 'new'"
        " AND opted_out_at IS NULL AND sandbox = 0 AND last_user_message_at IS NOT NULL"
        f" AND last_user_message_at <= ? AND (SELECT count(*) {_IN_CYCLE}) < ?"
        f" AND coalesce((SELECT max(f.created_at) {_IN_CYCLE}), last_user_message_at)"
        " <= CASE WHEN classification = 'caliente' THEN ? ELSE ? END"
    )
    params = (silent_since, max_count, hot_before, warm_before)
    rows = db.all(
        f"SELECT {_COLUMNS} FROM leads WHERE {where} ORDER BY last_user_message_at LIMIT ?",
        (*params, limit),
    )
    total = int(
        db.scalar(
            f"SELECT count(*) FROM (SELECT 1 FROM leads WHERE {where} LIMIT ?) d",
            (*params, count_to),
        )
    )
    return [_from_row(r) for r in rows], total


# Warm and hot leads, still new, that wrote since ? and have no owner alert sent.
_UNALERTED = (
    "l.classification IN ('tibio', 'caliente') AND l.contacted = 0 AND l.status = 'new'"
    " AND l.opted_out_at IS NULL AND l.sandbox = 0 AND l.last_user_message_at >= ?"
    " AND NOT EXISTS (SELECT 1 FROM owner_notifications sent WHERE sent.lead_id = l.id"
    "   AND substr(sent.event, 1, 6) = 'alert_' AND sent.status = 'sent')"
)
_CONTACTABLE = (
    "coalesce(l.name, '') <> '' AND (coalesce(l.phone, '') <> '' OR coalesce(l.email, '') <> '')"
)
_ALERTS = (
    "SELECT 1 FROM owner_notifications a WHERE a.lead_id = l.id"
    " AND substr(a.event, 1, 6) = 'alert_'"
)


@dataclass(frozen=True)
class UnalertedCount:
    """Warm and hot leads, still new, that wrote since a time and have no owner alert sent,
    counted by what /health/detailed tells apart."""

    classification: str
    contactable: bool  # a name, and a phone or an e-mail
    alerted: bool  # some alert was queued for it (not sent)
    failed: bool  # one of those failed
    leads: int


def unalerted_since(db: Database, since: str) -> list[UnalertedCount]:
    """For /health/detailed, counted in SQL: a busy week (or a fresh import) of 100,000
    such leads read as Lead objects, one query each for their alerts, stalled the event
    loop for seconds on every health check and scrape."""
    return [
        UnalertedCount(str(k), bool(c), bool(a), bool(f), int(n))
        for k, c, a, f, n in db.rows(
            f"SELECT l.classification, CASE WHEN {_CONTACTABLE} THEN 1 ELSE 0 END,"
            f" CASE WHEN EXISTS ({_ALERTS}) THEN 1 ELSE 0 END,"
            f" CASE WHEN EXISTS ({_ALERTS} AND a.error IS NOT NULL) THEN 1 ELSE 0 END,"
            f" count(*) FROM leads l WHERE {_UNALERTED} GROUP BY 1, 2, 3, 4",
            (since,),
        )
    ]


def last_alert_error(db: Database, since: str, classifications: Sequence[str]) -> str | None:
    """The newest failed alert's error among those leads that should have one (the hot
    ones of `classifications`, and the warm ones that can be contacted): the lead that
    wrote last, its last failure."""
    if not classifications:
        return None
    marks = ", ".join("?" * len(classifications))
    error = db.scalar(
        "SELECT a.error FROM leads l JOIN owner_notifications a ON a.lead_id = l.id"
        f" WHERE {_UNALERTED} AND substr(a.event, 1, 6) = 'alert_' AND a.error IS NOT NULL"
        f" AND l.classification IN ({marks}) AND (l.classification = 'caliente' OR"
        f" ({_CONTACTABLE})) ORDER BY l.last_user_message_at DESC, a.id DESC LIMIT 1",
        (since, *classifications),
    )
    return None if error is None else str(error)


def created_between(db: Database, start: str, end: str) -> list[Lead]:
    rows = db.all(
        f"SELECT {_COLUMNS} FROM leads WHERE sandbox = 0 AND created_at >= ? AND created_at < ?"
        " ORDER BY id",
        (start, end),
    )
    return [_from_row(r) for r in rows]


def provenance(db: Database, lead: Lead) -> dict[str, dict[str, Any]]:
    """For the owner: where each known field came from — how it was found, the message (its
    text, channel and time) and the conversation."""
    out: dict[str, dict[str, Any]] = {}
    for name in (f.name for f in fields(LeadFields)):
        source = lead.sources.get(name)
        if not getattr(lead.fields, name) or not isinstance(source, dict):
            continue
        message = source.get("message")
        row = (
            db.one("SELECT content, channel, created_at FROM messages WHERE id = ?", (message,))
            if isinstance(message, int)
            else None
        )
        out[name] = {
            "como": source.get("how"),
            "conversacion": source.get("conversation"),
            "mensaje": message,
            "texto": row["content"] if row else None,
            "canal": row["channel"] if row else None,
            "fecha": row["created_at"] if row else None,
        }
    return out
