"""The suite's own words in a conversation: when it cannot read a message, when a person
opts out, and when the brain failed."""

from __future__ import annotations

from sales.business import BusinessConfig


def text_please(business: BusinessConfig) -> str:
    you = "escribirme" if business.conversationStyle.formality == "tú" else "escribirnos"
    return (
        f"¡Gracias! Por ahora solo puedo leer mensajes de texto. ¿Me lo podrías {you}"
        " en un mensaje?"
    )


def opt_out_text(business: BusinessConfig) -> str:
    you = "te" if business.conversationStyle.formality == "tú" else "le"
    return (
        f"Listo, no {you} enviaremos más mensajes de seguimiento. Si más adelante necesitas"
        " algo, escríbenos cuando quieras."
        if you == "te"
        else "Listo, no le enviaremos más mensajes de seguimiento. Si más adelante necesita"
        " algo, escríbanos cuando quiera."
    )


def fallback_text(business: BusinessConfig) -> str:
    phone = business.business.phone
    tail = f" o llámanos al {phone}" if phone else ""
    return (
        "Disculpa, tuve un problema para responderte en este momento. "
        f"¿Puedes escribirme de nuevo en unos segundos{tail}?"
    )
