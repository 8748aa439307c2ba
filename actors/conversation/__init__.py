"""The conversation actor and its brains."""

from .actor import ConversationContext, run

__all__ = ["ConversationContext", "run"]
