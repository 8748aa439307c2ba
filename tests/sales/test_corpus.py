"""Floors on the labelled corpus (tests/data/conversations/, bench/extraction.py prints the
whole table): what the person wrote is read into the right fields, and stray words are not."""

from __future__ import annotations

import pytest

from tests.sales.corpus import evaluate, load_corpus

PRECISION_FLOOR = 0.98  # name, phone, e-mail, comuna: a wrong value misleads the salesperson
RECALL_FLOOR = 0.90
CLASS_FLOOR = 0.90


def test_the_corpus_is_large_and_varied() -> None:
    corpus = load_corpus()
    assert len(corpus) >= 80
    assert {c.channel for c in corpus} == {"web", "whatsapp", "instagram"}
    styles = {s for c in corpus for s in c.style}
    assert {"typos", "voice", "emojis", "chilean", "family", "correction", "off-topic"} <= styles


@pytest.mark.parametrize("path", ["offline", "llm"])
def test_extraction_and_class_hold_their_floors(path: str) -> None:
    report = evaluate(load_corpus(), path)
    for name in ("name", "phone", "email", "area"):
        tally = report.fields[name]
        assert tally.precision >= PRECISION_FLOOR, (path, name, tally, report.misses)
        assert tally.recall >= RECALL_FLOOR, (path, name, tally, report.misses)
    assert report.class_accuracy >= CLASS_FLOOR, (path, report.class_accuracy, report.misses)
