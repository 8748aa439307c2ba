"""Hostile requests to the web chat and demo APIs, generated (issue 12): lone surrogates,
numbers, objects, arrays and null where text goes, huge numbers, 1e999, nested junk, bodies
that are not JSON, and bodies sent as text/plain or a form (what a cross-site form can send
without a CORS preflight). Never a 5xx: exactly the 4xx a small model of the rules predicts,
with a Spanish message, and a person's message stored only when it is answered.

One suite for all examples: a plain `@given` function runs in a worker thread and posts
through `trio.from_thread.run` (see tests/ingress/test_hostile_webhooks.py for why)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import httpx
import trio
from hypothesis import example, given, settings
from hypothesis import strategies as st

from actors.ingress.app import MAX_BODY_BYTES
from actors.ingress.chat import MAX_MESSAGE_CHARS
from actors.ingress.simulate import MAX_CHARS
from store.db import Database
from tests.conftest import make_settings, running_suite
from tests.ingress.test_hostile_webhooks import EXAMPLES
from tests.meta import dumps_raw, hostile_values, with_lone_surrogate

SESSION_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")
WHO = re.compile(r"[A-Za-z0-9_.-]{1,64}")
JSON_TYPES = ["application/json", "application/json", "application/json; charset=utf-8"]
OTHER_TYPES = [
    "text/plain",
    "text/plain;charset=UTF-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    None,
]
NOT_JSON = [b"", b"{not json", b"\xff\xfe", b'{"message": "hola"', b"[" * 100_000 + b"]" * 100_000]
ABSENT = object()


@dataclass(frozen=True)
class Call:
    path: str
    content_type: str | None
    raw: bytes


PATHS = [
    "/api/chat",
    "/api/chat/reset",
    "/api/simulate/chat",
    "/api/simulate/whatsapp",
    "/api/simulate/instagram",
    "/api/simulate/web",
]
EXAMPLES_PER_PATH = 20
# What an example may spoil; an empty set (a request that is answered) is drawn often.
SPOILABLE = ["content type", "body", "text", "who", "junk"]
texts = st.text(min_size=1, max_size=80).filter(str.strip)
bad_texts = st.one_of(with_lone_surrogate, hostile_values)
session_ids = st.from_regex(SESSION_ID, fullmatch=True).map(lambda s: s[:40])
bad_session_ids = st.one_of(
    st.sampled_from(["sim:demo", "SIM:demo", "s-1\n", " s-1", "x" * 129]), hostile_values
)
junk = st.dictionaries(st.text(max_size=8) | with_lone_surrogate, hostile_values, max_size=3)


@st.composite
def calls(draw: st.DrawFn, path: str) -> Call:
    spoil = draw(st.sets(st.sampled_from(SPOILABLE), max_size=3))
    content_type = draw(st.sampled_from(OTHER_TYPES if "content type" in spoil else JSON_TYPES))
    if "body" in spoil:  # no JSON object at all
        raw = draw(st.sampled_from(NOT_JSON) | hostile_values.map(dumps_raw))
        return Call(path, content_type, raw)
    body = draw(junk) if "junk" in spoil else {}
    text = draw(bad_texts if "text" in spoil else texts)
    if path.startswith("/api/simulate/") and path != "/api/simulate/chat":
        who = draw(hostile_values if "who" in spoil else st.from_regex(WHO, fullmatch=True))
        body.update(de=who, mensaje=text)
    else:
        body["message"] = text
        if "who" in spoil:
            body["sessionId"] = draw(bad_session_ids)
        elif draw(st.booleans()):
            body["sessionId"] = draw(session_ids)
    return Call(path, content_type, dumps_raw(body))


ISSUE_12 = [
    (b'{"message": "hola \\ud83d", "sessionId": "s-1"}', "application/json"),
    (b'{"mensaje": "hola \\ud83d", "de": "ana"}', "application/json"),
    (b'{"message": "hola", "sessionId": "s-1\\ud83d"}', "application/json"),
    (b'{"message": 1e999, "sessionId": ' + b"9" * 5000 + b"}", "application/json"),
    (b'{"message": "hola", "sessionId": "s-1"}', "text/plain"),
    (b'{"de": "ana", "mensaje": "hola"}', "text/plain"),
    (b"message=hola&sessionId=s-1", "application/x-www-form-urlencoded"),
]


def _decoded(raw: bytes) -> Any:
    try:
        return json.loads(raw, parse_int=lambda d: int(d) if len(d) <= 40 else float("inf"))
    except (ValueError, RecursionError):
        return ABSENT


def _text(value: object) -> TypeGuard[str]:
    return (
        isinstance(value, str) and bool(value.strip()) and not re.search("[\ud800-\udfff]", value)
    )


def _session(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and SESSION_ID.fullmatch(value) is not None


def expected(call: Call) -> int:
    """What the rules say this request gets."""
    if call.content_type is None or call.content_type.split(";")[0] != "application/json":
        return 415
    if len(call.raw) > MAX_BODY_BYTES:
        return 413
    body = _decoded(call.raw)
    if not isinstance(body, dict):
        return 400
    session = body.get("sessionId")
    if call.path == "/api/chat/reset":
        return 200 if _session(session) and not session.lower().startswith("sim:") else 400
    if call.path in ("/api/chat", "/api/simulate/chat"):
        message = body.get("message")
        if not _text(message) or (session is not None and not _session(session)):
            return 400
        if len(message.strip()) > MAX_MESSAGE_CHARS:
            return 413
        sandboxed = _session(session) and session.lower().startswith("sim:")
        return 400 if call.path == "/api/chat" and sandboxed else 200
    who, message = body.get("de"), body.get("mensaje")
    if not isinstance(who, str) or not WHO.fullmatch(who):
        return 400
    return 202 if _text(message) and len(message) <= MAX_CHARS else 400


async def post_json(client: httpx.AsyncClient, body: Any) -> httpx.Response:
    """As a browser's JSON.stringify sends it: a lone surrogate as a `\\ud83d` escape."""
    return await client.post(
        "/api/chat", content=json.dumps(body), headers={"Content-Type": "application/json"}
    )


