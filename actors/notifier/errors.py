"""Errors of sends to Meta's Graph API, typed by whether a retry can help.

    GraphError
    ├── GraphTransient       network, 5xx, throttling (2, 4, 80007, 130429, 131056)
    └── GraphPermanent       will not succeed as sent
        ├── OutsideWindow    131047; Instagram's "outside of allowed window" (10/2018278)
        ├── NotConfigured    the channel has no token or sender id here
        └── (others)         131026 undeliverable, 100 bad parameter, 190 expired token, 4xx

Retry policy reads as data: `error.transient`.
"""

from __future__ import annotations

TRANSIENT_CODES = frozenset({1, 2, 4, 17, 341, 80007, 130429, 131000, 131016, 131056})
OUTSIDE_WINDOW_CODES = frozenset({131047})
INSTAGRAM_WINDOW = (10, 2018278)


class GraphError(Exception):
    transient = False

    def __init__(self, reason: str, *, code: int | None = None, status: int | None = None):
        self.reason = reason
        self.code = code
        self.status = status
        super().__init__(reason)


class GraphTransient(GraphError):
    transient = True


class GraphPermanent(GraphError):
    pass


class OutsideWindow(GraphPermanent):
    pass


class NotConfigured(GraphPermanent):
    pass


def from_response(status: int, error: dict[str, object] | None) -> GraphError:
    """Map a Graph API error answer to its typed error."""
    error = error or {}
    raw_code, raw_sub = error.get("code"), error.get("error_subcode")
    code = raw_code if isinstance(raw_code, int) else None
    subcode = raw_sub if isinstance(raw_sub, int) else None
    message = str(error.get("message") or error.get("title") or f"HTTP {status}")
    reason = f"{code}: {message}" if code is not None else f"HTTP {status}: {message}"
    if (
        code in OUTSIDE_WINDOW_CODES
        or (code, subcode) == INSTAGRAM_WINDOW
        or ("outside of allowed window" in message.lower())
    ):
        return OutsideWindow(reason, code=code, status=status)
    if code in TRANSIENT_CODES or status >= 500 or status == 429:
        return GraphTransient(reason, code=code, status=status)
    return GraphPermanent(reason, code=code, status=status)
