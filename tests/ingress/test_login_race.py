"""The login limit holds under concurrency: 50 wrong passwords at once get exactly the limit
checked, the rest 429, and a right password afterwards waits like any other."""

from __future__ import annotations

from pathlib import Path

import trio

from actors.ingress.admin_auth import MAX_FAILURES
from tests.conftest import running_suite
from tests.ingress.test_admin import admin_settings


async def test_fifty_wrong_passwords_at_once_check_only_the_limit(tmp_path: Path) -> None:
    async with running_suite(admin_settings(tmp_path)) as (_suite, client):
        statuses: list[int] = []

        async def attempt() -> None:
            r = await client.post(
                "/api/auth/login",
                json={"password": "mala"},
                headers={"X-Forwarded-For": "198.51.100.7"},
            )
            statuses.append(r.status_code)

        async with trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(attempt)
        assert statuses.count(401) == MAX_FAILURES, statuses
        assert statuses.count(429) == 50 - MAX_FAILURES
