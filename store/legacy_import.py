"""Import the original Node.js system's SQLite database (`db/leads.db` there): leads,
conversations with their JSON `historial`, follow-ups. Idempotent: what was imported is
remembered (`legacy_imports`), so running it twice adds nothing. Columns the original added
in later versions (canal, ultima_interaccion, instagram_id…) are read when present."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apsw

from .db import Database, utc_now

CHANNELS = ("web", "whatsapp", "instagram")
CLASSES = ("frio", "tibio", "caliente")
ROLES = {"user": "user", "assistant": "assistant", "usuario": "user", "asistente": "assistant"}


class LegacyError(Exception):
    """The file is not the original system's database; the message says why."""


class _DryRun(Exception):
    pass


@dataclass
class ImportReport:
    leads: int = 0
    conversations: int = 0
    messages: int = 0
    follow_ups: int = 0
    already: dict[str, int] = field(default_factory=lambda: {"leads": 0, "conversations": 0})
    skipped: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"leads: {self.leads} imported, {self.already['leads']} already there",
            f"conversations: {self.conversations} imported ({self.messages} messages),"
            f" {self.already['conversations']} already there",
            f"follow-ups: {self.follow_ups} imported",
        ]
        return out + [f"skipped: {reason}" for reason in self.skipped]


def _iso(value: object) -> str:
    """The original's "YYYY-MM-DD HH:MM:SS" (SQLite CURRENT_TIMESTAMP, UTC) as our ISO text."""
    text = str(value or "").strip()
    match = re.match(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(\.\d+)?", text)
    if not match:
        return utc_now()
    fraction = (match.group(3) or ".000")[:4].ljust(4, "0")
    return f"{match.group(1)}T{match.group(2)}{fraction}Z"


def _rows(legacy: apsw.Connection, table: str) -> list[dict[str, Any]]:
    cursor = legacy.execute(f"SELECT * FROM {table} ORDER BY id")
    try:
        names = [d[0] for d in cursor.get_description()]
    except apsw.ExecutionCompleteError:
        return []
    return [dict(zip(names, row, strict=True)) for row in cursor]


def _tables(legacy: apsw.Connection) -> set[str]:
    return {str(r[0]) for r in legacy.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _seen(db: Database, kind: str, legacy_id: object) -> int | None:
    value = db.scalar(
        "SELECT new_id FROM legacy_imports WHERE kind = ? AND legacy_id = ?", (kind, str(legacy_id))
    )
    return None if value is None else int(value)


def _remember(db: Database, kind: str, legacy_id: object, new_id: int) -> None:
    db.execute(
        "INSERT INTO legacy_imports (kind, legacy_id, new_id, imported_at) VALUES (?, ?, ?, ?)",
        (kind, str(legacy_id), new_id, utc_now()),
    )


def import_legacy(db: Database, path: Path, *, dry_run: bool = False) -> ImportReport:
    if not path.is_file():
        raise LegacyError(f"{path}: no such file")
    try:
        legacy = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
        tables = _tables(legacy)
    except apsw.Error as exc:
        raise LegacyError(f"{path}: not a SQLite database ({type(exc).__name__})") from None
    try:
        if "leads" not in tables:
            raise LegacyError(f"{path}: no table 'leads' (is this the original's db/leads.db?)")
        report = ImportReport()
        try:
            with db.transaction():
                leads_map = _leads(db, _rows(legacy, "leads"), report)
                if "conversaciones" in tables:
                    _conversations(db, _rows(legacy, "conversaciones"), leads_map, report)
                if "follow_ups" in tables:
                    _follow_ups(db, _rows(legacy, "follow_ups"), leads_map, report)
                if dry_run:
                    raise _DryRun
        except _DryRun:
            pass  # everything counted, nothing kept
        except (apsw.SQLError, KeyError) as exc:
            # A table of that name but not the original's columns (rolled back: nothing kept).
            raise LegacyError(
                f"{path}: not the original system's schema ({type(exc).__name__}: {exc})"
            ) from None
        return report
    finally:
        legacy.close()


def _leads(db: Database, rows: list[dict[str, Any]], report: ImportReport) -> dict[str, int]:
    mapping: dict[str, int] = {}
    for row in rows:
        known = _seen(db, "lead", row["id"])
        if known is not None:
            mapping[str(row["id"])] = known
            report.already["leads"] += 1
            continue
        channel = row.get("canal") if row.get("canal") in CHANNELS else "web"
        klass = row.get("estado") if row.get("estado") in CLASSES else "frio"
        contacted = bool(row.get("contactado"))
        created = _iso(row.get("fecha_creacion"))
        updated = _iso(row.get("fecha_actualizacion") or row.get("fecha_creacion"))
        last = _iso(row.get("ultima_interaccion") or row.get("fecha_actualizacion"))
        new_id = db.insert(
            "INSERT INTO leads (channel, name, phone, service, area, urgency, classification,"
            " status, contacted, notes, created_at, updated_at, last_interaction_at,"
            " last_user_message_at, reasons) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                channel,
                row.get("nombre"),
                row.get("telefono"),
                row.get("servicio"),
                row.get("comuna"),
                row.get("urgencia"),
                klass,
                "contacted" if contacted else "new",
                int(contacted),
                row.get("notas"),
                created,
                updated,
                last,
                last,
                json.dumps(["importado del sistema anterior"], ensure_ascii=False),
            ),
        )
        for kind, value in (("phone", row.get("telefono")), ("instagram", row.get("instagram_id"))):
            if value:
                db.execute(
                    "INSERT INTO lead_identities (kind, value, lead_id, created_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (kind, value) DO NOTHING",
                    (kind, str(value), new_id, created),
                )
        _remember(db, "lead", row["id"], new_id)
        mapping[str(row["id"])] = new_id
        report.leads += 1
    return mapping


def _conversations(
    db: Database, rows: list[dict[str, Any]], leads_map: dict[str, int], report: ImportReport
) -> None:
    for row in rows:
        if _seen(db, "conversation", row["id"]) is not None:
            report.already["conversations"] += 1
            continue
        try:
            history = json.loads(row.get("historial") or "[]")
        except json.JSONDecodeError:
            report.skipped.append(f"conversation {row['id']}: its historial is not JSON")
            history = []
        channel = row.get("canal") if row.get("canal") in CHANNELS else "web"
        created = _iso(row.get("fecha_creacion"))
        conversation_id = db.insert(
            "INSERT INTO conversations (channel, external_key, status, lead_id, created_at,"
            " updated_at) VALUES (?, ?, 'closed', ?, ?, ?)",
            (
                channel,
                f"legacy:{row.get('session_id') or row['id']}",
                leads_map.get(str(row.get("lead_id"))),
                created,
                _iso(row.get("fecha_actualizacion") or row.get("fecha_creacion")),
            ),
        )
        for item in history if isinstance(history, list) else []:
            if not isinstance(item, dict):
                continue
            role = ROLES.get(str(item.get("role", "")).lower())
            content = item.get("content")
            if role is None or not isinstance(content, str) or not content.strip():
                continue  # system prompts and empty lines are not part of the transcript
            db.execute(
                "INSERT INTO messages (conversation_id, channel, role, content, status,"
                " source, created_at, classified_at) VALUES (?, ?, ?, ?, ?, 'legacy', ?, ?)",
                (
                    conversation_id,
                    channel,
                    role,
                    content,
                    "handled" if role == "user" else None,
                    created,
                    created if role == "assistant" else None,
                ),
            )
            report.messages += 1
        _remember(db, "conversation", row["id"], conversation_id)
        report.conversations += 1


def _follow_ups(
    db: Database, rows: list[dict[str, Any]], leads_map: dict[str, int], report: ImportReport
) -> None:
    for row in rows:
        lead_id = leads_map.get(str(row.get("lead_id")))
        if lead_id is None or _seen(db, "follow_up", row["id"]) is not None:
            continue
        sent = _iso(row.get("fecha_envio"))
        reason = (
            f"{row.get('status') or '?'} ({row.get('type') or '?'}): {row.get('message') or ''}"
        )
        new_id = db.insert(
            "INSERT INTO follow_ups (lead_id, cycle, number, channel, status, reason,"
            " created_at) VALUES (?, ?, ?, ?, 'imported', ?, ?)",
            (
                lead_id,
                f"legacy:{row['id']}",
                1,
                str(row.get("type") or "legacy"),
                reason[:500],
                sent,
            ),
        )
        _remember(db, "follow_up", row["id"], new_id)
        report.follow_ups += 1
