"""Text as people type it, compared without accents or case (also inside SQL)."""

from __future__ import annotations

import re
import unicodedata

_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def fold(text: str) -> str:
    """Lower-case without accents: how we compare words a user types with config text."""
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text.casefold()))
