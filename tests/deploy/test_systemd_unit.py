"""deploy/systemd/ia-comercial.service passes `systemd-analyze verify` (on a copy whose
paths point at this checkout) and carries the settings ops rely on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, require_system

UNIT = ROOT / "deploy" / "systemd" / "ia-comercial.service"


def test_the_unit_verifies_without_warnings(tmp_path: Path) -> None:
    analyze = require_system("systemd-analyze", "systemd")
    venv_bin = Path(sys.executable).parent
    text = UNIT.read_text()
    for needed in (
        "Type=notify",
        "WatchdogSec=30",
        "Restart=on-failure",
        "RestartSec=",
        "StartLimitIntervalSec=",
        "StartLimitBurst=",
        "TimeoutStopSec=",
        "EnvironmentFile=",
        "Environment=WORKERS=1\n",  # the env file's WORKERS wins
        "KillMode=mixed",  # SIGTERM to the parent, which passes it on to its workers
        "WorkingDirectory=",
        "User=ia-comercial",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/ia-comercial /var/log/ia-comercial",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
    ):
        assert needed in text, needed
    env = tmp_path / "ia-comercial.env"
    env.write_text("PORT=3000\n")
    copy = tmp_path / "ia-comercial.service"
    copy.write_text(
        text.replace("/opt/ia-comercial/.venv/bin/", f"{venv_bin}/")
        .replace("/opt/ia-comercial", str(ROOT))
        .replace("/etc/ia-comercial/ia-comercial.env", str(env))
        .replace("User=ia-comercial", "User=root")
        .replace("Group=ia-comercial", "Group=root")
    )
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "" and result.stdout.strip() == "", result.stderr


def test_a_broken_unit_is_caught(tmp_path: Path) -> None:
    analyze = require_system("systemd-analyze", "systemd")
    copy = tmp_path / "ia-comercial.service"
    copy.write_text(UNIT.read_text().replace("WatchdogSec=30", "WatchdogSecs=30"))
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert "Unknown key" in result.stderr  # the check above would see this
