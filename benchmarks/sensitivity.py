"""The smallest deviation the suite detects, per quantity, beside the theoretical limit.

    python benchmarks/sensitivity.py [--profile ci] [--steps 7] [--out benchmarks/results]

For each quantity (benchmarks/deviant.py) it audits the deviant layers with
`dropnorm audit --clause C` at sizes on a log grid, then bisects between the largest
size that passed and the smallest that failed. Detection means clause C was reported
fail. With size 0 every clause must pass (a false alarm aborts the benchmark). The
theoretical limit is what the check can see at best: for the keep rate, the smallest
|delta| the exact binomial test detects with power 0.5 and 0.999 at the sample size the
test uses; for exact checks, the relative rounding the tolerance allows.
Writes sensitivity.json and sensitivity.md (a table for the README).
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audit_run import audit_report  # noqa: E402
from dropnorm.spec import stats, tolerances  # noqa: E402
from dropnorm.spec.dtypes import UNIT_ROUNDOFF  # noqa: E402

QUANTITIES = {  # name -> (clause, what size means, log10 grid)
    "scale": ("DO-TRAIN-01", "relative error of the 1/(1-p) scale", (-17, -1)),
    "keep": ("DO-TRAIN-02", "absolute error of the keep probability", (-4, -1)),
    "eps": ("BN-TRAIN-01", "relative error of eps", (-14, 0)),
    "momentum": ("BN-TRAIN-02", "relative error of momentum", (-17, -1)),
    "correction": ("BN-TRAIN-03", "relative error of the n/(n-1) correction", (-17, -1)),
}


def detected(kind: str, size: float, profile: str) -> bool:
    clause = QUANTITIES[kind][0]
    report = audit_report(f"torch-module:{ROOT / 'benchmarks' / 'deviant.py'}", f"--clause={clause}",
                          f"--profile={profile}", env={"DROPNORM_DEVIATION": kind, "DROPNORM_DEVIATION_SIZE": repr(size)})
    status = next(e["status"] for e in report["clauses"] if e["id"] == clause)
    if status not in ("pass", "fail"):
        raise RuntimeError(f"{kind} size {size}: clause {clause} is {status}")
    return status == "fail"


def smallest_detected(kind: str, profile: str, steps: int) -> dict:
    lo_exp, hi_exp = QUANTITIES[kind][2]
    if detected(kind, 0.0, profile):
        raise RuntimeError(f"false alarm: the correct layers fail {QUANTITIES[kind][0]}")
    grid = [10.0 ** e for e in range(lo_exp, hi_exp + 1)]
    passed, failed = 0.0, None
    for size in grid:  # upwards from below the rounding level: the first size detected
        if detected(kind, size, profile):
            failed = size
            break
        passed = size
    if failed is None:
        return {"detected": None, "largest_missed": passed}
    for _ in range(steps):  # geometric bisection between the last pass and the first failure
        mid = math.sqrt(max(passed, failed / 100) * failed)
        if detected(kind, mid, profile):
            failed = mid
        else:
            passed = mid
    return {"detected": failed, "largest_missed": passed}


def theory(kind: str) -> str:
    if kind == "keep":
        n = stats.required_n(0.5)
        d50 = next(d / 1e4 for d in range(1, 1000) if stats.power(n, 0.5, 0.5 + d / 1e4) >= 0.5)
        d999 = next(d / 1e4 for d in range(1, 1000) if stats.power(n, 0.5, 0.5 + d / 1e4) >= stats.POWER)
        return (f"one exact test at p=0.5, n={n}, alpha={stats.ALPHA:g}: power 0.5 at |delta| {d50:g}, "
                f"0.999 at {d999:g}; up to {stats.STAT_MAX_EXAMPLES} such tests per run")
    if kind == "scale":
        return (f"tolerance {tolerances.dropout_scale_rtol('float64'):.2g} relative in float64, "
                f"{tolerances.dropout_scale_rtol('float32'):.2g} in float32 (the dtype's rounding)")
    return (f"float rounding of the checked values: unit roundoff {UNIT_ROUNDOFF['float64']:.2g} (float64), "
            f"{UNIT_ROUNDOFF['float32']:.2g} (float32), times the condition of the operation (dropnorm/spec/tolerances.py)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="ci")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--only", action="append", choices=list(QUANTITIES))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for kind in args.only or QUANTITIES:
        t0 = time.time()
        found = smallest_detected(kind, args.profile, args.steps)
        row = {"quantity": kind, "clause": QUANTITIES[kind][0], "meaning": QUANTITIES[kind][1], **found,
               "theory": theory(kind), "seconds": round(time.time() - t0, 1)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    (out / "sensitivity.json").write_text(json.dumps({"profile": args.profile, "rows": rows}, indent=1))
    lines = ["| quantity (clause) | smallest detected | largest missed | theoretical limit |", "|---|---|---|---|"]
    for r in rows:
        det = f"{r['detected']:.2g}" if r["detected"] is not None else "not detected in the grid"
        lines.append(f"| {r['meaning']} ({r['clause']}) | {det} | {r['largest_missed']:.2g} | {r['theory']} |")
    (out / "sensitivity.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
