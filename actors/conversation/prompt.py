"""The system prompt: the business described from business.json, the business's own rules
(prompts/systemPrompt.txt) and a block for the channel."""

from __future__ import annotations

from sales.business import WEEKDAYS, WEEKDAYS_ES, BusinessConfig

MESSAGING_BLOCK = """CANAL: {channel}
- Máximo 2 líneas por mensaje, sin párrafos largos.
- Una sola pregunta por mensaje, en este orden: nombre, teléfono, servicio, comuna y urgencia.
- Como máximo un emoji por mensaje."""

WEB_BLOCK = """CANAL: chat del sitio web
- Mensajes breves (hasta 4 frases) y una pregunta a la vez."""


def schedule_lines(business: BusinessConfig) -> list[str]:
    lines = []
    for day in WEEKDAYS:
        hours = business.schedule.workingDays.get(day)
        if hours and hours.enabled:
            lines.append(f"{WEEKDAYS_ES[day]}: {hours.open} a {hours.close}")
        else:
            lines.append(f"{WEEKDAYS_ES[day]}: cerrado")
    return lines


def service_line(
    service_name: str, description: str, estimated: str | None, price: object, show_prices: bool
) -> str:
    parts = [service_name]
    if description:
        parts.append(description)
    if estimated:
        parts.append(f"duración estimada: {estimated}")
    if show_prices and price not in (None, ""):
        parts.append(f"precio: {price}")
    return " — ".join(parts)


def business_prompt(business: BusinessConfig) -> str:
    b = business.business
    style = business.conversationStyle
    pricing = business.pricing
    lines = [
        f"Eres el asistente comercial de {b.name} ({b.industry}).",
        b.description,
        "",
        "SERVICIOS:",
        *(
            "- " + service_line(s.name, s.description, s.estimatedTime, s.price, pricing.showPrices)
            for s in business.services
        ),
        "",
        "COBERTURA: regiones "
        + ", ".join(business.coverage.regions)
        + "; comunas "
        + ", ".join(business.coverage.communes)
        + ".",
    ]
    fees = business.coverage.additionalFees
    if fees and fees.enabled and fees.message:
        lines.append(f"Recargos: {fees.message}")
    lines += ["", f"HORARIO ({business.schedule.timezone}):", *schedule_lines(business)]
    emergency = business.schedule.emergencyService or {}
    if emergency.get("enabled"):
        lines.append(f"Urgencias: {emergency.get('hours', 'sí')}")
    lines.append("")
    if pricing.showPrices:
        lines.append("PRECIOS: puedes informar los precios indicados. " + pricing.message)
    else:
        lines.append("PRECIOS: no informes precios; ofrece una cotización. " + pricing.message)
    if pricing.paymentMethods:
        lines.append("Medios de pago: " + ", ".join(pricing.paymentMethods) + ".")
    contact = ", ".join(x for x in (b.phone, b.email, b.website) if x)
    if contact:
        lines.append(f"Contacto del negocio: {contact}")
    lines += [
        "",
        f"ESTILO: tono {style.tone}; trata al cliente de {style.formality}.",
        style.personality,
        *(f"- {g}" for g in style.guidelines),
    ]
    return "\n".join(line for line in lines if line is not None).strip()


def system_prompt(business: BusinessConfig, rules: str, channel: str) -> str:
    block = WEB_BLOCK if channel == "web" else MESSAGING_BLOCK.format(channel=channel)
    return "\n\n".join(part for part in (business_prompt(business), rules.strip(), block) if part)
