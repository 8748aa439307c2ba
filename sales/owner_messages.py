"""What the owner receives: lead alerts, follow-up reminders and the daily summary, as
plain text and HTML e-mail, and the same events as JSON for a webhook (Slack, a CRM).

Composed when the event happens (a snapshot of the lead then), stored, sent later."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from sales.business import BusinessConfig
from store.leads import Lead
from store.owner_notifications import OwnerMessage

LABELS = {"caliente": "CALIENTE", "tibio": "TIBIO", "frio": "FRÍO"}
CHANNEL_NAMES = {"web": "Web", "whatsapp": "WhatsApp", "instagram": "Instagram"}
COLOURS = {"caliente": "#dc2626", "tibio": "#d97706", "frio": "#2563eb"}


@dataclass(frozen=True)
class Line:
    role: str
    content: str
    at: str


def wa_link(phone: str | None) -> str | None:
    digits = "".join(c for c in phone or "" if c.isdigit())
    return f"https://wa.me/{digits}" if len(digits) >= 8 else None


def _field_rows(lead: Lead) -> list[tuple[str, str]]:
    f = lead.fields
    rows = [
        ("Nombre", f.name),
        ("Teléfono", f.phone),
        ("E-mail", f.email),
        ("Servicio", f.service),
        ("Comuna", f.area),
        ("Urgencia", f.urgency),
        ("Presupuesto", lead.budget),
        ("Canal", CHANNEL_NAMES.get(lead.channel, lead.channel)),
        ("Puntaje", str(lead.score)),
    ]
    return [(k, v or "—") for k, v in rows]


def lead_alert(business: BusinessConfig, lead: Lead, lines: Sequence[Line]) -> OwnerMessage:
    urgent = lead.classification == "caliente"
    prefix = business.notifications.emailSubjectPrefix.strip()
    who = lead.fields.name or "sin nombre"
    what = f" – {lead.fields.service}" if lead.fields.service else ""
    subject = f"{prefix} {'🔥 ' if urgent else ''}Lead {LABELS[lead.classification]}: {who}{what}"
    link = wa_link(lead.fields.phone)
    head = (
        "Este cliente muestra intención de compra: contáctalo cuanto antes."
        if urgent
        else "Un nuevo interesado dejó sus datos."
    )
    text = [f"Lead {LABELS[lead.classification]} (#{lead.id}) — {business.display_name}", head, ""]
    text += [f"{k}: {v}" for k, v in _field_rows(lead)]
    text += ["", "Por qué:"] + [f"- {r}" for r in lead.reasons]
    if link:
        text += ["", f"WhatsApp: {link}"]
    if lines:
        text += ["", "Últimos mensajes:"]
        text += [f"{'Cliente' if ln.role == 'user' else 'Asistente'}: {ln.content}" for ln in lines]
    colour = COLOURS[lead.classification]
    html = [
        '<div style="font-family:Arial,sans-serif;max-width:600px">',
        f'<h2 style="background:{colour};color:#fff;padding:12px;margin:0">'
        f"{'🔥 ' if urgent else ''}Lead {LABELS[lead.classification]}: {escape(who)}</h2>",
        f"<p>{escape(head)}</p>",
        '<table style="border-collapse:collapse">',
        *(
            f'<tr><th style="text-align:left;padding:4px 8px">{escape(k)}</th>'
            f'<td style="padding:4px 8px">{escape(v)}</td></tr>'
            for k, v in _field_rows(lead)
        ),
        "</table>",
        "<h3>Por qué</h3><ul>",
        *(f"<li>{escape(r)}</li>" for r in lead.reasons),
        "</ul>",
    ]
    if link:
        html.append(
            f'<p><a href="{escape(link)}" style="background:#16a34a;color:#fff;padding:10px 16px;'
            'text-decoration:none;border-radius:4px">Contactar por WhatsApp</a></p>'
        )
    if lines:
        html.append("<h3>Últimos mensajes</h3>")
        for ln in lines:
            who_said = "Cliente" if ln.role == "user" else "Asistente"
            html.append(f"<p><b>{who_said}:</b> {escape(ln.content)}</p>")
    html.append("</div>")
    return OwnerMessage(subject, "\n".join(text), "\n".join(html), urgent)


def lead_event(business: BusinessConfig, event: str, lead: Lead, **extra: object) -> OwnerMessage:
    """The same event for a webhook: a JSON document (the body)."""
    f = lead.fields
    document = {
        "event": event,
        "type": {"caliente": "hot", "tibio": "warm", "frio": "cold"}[lead.classification],
        "business": business.business.name,
        "lead": {
            "id": lead.id,
            "nombre": f.name,
            "telefono": f.phone,
            "email": f.email,
            "servicio": f.service,
            "comuna": f.area,
            "urgencia": f.urgency,
            "presupuesto": lead.budget,
            "estado": lead.classification,
            "puntaje": lead.score,
            "razones": list(lead.reasons),
            "canal": lead.channel,
            "whatsapp": wa_link(f.phone),
            "creado": lead.created_at,
        },
        **extra,
    }
    return OwnerMessage(event, json.dumps(document, ensure_ascii=False), None, False)


def follow_up_reminder(business: BusinessConfig, lead: Lead, why: str) -> OwnerMessage:
    who = lead.fields.name or f"lead #{lead.id}"
    prefix = business.notifications.emailSubjectPrefix.strip()
    subject = f"{prefix} Seguimiento pendiente: {who}"
    head = (
        f"El lead {who} ({LABELS[lead.classification]}) no responde desde "
        f"{lead.last_user_message_at} y no le podemos escribir nosotros: {why}. "
        "Te sugerimos contactarlo directamente."
    )
    rows = _field_rows(lead)
    text = "\n".join([head, "", *(f"{k}: {v}" for k, v in rows)])
    link = wa_link(lead.fields.phone)
    if link:
        text += f"\n\nWhatsApp: {link}"
    html = (
        f"<p>{escape(head)}</p><table>"
        + "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
        + "</table>"
        + (f'<p><a href="{escape(link)}">Contactar por WhatsApp</a></p>' if link else "")
    )
    return OwnerMessage(subject, text, html, False)


SUMMARY_LISTED = 50  # follow-ups due named in the daily summary, the longest silent first
SUMMARY_COUNTED = 1000  # beyond: "más de 1000"


def daily_summary(
    business: BusinessConfig,
    day: str,
    by_class: Mapping[str, int],
    by_channel: dict[str, int],
    due: Sequence[Lead],
    due_total: int | None = None,
) -> OwnerMessage:
    """`due`: the follow-ups due listed (the longest silent first), of `due_total` (counted
    to a cap: more is "más de"; None: exactly those listed)."""
    prefix = business.notifications.emailSubjectPrefix.strip()
    total = sum(by_class.values())
    subject = f"{prefix} Resumen del {day}: {total} lead(s)"
    lines = [f"Resumen de {business.display_name} — leads del {day}", ""]
    lines += [f"{LABELS[c]}: {by_class.get(c, 0)}" for c in ("caliente", "tibio", "frio")]
    lines += [""] + [f"{CHANNEL_NAMES[c]}: {by_channel.get(c, 0)}" for c in CHANNEL_NAMES]
    counted = len(due) if due_total is None else due_total
    beyond = "más de " if due_total is not None and due_total > SUMMARY_COUNTED else ""
    lines += ["", f"Seguimientos pendientes: {beyond}{min(counted, SUMMARY_COUNTED)}"]
    lines += [
        f"- {ld.fields.name or f'lead #{ld.id}'} ({LABELS[ld.classification]}, "
        f"{CHANNEL_NAMES.get(ld.channel, ld.channel)}) {ld.fields.phone or ''}".rstrip()
        for ld in due
    ]
    if beyond:
        lines.append(f"… de más de {SUMMARY_COUNTED} en total: el resto, en el panel")
    elif counted > len(due):
        lines.append(f"… y {counted - len(due)} más en el panel")
    html = (
        '<div style="font-family:Arial,sans-serif">'
        + "".join(f"<p>{escape(line)}</p>" if line else "<br>" for line in lines)
        + "</div>"
    )
    return OwnerMessage(subject, "\n".join(lines), html, False)
