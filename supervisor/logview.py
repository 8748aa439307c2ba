"""`ia-comercial logs`: the JSON-lines log files shown as a person reads them."""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

POLL = 0.5


def tail(path: Path, lines: int) -> list[str]:
    with path.open(encoding="utf-8", errors="replace") as handle:
        return list(deque(handle, maxlen=max(lines, 0)))


def follow(path: Path) -> Iterator[str]:
    """New lines as they are written; starts again from the top after a rotation."""
    handle = path.open(encoding="utf-8", errors="replace")
    handle.seek(0, 2)
    inode = path.stat().st_ino
    try:
        while True:
            line = handle.readline()
            if line:
                yield line
                continue
            time.sleep(POLL)
            try:
                if path.stat().st_ino != inode:  # rotated: read the new file
                    handle.close()
                    handle = path.open(encoding="utf-8", errors="replace")
                    inode = path.stat().st_ino
            except FileNotFoundError:
                continue
    finally:
        handle.close()


def readable(line: str) -> str:
    """`2026-11-27 14:03:01 ERROR notifier: message` (extra fields after, exception below)."""
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        return line.rstrip("\n")
    if not isinstance(entry, dict):
        return line.rstrip("\n")
    when = str(entry.pop("time", "")).replace("T", " ")[:19]
    level = str(entry.pop("level", "")).upper()
    logger = entry.pop("logger", "")
    message = entry.pop("message", "")
    exception = entry.pop("exception", None)
    extra = " ".join(f"{k}={v}" for k, v in entry.items())
    out = f"{when} {level:<7} {logger}: {message}" + (f"  [{extra}]" if extra else "")
    return out + (f"\n{exception}" if exception else "")
