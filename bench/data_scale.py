"""Years of data: the owner's dashboard, search, statistics and CSV export at 50,000 and
500,000 leads, and what the channels feel while the owner reads (issue 17).

    python bench/data_scale.py [--leads 50000,500000] [--turns 3] [--seconds 10]

For each size: an original-system database (the Node system's own schema, as
tests/test_legacy_import.py builds it) with that many leads, each with a conversation of
`--turns` exchanges, is generated and imported with `ia-comercial import-legacy` (timed).
Then the suite (offline brain, pinned to core 0) serves it and this script (core 1):

- times each dashboard route (median and worst of 5 calls): the first page of leads, a
  filtered page, a search by name, by phone and by transcript text, one lead's detail, the
  statistics, the follow-ups;
- streams the CSV export: rows/s, bytes, and the suite's RSS before and at its peak;
- measures `/health` and a signed WhatsApp webhook's acknowledgement in an open loop
  (p50/p99 from each request's scheduled time) first alone, then while the owner's reads
  (export, statistics, searches) run back to back.

Not part of `make test`; the figures go in the README."""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import apsw
import httpx
import psutil
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from chat_bench import PY, ROOT, free_port, suite_env, wait_http
from pinning import SERVER_CORE, pinned
from raw_client import open_loop, post
from webhook import SECRET, signed_webhook

from tests.test_legacy_import import ORIGINAL_SCHEMA

PASSWORD = "bench-owner-password-0000"
CALLS = 5
PROBE_RATE = 50.0  # /health and webhooks a second, each
NAMES = ["Marta", "Pía", "José", "Ana", "Luis", "Camila", "Diego", "Valentina", "Tomás", "Inés"]
SURNAMES = ["Díaz", "Muñoz", "Rojas", "Soto", "Pérez", "Contreras", "Silva", "Núñez", "Vera"]
SERVICES = ["Instalación", "Mantención", "Reparación", "Limpieza de ductos", "Revisión"]
COMUNAS = ["Ñuñoa", "Providencia", "Las Condes", "Maipú", "La Florida", "Puente Alto"]
CLASSES = ["frio", "tibio", "caliente"]
CHANNELS = ["web", "whatsapp", "instagram"]


def generate(path: Path, leads: int, turns: int) -> None:
    """The original system's database with `leads` leads and conversations."""
    rng = random.Random(leads)
    db = apsw.Connection(str(path))
    db.execute("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF")
    with db:
        db.execute(ORIGINAL_SCHEMA)
        db.executemany(
            "INSERT INTO leads (id, nombre, telefono, servicio, comuna, urgencia, estado,"
            " contactado, fecha_creacion, canal, fecha_actualizacion, ultima_interaccion)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (_lead(rng, i) for i in range(1, leads + 1)),
        )
        db.executemany(
            "INSERT INTO conversaciones (session_id, lead_id, canal, historial, fecha_creacion)"
            " VALUES (?,?,?,?,?)",
            (_conversation(rng, i, turns) for i in range(1, leads + 1)),
        )
    db.close()


def _lead(rng: random.Random, i: int) -> tuple[object, ...]:
    day = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} {rng.randint(8, 20):02d}:00:00"
    return (
        i,
        f"{rng.choice(NAMES)} {rng.choice(SURNAMES)}",
        f"+569{rng.randint(10_000_000, 99_999_999)}",
        rng.choice(SERVICES),
        rng.choice(COMUNAS),
        rng.choice(["hoy", "esta semana", None]),
        rng.choice(CLASSES),
        rng.randint(0, 1),
        day,
        rng.choice(CHANNELS),
        day,  # the original's dates, not the time of generation: a 2024 lead wrote in 2024
        day,
    )


def _conversation(rng: random.Random, i: int, turns: int) -> tuple[object, ...]:
    history = []
    for t in range(turns):
        history.append({"role": "user", "content": f"Hola, necesito {rng.choice(SERVICES)} {t}"})
        history.append({"role": "assistant", "content": "¡Claro! ¿En qué comuna estás?"})
    history.append({"role": "user", "content": f"En {rng.choice(COMUNAS)}, código {i:07d}"})
    return (f"bench-{i}", i, rng.choice(CHANNELS), json.dumps(history, ensure_ascii=False),
            "2024-06-01 10:00:00")  # fmt: skip


