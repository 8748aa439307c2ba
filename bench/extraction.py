"""Extraction quality on the labelled corpus: per-field precision and recall and class
accuracy, for the offline path and for the LLM path's merging of a fake model's realistic,
sometimes wrong JSON. Deterministic; runs in a few seconds.

    .venv/bin/python bench/extraction.py [--misses]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.sales.corpus import FIELDS, Report, evaluate, load_corpus


def table(reports: dict[str, Report]) -> str:
    head = "| field | " + " | ".join(f"{p} precision | {p} recall" for p in reports) + " |"
    rule = "|---|" + "---:|---:|" * len(reports)
    rows = [head, rule]
    for name in FIELDS:
        cells = []
        for report in reports.values():
            t = report.fields[name]
            cells += [
                f"{t.precision:.3f} ({t.correct}/{t.predicted})",
                f"{t.recall:.3f} ({t.correct}/{t.expected})",
            ]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    accuracy = [
        f"{r.class_accuracy:.3f} ({r.classes_right}/{r.conversations})" for r in reports.values()
    ]
    rows.append("| class accuracy | " + " | ".join(f"{a} | " for a in accuracy).rstrip(" |") + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", action="store_true", help="list every wrong field")
    args = parser.parse_args()
    corpus = load_corpus()
    reports = {}
    for path in ("offline", "llm"):
        started = time.perf_counter()
        reports[path] = evaluate(corpus, path)
        took = time.perf_counter() - started
        print(f"{path}: {len(corpus)} conversations in {took:.2f}s", file=sys.stderr)
    print(table(reports))
    if args.misses:
        for path, report in reports.items():
            for miss in report.misses:
                print(f"[{path}] {miss}")


if __name__ == "__main__":
    main()
