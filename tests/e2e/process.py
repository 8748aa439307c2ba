"""`ia-comercial run` as a real subprocess on a free port, as systemd would run it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import trio

from tests.conftest import ROOT

STARTUP_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SuiteProcess:
    def __init__(self, workdir: Path, **env: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "NOTIFY"))},
            "PORT": str(self.port),
            "DATABASE_PATH": str(workdir / "db" / "leads.db"),
            "LOG_DIR": str(workdir / "logs"),
            "BUSINESS_CONFIG": str(ROOT / "config" / "business.json"),
            "SYSTEM_PROMPT_PATH": str(ROOT / "prompts" / "systemPrompt.txt"),
            "OPS_CHECK_INTERVAL": "600",  # health notices only where a test is about them
            **env,
        }
        self.process: trio.Process | None = None

    async def start(self, *, wait_ready: bool = True) -> None:
        self.stderr = open(self.workdir / f"stderr-{self.port}.log", "ab")
        self.process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "supervisor.cli", "run"],
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
        )
        if wait_ready:
            await self.wait_ready()

    async def wait_ready(self) -> None:
        with trio.fail_after(STARTUP_TIMEOUT):
            async with httpx.AsyncClient() as client:
                while True:
                    assert self.process is not None and self.process.returncode is None, (
                        self.log_text()
                    )
                    try:
                        if (await client.get(f"{self.url}/health/ready")).status_code == 200:
                            return
                    except httpx.TransportError:
                        pass
                    await trio.sleep(0.05)

    def send_signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    async def stop(self, signum: int = signal.SIGTERM, timeout: float = 15) -> int:
        self.send_signal(signum)
        return await self.wait(timeout)

    async def wait(self, timeout: float = 15) -> int:
        assert self.process is not None
        with trio.fail_after(timeout):
            code = await self.process.wait()
        self.stderr.close()
        return code

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.workdir.glob("stderr-*.log"))