@dataclass(frozen=True)
class Timed:
    name: str
    median_ms: float
    worst_ms: float


def time_routes(client: httpx.Client, some_lead: int) -> list[Timed]:
    routes = {
        "leads, first page": "/api/leads",
        "leads, hot on WhatsApp": "/api/leads?estado=caliente&canal=whatsapp",
        "search: name": "/api/leads?q=Valentina%20N%C3%BA%C3%B1ez",
        "search: phone digits": "/api/leads?q=98765",
        "search: transcript text": "/api/leads?q=c%C3%B3digo%200012345",
        "search: common word (Nunoa)": "/api/leads?q=Nunoa",
        "search: page 10 of a common word": "/api/leads?q=Nunoa&pagina=10",
        "one lead": f"/api/leads/{some_lead}",
        "statistics": "/api/leads/estadisticas",
        "follow-ups": "/api/followups",
        "/metrics (a Prometheus scrape)": "/metrics",
    }
    timed = []
    for name, path in routes.items():
        took = []
        for _ in range(CALLS):
            started = time.perf_counter()
            r = client.get(path)
            took.append((time.perf_counter() - started) * 1000)
            if r.status_code != 200:
                raise SystemExit(f"{path}: {r.status_code} {r.text[:200]}")
        timed.append(Timed(name, statistics.median(took), max(took)))
    return timed


@dataclass(frozen=True)
class Export:
    rows: int
    megabytes: float
    seconds: float
    rss_before_mib: float
    rss_peak_mib: float
    writer_peak_mib: float  # the export's own process (store/lead_csv.py)


def export(client: httpx.Client, server: psutil.Process) -> Export:
    before = server.memory_info().rss
    peak = [before, 0]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            try:
                peak[0] = max(peak[0], server.memory_info().rss)
                for child in server.children(recursive=True):
                    if "store.lead_csv" in " ".join(child.cmdline()):
                        peak[1] = max(peak[1], child.memory_info().rss)
            except psutil.Error:  # a child that ended meanwhile
                pass
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    rows = size = 0
    started = time.perf_counter()
    try:
        with client.stream("GET", "/api/leads/export.csv") as r:
            for chunk in r.iter_bytes():
                rows += chunk.count(b"\n")
                size += len(chunk)
    finally:
        done.set()
        watcher.join()
    seconds = time.perf_counter() - started
    return Export(rows - 1, size / 2**20, seconds, before / 2**20, peak[0] / 2**20, peak[1] / 2**20)


OWNER_READS = (
    "/api/leads/export.csv",
    "/api/leads/estadisticas",
    "/api/leads?q=987",
    "/api/leads?q=Nunoa",
    "/api/leads?estado=caliente&canal=whatsapp",
    "/api/followups",
)


def owner_reads(base: str, cookies: httpx.Cookies, stop: threading.Event) -> None:
    """The owner's heavy reads, back to back, until `stop`."""
    with httpx.Client(base_url=base, cookies=cookies, timeout=600) as client:
        while not stop.is_set():
            for path in OWNER_READS:
                if stop.is_set():
                    return
                with client.stream("GET", path) as r:
                    for _chunk in r.iter_bytes():
                        pass


def channels(port: int, seconds: float) -> dict[str, tuple[float, float]]:
    """p50/p99 ms of /health and of a webhook's acknowledgement, in one open loop each."""
    n = int(PROBE_RATE * seconds)
    health = [b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"] * n
    hooks = []
    for _ in range(n):
        signature, raw = signed_webhook(random.randint(10**6, 10**9))
        hooks.append(post("/api/whatsapp/webhook", raw, {"X-Hub-Signature-256": signature}))
    results = {}

    async def both() -> None:
        async def one(name: str, requests: list[bytes]) -> None:
            r = await open_loop("127.0.0.1", port, requests, PROBE_RATE, connections=10)
            results[name] = (r.p50_ms, r.p99_ms)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one, "/health", health)
            nursery.start_soon(one, "webhook ack", hooks)

    trio.run(both)
    return results


