"""Pull the `reply` text out of a JSON answer while it is still being streamed, so a user
sees the words as the model writes them rather than raw JSON."""

from __future__ import annotations

import re

_REPLY_KEY = re.compile(r'"reply"\s*:\s*"')
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class ReplyStreamExtractor:
    def __init__(self) -> None:
        self._buffer = ""
        self._pos: int | None = None  # where the reply string's next undecoded char is
        self._done = False

    def feed(self, text: str) -> str:
        """Add streamed text; return the newly decoded part of the reply (maybe empty)."""
        if self._done:
            return ""
        self._buffer += text
        if self._pos is None:
            match = _REPLY_KEY.search(self._buffer)
            if not match:
                return ""
            self._pos = match.end()
        out: list[str] = []
        buf, i = self._buffer, self._pos
        while i < len(buf):
            ch = buf[i]
            if ch == '"':
                self._done = True
                i += 1
                break
            if ch != "\\":
                out.append(ch)
                i += 1
                continue
            if i + 1 >= len(buf):
                break  # wait for the escaped character
            kind = buf[i + 1]
            if kind == "u":
                if i + 6 > len(buf):
                    break
                code = int(buf[i + 2 : i + 6], 16)
                if 0xD800 <= code < 0xDC00:  # a surrogate pair needs its second half
                    if i + 12 > len(buf):
                        break
                    low = int(buf[i + 8 : i + 12], 16)
                    out.append(chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)))
                    i += 12
                    continue
                out.append(chr(code))
                i += 6
                continue
            out.append(_ESCAPES.get(kind, kind))
            i += 2
        self._pos = i
        return "".join(out)
