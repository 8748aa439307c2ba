"""`ia-comercial run` that cannot start says why in one line naming the setting to change,
exits 2, and prints no traceback (a subprocess, as systemd runs it)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.process import free_port

EXIT_CONFIG = 2


def run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "NOTIFY"))},
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
        "DATABASE_PATH": str(tmp_path / "db" / "leads.db"),
        "LOG_DIR": str(tmp_path / "logs"),
        "BUSINESS_CONFIG": str(ROOT / "config" / "business.json"),
        "SYSTEM_PROMPT_PATH": str(ROOT / "prompts" / "systemPrompt.txt"),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "supervisor.cli", "run"],
        cwd=tmp_path,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def refused(result: subprocess.CompletedProcess[str]) -> str:
    """The one line the refusal printed."""
    assert result.returncode == EXIT_CONFIG, result.stderr
    assert "Traceback" not in result.stderr and "ExceptionGroup" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("ia-comercial: cannot start: ")
    return line


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    """A regular file where a folder should be: no one, root included, can create below it."""
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


def test_a_database_folder_under_a_regular_file(tmp_path: Path, a_file: Path) -> None:
    line = refused(run(tmp_path, DATABASE_PATH=str(a_file / "leads.db")))
    assert f"DATABASE_PATH: {a_file / 'leads.db'}:" in line
    assert f"{a_file} exists and is not a folder" in line


def test_a_database_path_that_is_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "db" / "leads.db"
    folder.mkdir(parents=True)
    line = refused(run(tmp_path, DATABASE_PATH=str(folder)))
    assert f"DATABASE_PATH: {folder}: unable to open database file" in line


def test_a_database_file_that_is_not_a_database(tmp_path: Path) -> None:
    garbage = tmp_path / "leads.db"
    garbage.write_bytes(b"this is not SQLite " * 500)
    line = refused(run(tmp_path, DATABASE_PATH=str(garbage)))
    assert f"DATABASE_PATH: {garbage}: file is not a database" in line
    assert garbage.read_bytes() == b"this is not SQLite " * 500  # left as it was


def test_a_log_folder_under_a_regular_file(tmp_path: Path, a_file: Path) -> None:
    line = refused(run(tmp_path, LOG_DIR=str(a_file / "logs")))
    assert f"LOG_DIR: {a_file / 'logs'}: Not a directory" in line


def test_a_business_config_that_cannot_be_read(tmp_path: Path) -> None:
    folder = tmp_path / "business.json"
    folder.mkdir()  # read as a file, it fails even as root
    line = refused(run(tmp_path, BUSINESS_CONFIG=str(folder)))
    assert f"BUSINESS_CONFIG: {folder}: cannot be read" in line and "change BUSINESS_CONFIG" in line
    assert not (tmp_path / "db").exists()  # refused before anything was created


def test_a_business_config_that_is_not_there(tmp_path: Path) -> None:
    line = refused(run(tmp_path, BUSINESS_CONFIG="config/business.json"))  # run elsewhere
    assert line == (
        "ia-comercial: cannot start: BUSINESS_CONFIG: config/business.json: not found"
        f" (relative to {tmp_path}); change BUSINESS_CONFIG"
    )
    assert not (tmp_path / "db").exists()


def test_a_prompt_that_is_not_there(tmp_path: Path) -> None:
    missing = tmp_path / "prompts" / "systemPrompt.txt"
    line = refused(run(tmp_path, SYSTEM_PROMPT_PATH=str(missing)))
    assert line == (
        f"ia-comercial: cannot start: SYSTEM_PROMPT_PATH: {missing}: not found;"
        " change SYSTEM_PROMPT_PATH"
    )


def test_both_config_files_missing_are_told_one_line_each(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        BUSINESS_CONFIG=str(tmp_path / "nope.json"),
        SYSTEM_PROMPT_PATH=str(tmp_path / "nope.txt"),
    )
    assert result.returncode == EXIT_CONFIG and "Traceback" not in result.stderr
    business, prompt = result.stderr.splitlines()
    assert business.startswith("ia-comercial: cannot start: BUSINESS_CONFIG: ")
    assert prompt.startswith("ia-comercial: cannot start: SYSTEM_PROMPT_PATH: ")


def test_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = refused(run(tmp_path, PORT=str(port)))
    assert f"PORT: 127.0.0.1:{port}: already in use" in line and "change PORT" in line
