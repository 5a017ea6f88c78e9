#!/usr/bin/env python3
"""Summarise benchmarks/results/blind-probes.jsonl: the latest row per (probe, profile) of a round.

    python benchmarks/blind_probes/summarize.py [--round 2]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "blind-probes.jsonl"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--round", default="2")
    args = ap.parse_args()
    latest: dict = {}
    for line in RESULTS.read_text().splitlines():
        row = json.loads(line)
        if row.get("round") == args.round:
            latest[(row["name"], row["profile"])] = row
    names = sorted({n for n, _ in latest})
    profiles = [p for p in ("quick", "ci", "thorough") if any(k[1] == p for k in latest)]
    print("| probe | classes | observable | " + " | ".join(f"{p}: exit, caught, new clauses" for p in profiles) + " |")
    print("|---|---|---|" + "---|" * len(profiles))
    for n in names:
        rows = [latest.get((n, p)) for p in profiles]
        first = next(r for r in rows if r)
        cells = []
        for r in rows:
            if r is None:
                cells.append("-")
            else:
                verdict = ("FALSE ALARM" if r["caught"] else "ok") if r["correct"] else ("caught" if r["caught"] else "ESCAPED")
                cells.append(f"{r['exit']}, {verdict}, {', '.join(r['new_failing_clauses']) or '-'} ({r['seconds']:.0f} s)")
        print(f"| {n} | {', '.join(first.get('classes') or [])} | {first['observable']} | " + " | ".join(cells) + " |")
    for p in profiles:
        defects = [latest[(n, p)] for n in names if (n, p) in latest and not latest[(n, p)]["correct"]]
        corrects = [latest[(n, p)] for n in names if (n, p) in latest and latest[(n, p)]["correct"]]
        esc = [r["name"] for r in defects if not r["caught"]]
        fa = [r["name"] for r in corrects if r["caught"]]
        print(f"\n{p}: {len(defects)} defects run, {len(esc)} escaped ({len(esc) / max(len(defects), 1):.2f}); "
              f"{len(corrects)} correct variants, {len(fa)} false alarms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
