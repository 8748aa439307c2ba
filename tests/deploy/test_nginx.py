"""A real nginx (Debian's package) with a self-signed certificate in front of the suite on
loopback ports, configured from deploy/nginx/ia-comercial.conf as the install script does."""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import trio

from actors.ingress.server import DRAIN_LIMIT, KEEP_ALIVE_TIMEOUT
from tests.conftest import ROOT, make_settings, require_system, running_suite
from tests.e2e.process import free_port
from tests.fakes.openai_server import Answer, FakeOpenAI, lead_json
from tests.ingress.test_keepalive import KeepAliveClient, next_request_answered
from tests.meta import META_ENV

SITE = ROOT / "deploy" / "nginx" / "ia-comercial.conf"
RENDER = ROOT / "deploy" / "nginx" / "render.sh"


def self_signed(folder: Path) -> tuple[Path, Path]:
    openssl = require_system("openssl", "openssl")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def render(upstreams: Sequence[str], **values: str) -> subprocess.CompletedProcess[str]:
    """deploy/nginx/render.sh, as install.sh runs it."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "UPSTREAMS": " ".join(upstreams)}
    return subprocess.run(
        ["bash", str(RENDER)], env={**env, **values}, capture_output=True, text=True, timeout=30
    )


def configure(tmp_path: Path, upstreams: str | Sequence[str]) -> tuple[list[str], int, int]:
    """Write nginx.conf around the shipped site (rendered by render.sh, as install.sh does,
    with one upstream server per node) and check it with `nginx -t`; returns the command line
    to run it and its two ports."""
    nginx = require_system("/usr/sbin/nginx", "nginx")
    cert, key = self_signed(tmp_path)
    acme = tmp_path / "acme"
    (acme / ".well-known" / "acme-challenge").mkdir(parents=True)
    (acme / ".well-known" / "acme-challenge" / "token").write_text("challenge-ok")
    http_port, https_port = free_port(), free_port()
    rendered = render(
        [upstreams] if isinstance(upstreams, str) else upstreams,
        DOMAIN="localhost",
        APP_DIR=str(ROOT),
        CERT=str(cert),
        KEY=str(key),
        ACME_ROOT=str(acme),
        HTTP_PORT=f"127.0.0.1:{http_port}",
        HTTPS_PORT=f"127.0.0.1:{https_port}",
    )
    assert rendered.returncode == 0, rendered.stderr
    assert "__" not in rendered.stdout, "a placeholder was left unfilled"
    # Loopback only here: the [::] listeners are for the real server.
    site = "\n".join(line for line in rendered.stdout.splitlines() if "listen [::]" not in line)
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"""
        user root;
        worker_processes 1;
        pid {tmp_path}/nginx.pid;
        error_log {tmp_path}/error.log warn;
        events {{ worker_connections 256; }}
        http {{
            include /etc/nginx/mime.types;
            access_log {tmp_path}/access.log;
            client_body_temp_path {tmp_path}/body;
            proxy_temp_path {tmp_path}/proxy;
            fastcgi_temp_path {tmp_path}/fastcgi;
            uwsgi_temp_path {tmp_path}/uwsgi;
            scgi_temp_path {tmp_path}/scgi;
            include {tmp_path}/site.conf;
        }}
        """
    )
    command = [nginx, "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)]
    check = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    return [*command, "-g", "daemon off;"], http_port, https_port


@asynccontextmanager
async def nginx_in_front(
    tmp_path: Path, upstreams: str | Sequence[str]
) -> AsyncIterator[tuple[str, str]]:
    command, http_port, https_port = configure(tmp_path, upstreams)
    process = await trio.lowlevel.open_process(command, stderr=subprocess.DEVNULL)
    try:
        with trio.fail_after(10):
            while True:
                try:
                    async with httpx.AsyncClient(verify=False) as client:
                        await client.get(f"https://127.0.0.1:{https_port}/health")
                    break
                except httpx.TransportError:
                    await trio.sleep(0.05)
        yield f"http://127.0.0.1:{http_port}", f"https://127.0.0.1:{https_port}"
    finally:
        process.terminate()
        with trio.fail_after(10):
            await process.wait()


async def test_the_suite_behind_nginx(tmp_path: Path, fake_llm: FakeOpenAI) -> None:
    settings = make_settings(
        tmp_path,
        OPENAI_API_KEY="sk-test-nginx",
        OPENAI_BASE_URL=fake_llm.url,
        TRUSTED_PROXIES="127.0.0.1",
    )
    async with running_suite(settings) as (suite, _client):
        upstream = suite.url.removeprefix("http://")
        async with (
            nginx_in_front(tmp_path, upstream) as (http_url, https_url),
            httpx.AsyncClient(verify=False, timeout=30) as client,
        ):
            # Plain HTTP goes to HTTPS, except Let's Encrypt's challenge.
            r = await client.get(f"{http_url}/api/chat/session/x", follow_redirects=False)
            assert r.status_code == 301 and r.headers["location"].startswith("https://")
            acme = await client.get(f"{http_url}/.well-known/acme-challenge/token")
            assert acme.status_code == 200 and acme.text == "challenge-ok"

            # The chat over HTTPS, with HSTS.
            fake_llm.script = [Answer(lead_json("¡Hola! ¿Cómo te llamas?"))]
            r = await client.post(
                f"{https_url}/api/chat", json={"message": "Hola", "sessionId": "tls"}
            )
            assert r.status_code == 200 and r.json()["data"]["respuesta"].startswith("¡Hola!")
            assert "max-age=" in r.headers["strict-transport-security"]

            # public/ served by nginx itself, revalidated by ETag (304), never stale.
            css = await client.get(f"{https_url}/assets/chat.css")
            assert css.status_code == 200 and css.headers["server"].startswith("nginx")
            assert "no-cache" in css.headers["cache-control"]
            assert css.text == (ROOT / "public" / "assets" / "chat.css").read_text()
            again = await client.get(
                f"{https_url}/assets/chat.css", headers={"If-None-Match": css.headers["etag"]}
            )
            assert again.status_code == 304

            # The event stream arrives as it is written, not buffered by nginx.
            words = " ".join(f"palabra{i}" for i in range(40))
            fake_llm.script = [Answer(lead_json(words), chunk_delay=0.03)]
            arrivals: list[float] = []
            async with client.stream(
                "POST",
                f"{https_url}/api/chat",
                json={"message": "cuéntame", "sessionId": "sse"},
                headers={"Accept": "text/event-stream"},
            ) as stream:
                async for line in stream.aiter_lines():
                    if line.startswith("data:"):
                        arrivals.append(time.monotonic())
            assert len(arrivals) > 10
            assert arrivals[-1] - arrivals[0] > 0.5  # spread over the model's writing
            early = [t for t in arrivals if t - arrivals[0] < 0.25]
            assert 1 <= len(early) < len(arrivals) // 2

            # /api/chat is limited per client beyond its rate; Meta's webhook never is.
            async def burst(path: str, body: dict[str, object]) -> list[int]:
                codes: list[int] = []

                async def one() -> None:
                    codes.append((await client.post(f"{https_url}{path}", json=body)).status_code)

                async with trio.open_nursery() as nursery:
                    for _ in range(30):
                        nursery.start_soon(one)
                return codes

            chat_codes = await burst("/api/chat", {"message": "", "sessionId": "rl"})
            assert 429 in chat_codes and 400 in chat_codes
            hook_codes = await burst("/api/whatsapp/webhook", {"object": "x"})
            assert 429 not in hook_codes and set(hook_codes) == {503}  # no META_APP_SECRET


async def test_a_refused_body_leaves_the_connections_usable(tmp_path: Path) -> None:
    """nginx keeps its connections to the suite alive and lets 2 MiB through; the suite
    refuses past 1 MiB. The next request, on the same client connection and so on the
    same upstream one, is answered (it used to wait for proxy_read_timeout, then 504)."""
    settings = make_settings(tmp_path, TRUSTED_PROXIES="127.0.0.1", **META_ENV)
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    async with (
        running_suite(settings) as (suite, _client),
        nginx_in_front(tmp_path, suite.url.removeprefix("http://")) as (_http, https_url),
    ):
        host, port = https_url.removeprefix("https://").rsplit(":", 1)
        with trio.fail_after(30):
            stream = await trio.open_ssl_over_tcp_stream(host, int(port), ssl_context=insecure)
            async with stream:
                client = KeepAliveClient(stream)
                for path in ["/api/chat", "/api/whatsapp/webhook"] * 3:
                    await client.send("POST", path, b"x" * 2 * 1024 * 1024)
                    refusal = await client.response()
                    assert refusal is not None and refusal.status == 413, path
                    assert "demasiado grande" in refusal.body.decode()  # the suite's own 413
                    assert await next_request_answered(client, refusal), path


def test_render_writes_one_upstream_server_per_node_and_refuses_a_bad_one() -> None:
    values = {"DOMAIN": "ventas.example.cl", "APP_DIR": "/opt/ia-comercial",
              "ACME_ROOT": "/var/www/letsencrypt", "CERT": "/c.pem", "KEY": "/k.pem"}  # fmt: skip
    one = render([], **values, PORT="3100")
    assert one.returncode == 0, one.stderr
    assert re.findall(r"^\s*server (\S+) max_fails", one.stdout, re.M) == ["127.0.0.1:3100"]
    three = render(["10.0.0.11:3000", "10.0.0.12:3000", "node-c:3000"], **values)
    assert three.returncode == 0, three.stderr
    servers = re.findall(r"^\s*server (\S+) max_fails=1 fail_timeout=10s;", three.stdout, re.M)
    assert servers == ["10.0.0.11:3000", "10.0.0.12:3000", "node-c:3000"]
    assert "__" not in three.stdout and "server_name ventas.example.cl;" in three.stdout
    bad = render(["10.0.0.11"], **values)
    assert bad.returncode == 2 and bad.stdout == ""
    assert "UPSTREAMS: '10.0.0.11' is not host:port" in bad.stderr
    missing = render([], **{k: v for k, v in values.items() if k != "CERT"})
    assert missing.returncode != 0 and "CERT is needed" in missing.stderr


async def test_nginx_leaves_out_a_node_that_is_down(tmp_path: Path) -> None:
    """Two nodes behind one nginx: both take chats; with one stopped every chat still gets
    its answer from the other (a request not yet sent goes to the next node), and the dead
    one is left out instead of being tried on every request."""
    async with (
        running_suite(make_settings(tmp_path / "a", TRUSTED_PROXIES="127.0.0.1")) as (a, _),
        running_suite(make_settings(tmp_path / "b", TRUSTED_PROXIES="127.0.0.1")) as (b, _),
    ):
        upstreams = [a.url.removeprefix("http://"), b.url.removeprefix("http://")]
        async with (
            nginx_in_front(tmp_path, upstreams) as (_http_url, https_url),
            httpx.AsyncClient(verify=False, timeout=30) as client,
        ):

            async def chats(prefix: str, count: int) -> list[int]:
                codes = []
                for i in range(count):  # one by one: under the per-client rate limit
                    r = await client.post(
                        f"{https_url}/api/chat",
                        json={"message": "Hola", "sessionId": f"{prefix}{i}"},
                    )
                    codes.append(r.status_code)
                    await trio.sleep(0.5)
                return codes

            assert await chats("both-", 6) == [200] * 6
            assert a.db is not None and b.db is not None
            answered_by = {
                "a": a.db.scalar("SELECT count(*) FROM conversations"),
                "b": b.db.scalar("SELECT count(*) FROM conversations"),
            }
            assert answered_by["a"] > 0 and answered_by["b"] > 0, answered_by
            b.shutdown()
            with trio.fail_after(30):
                while True:
                    try:
                        async with httpx.AsyncClient() as probe:
                            await probe.get(f"{b.url}/health")
                    except httpx.TransportError:
                        break
                    await trio.sleep(0.1)
            assert await chats("one-", 6) == [200] * 6
    errors = (tmp_path / "error.log").read_text()
    assert "connect() failed" in errors  # nginx tried the dead node, then the other


def test_the_shipped_limits_agree_with_the_suite() -> None:
    """Every body nginx lets through is one the suite drains (so the upstream connection
    is reused), and nginx forgets an idle upstream connection before the suite closes it."""
    site = SITE.read_text()
    body = re.search(r"client_max_body_size (\d+)m;", site)
    idle = re.search(r"keepalive_timeout (\d+)s;", site)
    assert body and idle
    assert int(body[1]) * 1024 * 1024 <= DRAIN_LIMIT
    assert int(idle[1]) < KEEP_ALIVE_TIMEOUT
