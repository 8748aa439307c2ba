"""A process's identity: worker number and node from the environment, sane defaults."""

from __future__ import annotations

import socket

from sales.identity import current


def test_a_suite_alone_is_worker_one_on_this_host() -> None:
    me = current({})
    assert (me.node, me.worker) == (socket.gethostname(), 1)


def test_the_parent_numbers_its_workers_and_a_node_can_be_named() -> None:
    me = current({"IA_COMERCIAL_WORKER": "3", "NODE_NAME": "srv-b"})
    assert (me.node, me.worker, me.name) == ("srv-b", 3, "srv-b/3")


def test_a_malformed_worker_number_falls_back_to_one() -> None:
    assert current({"IA_COMERCIAL_WORKER": "x"}).worker == 1
    assert current({"IA_COMERCIAL_WORKER": "0"}).worker == 1
