"""Is an implementation's verdict the same for every seed? Audit it once per seed and record it.

    python benchmarks/verdict_seeds.py --impl torch --seeds 1520527174 1 2 3 4 5 6 7 8 9 [--profile ci]

Appends one line per audit to benchmarks/results/verdict-seeds.jsonl (implementation, seed,
profile, commit, exit status, verdict, the status of every clause that is not pass) and prints a
summary: the distinct verdicts seen, and for each the seeds that gave it.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "verdict-seeds.jsonl"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", default="torch")
    ap.add_argument("--profile", default="ci")
    ap.add_argument("--jobs", default="auto")
    ap.add_argument("--seeds", type=int, nargs="+", required=True)
    args = ap.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                capture_output=True, text=True).stdout.strip())
    seen: dict[str, list[int]] = {}
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as d:
            t0 = time.time()
            run = subprocess.run([sys.executable, "-m", "dropnorm.run.cli", "audit", f"--impl={args.impl}",
                                  f"--profile={args.profile}", f"--seed={seed}", f"--jobs={args.jobs}",
                                  f"--report-dir={d}", "--quiet"], cwd=ROOT, capture_output=True, text=True)
            report = json.loads((pathlib.Path(d) / "report.json").read_text())
        line = {"impl": args.impl, "seed": seed, "profile": args.profile, "commit": commit + ("+dirty" if dirty else ""),
                "exit": run.returncode, "verdict": report["verdict"], "duration_s": round(time.time() - t0, 1),
                "not_pass": {e["id"]: e["status"] for e in report["clauses"] if e["status"] != "pass"},
                "reasons": {e["id"]: e["reason"][:300] for e in report["clauses"] if e["status"] in ("fail", "error", "not-reached")}}
        with open(OUT, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
        seen.setdefault(f"exit {run.returncode}: {report['verdict']}", []).append(seed)
        print(f"seed {seed}: exit {run.returncode}: {report['verdict']} ({line['duration_s']} s)", flush=True)
    print(f"\n{len(seen)} distinct verdict(s) over {len(args.seeds)} seeds:")
    for verdict, seeds in seen.items():
        print(f"  {verdict}  <- seeds {seeds}")
    return 0 if len(seen) == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
