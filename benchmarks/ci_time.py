"""Record how long the README's test command took, from the log of a `.ci/run`.

    CI=true bash .ci/run > ci.log 2>&1; python benchmarks/ci_time.py ci.log [--commit REV]

Appends one JSON line to benchmarks/results/ci-runs.jsonl: the commit, pytest's summary line (passed,
skipped, xfailed, failed) and its wall time, and the 25 slowest tests pytest printed (--durations=25
in pyproject.toml), so that the README's figure for the test command is read from a file a script wrote.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "ci-runs.jsonl"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("--commit", default="HEAD")
    args = ap.parse_args(argv)
    text = pathlib.Path(args.log).read_text(encoding="utf-8", errors="replace")
    summary = [line for line in text.splitlines() if re.match(r"^=+ .*\d+ passed.* in [\d.]+s", line)]
    if not summary:
        print(f"{args.log}: no pytest summary line", file=sys.stderr)
        return 1
    line = summary[-1].strip("= ")
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|xfailed|errors?)", line)}
    seconds = float(re.search(r" in ([\d.]+)s", line).group(1))
    slowest = re.findall(r"^([\d.]+)s (setup|call|teardown) +(\S+)$", text, re.M)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", args.commit], capture_output=True, text=True,
                            check=True).stdout.strip()
    entry = {"time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "commit": commit,
             "tests_seconds": seconds, "counts": counts, "summary": line,
             "slowest": [{"seconds": float(s), "phase": ph, "test": t} for s, ph, t in slowest]}
    with open(OUT, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")
    print(f"{commit[:9]}: tests {seconds:.0f} s; {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
