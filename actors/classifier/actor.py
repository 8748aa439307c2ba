"""The classifier actor: classifies the answered turns that the turn path could not.

Every turn is classified inside the turn itself (`sales.classify`, a library call). What is
left for this actor is truly asynchronous: at (re)start and every `SWEEP_INTERVAL`, the
stored replies still unclassified — a crash between a reply's commit and its
classification, or a classification that raised — are classified, oldest first, each one
in a transaction that also marks it classified, so nothing is lost or repeated."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import trio

from actors.ack_first import AckFirst, Work
from actors.lifecycle import cancel_when_set
from actors.messages import LeadChanged, NotifierNotice
from sales.classify import LeadClassifier
from store import messages
from store.db import Database

log = logging.getLogger("classifier")

SECONDS = 1.0
SWEEP_INTERVAL = 5 * SECONDS


@dataclass
class ClassifierContext:
    db: Database
    classifier: Callable[[], LeadClassifier]  # the rules in force now
    ack_first: AckFirst


async def sweep(
    ctx: ClassifierContext, notifier_notices: trio.MemorySendChannel[NotifierNotice] | None
) -> int:
    """Classify every unclassified turn; how many there were."""
    pending = messages.unclassified(ctx.db)
    for reply_id in pending:
        async with ctx.ack_first.answering(Work.CLASSIFY):  # (also a checkpoint)
            classified = ctx.classifier().classify(ctx.db, reply_id)
        if classified is not None and classified.alert_queued and notifier_notices is not None:
            try:
                notifier_notices.send_nowait(
                    LeadChanged(classified.lead.id, classified.lead.classification)
                )
            except trio.WouldBlock:
                pass  # the notifier polls the store anyway
    return len(pending)


async def run(
    ctx: ClassifierContext,
    stop: trio.Event,
    *,
    notifier_notices: trio.MemorySendChannel[NotifierNotice] | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """`notifier_notices` belongs to the supervisor and outlives this incarnation."""
    left = await sweep(ctx, notifier_notices)
    if left:
        log.info("classified %d turn(s) left from before", left)
    task_status.started()
    with trio.CancelScope() as intake:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cancel_when_set, stop, intake)
            while True:
                await trio.sleep(SWEEP_INTERVAL)
                await sweep(ctx, notifier_notices)
