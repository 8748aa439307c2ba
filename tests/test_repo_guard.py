"""The guard in tests/conftest.py: a test that writes into the repository fails the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.repo_guard import snapshot, written

INNER_TEST = """
import os
from pathlib import Path

def test_writes(tmp_path):
    target = os.environ["WRITE_INTO"]
    folder = Path(target if target != "tmp" else tmp_path) / "db" / "backups"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "leads-20990101-030000.db").write_bytes(b"test leads")
"""


def fake_repository(root: Path) -> None:
    for path in ("README.md", "store/db.py", ".venv/bin/python", "store/__pycache__/db.pyc"):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("x")


def test_new_and_changed_files_are_found_and_caches_are_not(tmp_path: Path) -> None:
    fake_repository(tmp_path)
    before = snapshot(tmp_path)
    (tmp_path / "db" / "backups").mkdir(parents=True)
    (tmp_path / "db" / "backups" / "leads-20261130-100434.db").write_bytes(b"leads")
    (tmp_path / "README.md").write_text("changed, and longer")
    (tmp_path / ".venv" / "bin" / "python").write_text("rewritten by pip")
    (tmp_path / "store" / "__pycache__" / "db.pyc").write_text("recompiled")
    (tmp_path / ".hypothesis").mkdir()
    assert written(before, snapshot(tmp_path), strict=True) == [
        "README.md",
        "db",
        "db/backups",
        "db/backups/leads-20261130-100434.db",
    ]
    assert written(before, snapshot(tmp_path), ("db/",), strict=True) == ["README.md", "db"]
    # Someone editing README.md during the run is not a test's doing; db/ always is.
    (tmp_path / "db" / "notes.md").write_text("a test wrote this")
    (tmp_path / "store" / "sandbox.py").write_text("a colleague's new module")
    (tmp_path / "store" / "data").mkdir()  # and a folder of theirs
    assert written(before, snapshot(tmp_path)) == [
        "db",
        "db/backups",
        "db/backups/leads-20261130-100434.db",
        "db/notes.md",
    ]


def run_inner(tmp_path: Path, write_into: str) -> subprocess.CompletedProcess[str]:
    """A pytest session with tests/conftest.py's guard watching a fake repository."""
    (tmp_path / "inner").mkdir(exist_ok=True)
    (tmp_path / "inner" / "test_inner.py").write_text(INNER_TEST)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "REPO_GUARD_ROOT": str(tmp_path / "repo"),
        "WRITE_INTO": write_into,
    }
    env.pop("REPO_WRITE_GUARD", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "-q", "test_inner.py"],
        cwd=tmp_path / "inner", env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_test_that_writes_into_db_fails_the_session(tmp_path: Path) -> None:
    fake_repository(tmp_path / "repo")
    clean = run_inner(tmp_path, "tmp")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    leaky = run_inner(tmp_path, str(tmp_path / "repo"))
    assert leaky.returncode != 0, leaky.stdout
    assert "wrote into the repository" in leaky.stdout, leaky.stdout
    assert "db/backups/leads-20990101-030000.db" in leaky.stdout
