"""The notifier actor: the outbox to WhatsApp and Instagram, the owner's e-mails and
webhooks, and the follow-up schedule."""

from .actor import NotifierContext, run, system_clock

__all__ = ["NotifierContext", "run", "system_clock"]