def user_messages(db: Database) -> int:
    return int(db.scalar("SELECT count(*) FROM messages WHERE role = 'user'"))


async def test_hostile_requests_get_the_4xx_the_rules_say_and_never_a_5xx(tmp_path: Path) -> None:
    demo = make_settings(tmp_path, DEMO_MODE="1")  # /api/simulate/* without a login
    async with running_suite(demo) as (suite, client):
        db = suite.db
        assert db is not None

        async def send(call: Call) -> None:
            headers = {} if call.content_type is None else {"Content-Type": call.content_type}
            before = user_messages(db)
            r = await client.post(call.path, content=call.raw, headers=headers)
            assert r.status_code == expected(call), r.text
            body = r.json()
            if r.status_code >= 400:
                assert body["success"] is False and body["error"].strip(), body
            answered = r.status_code == 202 or (r.status_code == 200 and "reset" not in call.path)
            assert user_messages(db) == before + answered

        def every_call(path: str) -> None:
            @settings(EXAMPLES, max_examples=EXAMPLES_PER_PATH)
            @given(calls(path))
            def examples(call: Call) -> None:
                trio.from_thread.run(send, call)

            for raw, content_type in ISSUE_12:  # each answered 500 or 200 before
                examples = example(Call(path, content_type, raw))(examples)
            examples()

        for path in PATHS:
            await trio.to_thread.run_sync(every_call, path)


async def test_the_chat_takes_json_only_and_says_why_in_spanish(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path)) as (suite, client):
        form = await client.post("/api/chat", data={"message": "hola", "sessionId": "f-1"})
        assert form.status_code == 415
        assert form.json() == {
            "success": False,
            "error": "El cuerpo debe ser JSON",
            "details": [{"campo": "Content-Type", "mensaje": "Se esperaba application/json"}],
        }
        plain = await client.post(
            "/api/chat",
            content=json.dumps({"message": "hola", "sessionId": "f-1"}),
            headers={"Content-Type": "text/plain"},
        )
        assert plain.status_code == 415
        broken = await post_json(client, {"message": "hola \ud83d", "sessionId": "f"})
        assert broken.status_code == 400
        why = "El mensaje contiene un carácter inválido (por ejemplo, un emoji cortado)"
        assert broken.json()["details"] == [{"campo": "message", "mensaje": why}]
        for session in ("f-1\ud83d", "f-1\n"):
            r = await post_json(client, {"message": "hola", "sessionId": session})
            assert r.status_code == 400 and r.json()["details"][0]["campo"] == "sessionId"
        r = await client.post(
            "/api/chat",
            content=b'{"message": 1e999, "sessionId": ' + b"9" * 5000 + b"}",
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 400 and r.json()["details"][0]["campo"] == "message"
        r = await client.post(
            "/api/chat", content=b"\xff", headers={"Content-Type": "application/json"}
        )
        assert r.json()["details"] == [{"campo": "body", "mensaje": "el cuerpo no es texto UTF-8"}]
        assert suite.db is not None
        assert user_messages(suite.db) == 0
