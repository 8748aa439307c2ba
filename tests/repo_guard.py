"""Tests write only in their temporary folders: a snapshot of the repository's files before
the session, compared with one after (tests/conftest.py fails the run on a difference).

Caches that tools keep beside the code (.venv, .git, __pycache__, the linters' and pytest's
and Hypothesis's folders) are not looked at. Unless `strict`, neither are edits to source
and text files outside the runtime folders: people edit those while tests run, and tests
leak databases, backups and logs, which are always caught (as is anything in db/ or logs/)."""

from __future__ import annotations

import os
from pathlib import Path

SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".venv",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".hypothesis",
        "node_modules",
    }
)
SKIPPED_SUFFIXES = (".egg-info",)
RUNTIME_DIRS = ("db/", "logs/")  # where the suite writes by default: always watched
SOURCE_SUFFIXES = frozenset(
    {".py", ".pyi", ".md", ".json", ".html", ".js", ".css", ".txt", ".toml", ".cfg", ".ini",
     ".yml", ".yaml", ".sh", ".conf", ".service", ".svg"}
)  # fmt: skip

# Relative path (with "/") -> (mtime in ns, size) of a file, or None for a folder.
Snapshot = dict[str, tuple[int, int] | None]


def snapshot(root: Path) -> Snapshot:
    found: Snapshot = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(
            d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(SKIPPED_SUFFIXES)
        )
        here = Path(folder)
        for name in dirs:
            found[(here / name).relative_to(root).as_posix()] = None
        for name in files:
            try:
                stat = (here / name).lstat()
            except FileNotFoundError:
                continue  # gone while we looked
            found[(here / name).relative_to(root).as_posix()] = (stat.st_mtime_ns, stat.st_size)
    return found


def written(
    before: Snapshot, after: Snapshot, allowed: tuple[str, ...] = (), *, strict: bool = False
) -> list[str]:
    """What is new or changed in `after`, except paths under an `allowed` prefix."""

    def watched(path: str) -> bool:
        if path.startswith(allowed):
            return False
        if strict or f"{path}/".startswith(RUNTIME_DIRS):
            return True
        if after[path] is None:
            return False  # a new folder elsewhere shows by the files a test put in it
        return Path(path).suffix not in SOURCE_SUFFIXES

    return sorted(
        path
        for path, stat in after.items()
        if (path not in before or before[path] != stat) and watched(path)
    )
