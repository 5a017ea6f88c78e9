"""Calibration of the statistical checks: is the false-rejection rate what alpha says?

    python benchmarks/calibration.py [--runs 8] [--impl torch]

The audit rejects at alpha = 5e-10 per check, far too rare to observe. But every exact
test records its p-value in the report whether it rejects or not, and for a correct
implementation the p-values of an exact test satisfy P(p <= a) <= a for every a (uniform,
up to discreteness). So: audit the statistical clauses with fresh seeds, collect every
p-value, and compare the observed rejection rate at relaxed levels (0.01, 0.05, 0.1) with
the level, with a Clopper-Pearson interval. A rate well above its level means a test
whose null distribution is wrong (a bug in the suite). Writes calibration.json and .md.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import random
import sys

from scipy import stats as st

from audit_run import ROOT, audit_report
STAT_CLAUSES = ("DO-TRAIN-02", "DO-TRAIN-03", "DO-TRAIN-04", "DO-TRAIN-05", "DO-MOMENT-01", "D2-TRAIN-03",
                "D2-TRAIN-04")
LEVELS = (0.001, 0.01, 0.05, 0.1)


def pvalues(impl: str, seed: int, profile: str) -> list[dict]:
    report = audit_report(impl, f"--seed={seed}", f"--profile={profile}", *[f"--clause={c}" for c in STAT_CLAUSES])
    return [{"clause": e["id"], "condition": s["condition"], "pvalue": s["pvalue"]}
            for e in report["clauses"] for s in e["statistics"]]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--impl", action="append")
    ap.add_argument("--profile", default="ci")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    rng = random.SystemRandom()
    rows, everything = [], {}
    for impl in args.impl or ["torch"]:
        ps = [p for _ in range(args.runs) for p in pvalues(impl, rng.randrange(2 ** 31), args.profile)]
        everything[impl] = ps
        n = len(ps)
        for level in LEVELS:
            k = sum(p["pvalue"] <= level for p in ps)
            ci = st.binomtest(k, n, level).proportion_ci(0.95, method="exact") if n else None
            above = st.binomtest(k, n, level, alternative="greater").pvalue if n else float("nan")
            rows.append({"impl": impl, "level": level, "n": n, "k": k, "rate": k / n if n else float("nan"),
                         "ci95": [ci.low, ci.high] if ci else None, "p_above_level": above})
            print(json.dumps(rows[-1]), flush=True)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "calibration.json").write_text(json.dumps({"rows": rows, "pvalues": everything}, indent=1))
    lines = ["| impl | level a | p-values | p <= a | rate | 95% CI | P(rate this high if calibrated) |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['impl']} | {r['level']} | {r['n']} | {r['k']} | {r['rate']:.4f} | "
              f"[{r['ci95'][0]:.4f}, {r['ci95'][1]:.4f}] | {r['p_above_level']:.3g} |" for r in rows if r["n"]]
    (out / "calibration.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    # calibrated: no level's rate is significantly above it (one-sided, Bonferroni over the levels)
    return 1 if any(r["n"] and r["p_above_level"] < 0.001 / len(LEVELS) for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
