"""Hostile webhooks, generated (issue 12): signed, Meta-shaped WhatsApp and Instagram batches
in which some items carry what Meta never sends (huge, negative and non-finite numbers, wrong
types at every level, lone surrogates, long strings, deep nesting, unicode ids) beside valid
messages. Each batch is posted twice (Meta redelivers) to one running suite: never a 5xx,
every valid message stored exactly once, and the redelivery changes nothing.

Hypothesis with pytest-trio: an async test under `@given` gets a fresh `trio.run` per
example, so a fresh suite each time, which is too slow. Instead the async test starts the
suite once and runs a plain `@given` function in a worker thread (`trio.to_thread.run_sync`);
each example posts through `trio.from_thread.run`, on the suite's own event loop. Hypothesis
keeps all its powers: derandomized examples, and a failure shrunk to its smallest batch."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from actors.ingress.app import MAX_BODY_BYTES
from store.db import Database
from tests.conftest import make_settings, running_suite
from tests.meta import (
    IG_ACCOUNT,
    META_ENV,
    dumps_raw,
    hostile_values,
    instagram_event,
    post_signed,
    raw,
    whatsapp_body,
    whatsapp_message,
)

EXAMPLES = settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
WHATSAPP_SENDERS = [f"5691234{i:04d}" for i in range(4)]
INSTAGRAM_SENDERS = [f"612345000000{i:04d}" for i in range(4)]
_ids = itertools.count()  # valid ids are never drawn: no two examples share one
Where = tuple[str | int, ...]


@dataclass(frozen=True)
class Valid:
    sender: str
    external_id: str
    text: str


@dataclass(frozen=True)
class Batch:
    channel: str
    body: dict[str, Any]
    valid: list[Valid]


texts = st.text(min_size=1, max_size=60).filter(str.strip)
fresh_id = st.builds(lambda: next(_ids))
epoch_s = st.integers(1_700_000_000, 1_800_000_000)


def paths(node: Any, at: Where = ()) -> list[Where]:
    """Every place in `node` a value can be put: itself and all it contains."""
    found = [at]
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*at, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += paths(value, (*at, i))
    return found


def put(node: Any, at: Where, value: Any, how: str) -> Any:
    """`node` with `value` at `at` (replacing what was there, or as a new key beside it), or
    with what is at `at` deleted; a path the earlier changes removed leaves it as it was."""
    if not at:
        return value if how != "delete" else None
    parent = node
    for step in at[:-1]:
        try:
            parent = parent[step]
        except (KeyError, IndexError, TypeError):
            return node
    last = at[-1]
    if how == "add" and isinstance(parent, dict):
        parent[f"{last}_extra" if last in parent else last] = value
    elif how == "delete" and isinstance(parent, dict):
        parent.pop(last, None)
    elif isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list) and isinstance(last, int) and last < len(parent):
        parent[last] = value
    return node


@st.composite
def spoiled(draw: st.DrawFn, template: Any, keep: Callable[[Where], bool] = bool) -> Any:
    """`template` after one to three hostile changes at paths `keep` allows."""
    node = copy.deepcopy(template)
    for _ in range(draw(st.integers(1, 3))):
        allowed = [p for p in paths(node) if keep(p)] or [()]
        at = draw(st.sampled_from(allowed))
        how = draw(st.sampled_from(["replace", "replace", "add", "delete"]))
        node = put(node, at, draw(hostile_values), how)
    return node


# --- WhatsApp ---------------------------------------------------------------------------------


def whatsapp_templates(n: int) -> list[dict[str, Any]]:
    base = whatsapp_message("56900000000", f"wamid.hostile-{n}", "hola")
    reply = {"type": "button_reply", "button_reply": {"id": "b", "title": "Sí"}}
    return [
        base,
        {**base, "type": "image", "image": {"id": "1", "caption": "mire"}},
        {**base, "type": "interactive", "interactive": reply},
        {**base, "type": "reaction", "reaction": {"message_id": "wamid.x", "emoji": "👍"}},
        {**base, "type": "unsupported", "unsupported": {"type": "edit"},
         "errors": [{"code": 131051, "title": "Unsupported"}]},
        {"id": f"wamid.ours-{n}", "status": "failed", "timestamp": "1764230000",
         "recipient_id": "569", "errors": [{"code": 131047, "title": "Re-engagement"}]},
    ]  # fmt: skip


@st.composite
def whatsapp_hostile_item(draw: st.DrawFn) -> tuple[str, Any]:
    """("messages" or "statuses", a spoiled item)."""
    template = draw(st.sampled_from(whatsapp_templates(draw(fresh_id))))
    return ("statuses" if "status" in template else "messages"), draw(spoiled(template))


@st.composite
def whatsapp_batches(draw: st.DrawFn) -> Batch:
    valid = [
        Valid(draw(st.sampled_from(WHATSAPP_SENDERS)), f"wamid.valid-{draw(fresh_id)}", text)
        for text in draw(st.lists(texts, min_size=1, max_size=3))
    ]
    messages = [whatsapp_message(v.sender, v.external_id, v.text, draw(epoch_s)) for v in valid]
    hostile = draw(st.lists(whatsapp_hostile_item(), min_size=1, max_size=4))
    messages += [item for where, item in hostile if where == "messages"]
    statuses = [item for where, item in hostile if where == "statuses"]
    body = whatsapp_body(
        draw(st.permutations(messages)),
        statuses,
        contacts=[{"profile": {"name": "Ana"}, "wa_id": WHATSAPP_SENDERS[0]}],
        errors=[{"code": 131000, "title": "Something went wrong"}],
    )
    # Beside the valid messages, anything in their change but their own list may be wrong.
    body = draw(spoiled(body, keep=lambda p: len(p) > 5 and p[5] != "messages"))
    for _ in range(draw(st.integers(0, 2))):  # whole entries that are wrong at any level
        where, item = draw(whatsapp_hostile_item())
        other = whatsapp_body([item]) if where == "messages" else whatsapp_body([], [item])
        body["entry"].append(draw(spoiled(other["entry"][0])))
    body["entry"] = draw(st.permutations(body["entry"]))
    return Batch("whatsapp", body, valid)


# --- Instagram --------------------------------------------------------------------------------


def instagram_templates(n: int) -> list[dict[str, Any]]:
    base = instagram_event("6123450000009999", f"mid.hostile-{n}", "hola")
    who = {key: base[key] for key in ("sender", "recipient", "timestamp")}
    return [
        base,
        {**who, "message": {"mid": f"mid.hostile-{n}",
                            "attachments": [{"type": "image", "payload": {"url": "https://x"}}]}},
        {**who, "reaction": {"mid": f"mid.hostile-{n}", "action": "react", "emoji": "❤"}},
        {**who, "message_edit": {"mid": f"mid.hostile-{n}", "text": "otro", "num_edit": 1}},
        {**who, "read": {"mid": f"mid.ours-{n}"}},
        {**who, "postback": {"mid": f"mid.hostile-{n}", "title": "Sí", "payload": "SI"}},
    ]  # fmt: skip


@st.composite
def instagram_hostile_event(draw: st.DrawFn) -> Any:
    return draw(spoiled(draw(st.sampled_from(instagram_templates(draw(fresh_id))))))


@st.composite
def instagram_batches(draw: st.DrawFn) -> Batch:
    valid = [
        Valid(draw(st.sampled_from(INSTAGRAM_SENDERS)), f"mid.valid-{draw(fresh_id)}", text)
        for text in draw(st.lists(texts, min_size=1, max_size=3))
    ]
    events = [instagram_event(v.sender, v.external_id, v.text, draw(epoch_s) * 1000) for v in valid]
    events += draw(st.lists(instagram_hostile_event(), min_size=1, max_size=4))
    entry = {
        "id": IG_ACCOUNT,
        "time": draw(epoch_s) * 1000,
        "messaging": draw(st.permutations(events)),
    }
    # Beside the valid events, the entry's own id and time may be wrong.
    entry = draw(spoiled(entry, keep=lambda p: p in {("id",), ("time",)}))
    entries = [entry]
    for _ in range(draw(st.integers(0, 2))):  # whole entries that are wrong at any level
        other = {
            "id": IG_ACCOUNT,
            "time": 1764230100000,
            "messaging": [draw(instagram_hostile_event())],
        }
        entries.append(draw(spoiled(other)))
    return Batch(
        "instagram", {"object": "instagram", "entry": draw(st.permutations(entries))}, valid
    )


# --- The property -----------------------------------------------------------------------------


def _issue_12() -> list[Batch]:
    """The batches of the issue, always tried first: each answered 500 (or 400) on every
    delivery, and the valid message beside the odd one was never stored."""
    neighbour = Valid(WHATSAPP_SENDERS[0], "wamid.issue-12-neighbour", "Hola")
    good = whatsapp_message(neighbour.sender, neighbour.external_id, neighbour.text)
    odd: list[Any] = [
        whatsapp_message("569", "wamid.issue-12-huge", "x", ts=10**30),
        {**whatsapp_message("569", "wamid.issue-12-inf", "x"), "timestamp": raw("1e999")},
        whatsapp_message("569", "wamid.issue-12-surrogate", "hola \ud83d"),
        whatsapp_message("569", "wamid.issue-12-\ud83d", "x"),
    ]
    receipt = {"id": "wamid.ours", "status": "failed",
               "errors": [{"code": 10**30, "title": {"an": "object"}}]}  # fmt: skip
    ig_neighbour = Valid(INSTAGRAM_SENDERS[0], "mid.issue-12-neighbour", "Hola")
    ig_events = [
        instagram_event("6123", "mid.issue-12-huge", "x", ts_ms=10**30),
        instagram_event("6123", "mid.issue-12-surrogate", "\ud83d"),
        {**instagram_event("\ud83d", "mid.x", ""), "message": None, "referral": {"ref": "\ud83d"}},
        instagram_event(ig_neighbour.sender, ig_neighbour.external_id, ig_neighbour.text),
    ]
    instagram = {"object": "instagram",
                 "entry": [{"id": IG_ACCOUNT, "time": 10**30, "messaging": ig_events}]}  # fmt: skip
    return [
        *(Batch("whatsapp", whatsapp_body([item, good]), [neighbour]) for item in odd),
        Batch("whatsapp", whatsapp_body([good], [receipt]), [neighbour]),
        Batch("instagram", instagram, [ig_neighbour]),
    ]


def counts(db: Database) -> tuple[int, int, int]:
    return (
        db.scalar("SELECT count(*) FROM messages WHERE role = 'user'"),
        db.scalar("SELECT count(*) FROM unsupported_events"),
        db.scalar("SELECT count(*) FROM delivery_statuses"),
    )


def stored(db: Database, channel: str, external_id: str) -> list[dict[str, Any]]:
    return db.all(
        "SELECT c.external_key AS sender, m.content, m.kind FROM messages m"
        " JOIN conversations c ON c.id = m.conversation_id"
        " WHERE m.channel = ? AND m.external_id = ?",
        (channel, external_id),
    )


async def test_hostile_batches_never_fail_and_never_lose_a_valid_message(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path, **META_ENV)) as (suite, client):
        db = suite.db
        assert db is not None

        async def deliver(batch: Batch) -> None:
            signed = dumps_raw(batch.body)
            first = await post_signed(client, batch.channel, signed)
            if len(signed) > MAX_BODY_BYTES:  # a rare draw: refused whole, as any body that big
                assert first.status_code == 413
                return
            assert first.status_code == 200, first.text
            for message in batch.valid:
                rows = stored(db, batch.channel, message.external_id)
                assert rows == [{"sender": message.sender, "content": message.text.strip(),
                                 "kind": "text"}]  # fmt: skip
            before = counts(db)
            again = await post_signed(client, batch.channel, signed)  # Meta redelivers
            assert again.status_code == 200, again.text
            assert counts(db) == before

        @EXAMPLES
        @given(st.one_of(whatsapp_batches(), instagram_batches()))
        def every_batch(batch: Batch) -> None:
            trio.from_thread.run(deliver, batch)

        for batch in _issue_12():
            every_batch = example(batch)(every_batch)

        await trio.to_thread.run_sync(every_batch)
