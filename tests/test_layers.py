"""The layers hold: the sales rules import only the store, the store imports nothing above
it, and no actor imports another actor (read from the source, statically)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ACTORS = ("ingress", "conversation", "classifier", "notifier", "backup")
OURS = ("actors", "sales", "store", "supervisor", "tests", "bench")


def imports(path: Path, root: Path) -> set[str]:
    """Our modules that `path` imports (absolute names; relative ones resolved)."""
    package = path.relative_to(root).with_suffix("").parts[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            found.add(".".join([*base, node.module] if node.module else base))
    return {name for name in found if name.split(".")[0] in OURS}


def crossings(root: Path) -> list[str]:
    """Every import that breaks a layer."""
    wrong = []
    layered = (p for top in ("actors", "sales", "store") for p in (root / top).rglob("*.py"))
    for path in sorted(layered):
        parts = path.relative_to(root).parts
        for name in imports(path, root):
            top, *rest = name.split(".")
            if parts[0] == "sales" and top not in ("sales", "store"):
                wrong.append(f"{path.relative_to(root)} imports {name}")
            elif parts[0] == "store" and top != "store":
                wrong.append(f"{path.relative_to(root)} imports {name}")
            elif (
                parts[0] == "actors"
                and len(parts) > 2
                and parts[1] in ACTORS
                and top == "actors"
                and rest
                and rest[0] in ACTORS
                and rest[0] != parts[1]
            ):
                wrong.append(f"{path.relative_to(root)} imports {name}")
    return wrong


def test_the_layers_hold() -> None:
    assert crossings(ROOT) == []


def test_a_crossing_is_found(tmp_path: Path) -> None:
    """The check can fail: each kind of crossing in a small tree of its own."""
    files = {
        "actors/ingress/app.py": "from actors.notifier.actor import run\n",
        "actors/ingress/ok.py": "from actors.messages import InboundMessage\nfrom . import app\n",
        "actors/notifier/actor.py": "from ..conversation import turn\n",
        "sales/rules.py": "from actors.messages import LeadView\nfrom store import leads\n",
        "store/db.py": "from sales.settings import Settings\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert sorted(crossings(tmp_path)) == [
        "actors/ingress/app.py imports actors.notifier.actor",
        "actors/notifier/actor.py imports actors.conversation",
        "sales/rules.py imports actors.messages",
        "store/db.py imports sales.settings",
    ]
