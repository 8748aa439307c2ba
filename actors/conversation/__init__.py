"""The conversation actor: lanes, the one turn path, and its brains."""

from .actor import ConversationContext, run
from .lanes import LaneLimits
from .news import News
from .turn import TurnRules

__all__ = ["ConversationContext", "LaneLimits", "News", "TurnRules", "run"]
