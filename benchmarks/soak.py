"""Soak: audit correct implementations many times with fresh seeds and count failures.

    python benchmarks/soak.py [--runs 10] [--impl torch --impl reference] [--profile ci]

Each run is `dropnorm audit --seed S` with a new S (not derandomized: new examples every
run). A correct implementation must never fail: any fail or error is a bug in the suite
(fix the test, never the count). Zero failures in n runs bounds the per-run false-alarm
rate by about 3/n (95%); the statistical checks' own rate is measured directly by
benchmarks/calibration.py. Writes soak.json and prints a summary line per implementation.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import random
import sys
import time

from audit_run import ROOT, audit_report


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--impl", action="append")
    ap.add_argument("--profile", default="ci")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    impls = args.impl or ["torch", "reference"]
    rng = random.SystemRandom()
    results = {}
    for impl in impls:
        runs = []
        for _ in range(args.runs):
            seed = rng.randrange(2 ** 31)
            t0 = time.time()
            report = audit_report(impl, f"--seed={seed}", f"--profile={args.profile}")
            bad = {e["id"]: e["reason"][:300] for e in report["clauses"] if e["status"] in ("fail", "error")}
            runs.append({"seed": seed, "seconds": round(time.time() - t0, 1), "failing": bad,
                         "complete": report["complete"]})
            print(json.dumps({"impl": impl, **runs[-1]}), flush=True)
        failures = sum(bool(r["failing"]) or not r["complete"] for r in runs)
        results[impl] = {"runs": len(runs), "failures": failures, "detail": runs}
        print(f"{impl}: {len(runs)} runs ({args.profile}, fresh seeds), {failures} with a failure; "
              f"per-run false-alarm rate <= {min(1.0, 3.0 / len(runs)):.2g} (95%)", flush=True)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps({"profile": args.profile, "results": results}, indent=1))
    return 1 if any(r["failures"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