@contextmanager
def suite(workdir: Path) -> Iterator[tuple[int, psutil.Process]]:
    port = free_port()
    env = suite_env(workdir, port, None)
    env.update(ADMIN_PASSWORD=PASSWORD, META_APP_SECRET=SECRET, TRUSTED_PROXIES="127.0.0.1")
    # WhatsApp configured, its sends refused at once by a closed port (no answers to measure)
    env.update(
        WHATSAPP_ACCESS_TOKEN="bench",
        WHATSAPP_PHONE_NUMBER_ID="1",
        META_GRAPH_URL="http://127.0.0.1:9",
    )
    with pinned([PY, "-m", "supervisor.cli", "run"], env, ROOT, SERVER_CORE) as server:
        wait_http(f"http://127.0.0.1:{port}/health/ready", timeout=300)
        yield port, psutil.Process(server.pid)


def prepare(workdir: Path, leads: int, turns: int) -> None:
    """The original system's database, imported into the suite's store in `workdir`."""
    legacy = workdir / "original.db"
    started = time.perf_counter()
    generate(legacy, leads, turns)
    generated = time.perf_counter() - started
    env = suite_env(workdir, 0, None)
    started = time.perf_counter()
    subprocess.run(
        [PY, "-m", "supervisor.cli", "import-legacy", str(legacy)],
        cwd=ROOT, env=env, check=True, capture_output=True,
    )  # fmt: skip
    imported = time.perf_counter() - started
    legacy.unlink()
    db_mib = (workdir / "leads.db").stat().st_size / 2**20
    print(f"generated in {generated:.1f} s; import-legacy {imported:.1f} s; {db_mib:.0f} MiB")


def measure(leads: int, turns: int, seconds: float, keep: Path | None) -> None:
    with tempfile.TemporaryDirectory(prefix="data-scale-") as tmp:
        workdir = keep / str(leads) if keep else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        print(f"\n## {leads:,} leads, {leads * (2 * turns + 1):,} messages")
        if (workdir / "leads.db").exists():
            print(f"the store kept in {workdir} (generated and imported before)")
        else:
            prepare(workdir, leads, turns)
        with suite(workdir) as (port, server):
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=600) as client:
                r = client.post("/api/auth/login", json={"password": PASSWORD})
                r.raise_for_status()
                print("\n| dashboard route | median ms | worst ms |\n|---|---|---|")
                for t in time_routes(client, leads // 2):
                    print(f"| {t.name} | {t.median_ms:.1f} | {t.worst_ms:.1f} |")
                e = export(client, server)
                print(
                    f"\nCSV export: {e.rows:,} rows, {e.megabytes:.1f} MB in {e.seconds:.2f} s"
                    f" = {e.rows / e.seconds:,.0f} rows/s; suite RSS {e.rss_before_mib:.0f} →"
                    f" peak {e.rss_peak_mib:.0f} MiB; the export's process peak"
                    f" {e.writer_peak_mib:.0f} MiB"
                )
                alone = channels(port, seconds)
                stop = threading.Event()
                reader = threading.Thread(target=owner_reads, args=(base, client.cookies, stop))
                reader.start()
                try:
                    during = channels(port, seconds)
                finally:
                    stop.set()
                    reader.join()
            print("\n| channel | alone p50 / p99 ms | during the owner's reads p50 / p99 ms |")
            print("|---|---|---|")
            for name in alone:
                a, d = alone[name], during[name]
                print(f"| {name} | {a[0]:.1f} / {a[1]:.1f} | {d[0]:.1f} / {d[1]:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", default="50000,500000", help="sizes, comma-separated")
    parser.add_argument("--turns", type=int, default=3, help="exchanges a conversation")
    parser.add_argument("--seconds", type=float, default=10, help="each channel probe")
    parser.add_argument(
        "--keep", type=Path, help="keep each size's store in KEEP/<leads> and reuse it after"
    )
    args = parser.parse_args()
    os.chdir(ROOT)
    for leads in (int(n) for n in args.leads.split(",")):
        measure(leads, args.turns, args.seconds, args.keep)


if __name__ == "__main__":
    main()
