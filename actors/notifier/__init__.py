"""The notifier actor: the outbox to WhatsApp and Instagram (e-mail and follow-ups later)."""

from .actor import NotifierContext, NotifierStatistics, run

__all__ = ["NotifierContext", "NotifierStatistics", "run"]
