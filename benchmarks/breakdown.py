"""Where an audit's time goes: the user's loop, timed phase by phase, before and after side by side.

    python benchmarks/breakdown.py [--runs 3] [--python PY] [--vs-python OTHER_PY] [--audits clause,quick,ci]

Runs each audit of torch (`clause`: --clause DO-P0-01 --profile quick; `quick`: --profile quick; `ci`:
--profile ci) with PY (default: this interpreter), and with --vs-python also with OTHER_PY, in turn
(A B A B ...) so that both see the same machine. Each run's wall time is measured from outside; its
phases come from report.json run.timings (dropnorm/run/audit.py `timings`: setup before pytest,
pytest start-up and collection, the tests, pytest shutdown, report and replay, and the time inside
the implementation's calls); a checkout whose audit predates the timings gives the wall time alone.
Every run is appended as one JSON line to benchmarks/results/breakdown.jsonl with the commit of the
checkout that PY imports dropnorm from, the host's load average and the CPU count, so that the README's
speed figures are read from that file (benchmarks/figures.py --speed) and say what they rest on.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "breakdown.jsonl"
AUDITS = {"clause": ["--clause", "DO-P0-01", "--profile", "quick"],
          "quick": ["--profile", "quick"],
          "ci": ["--profile", "ci"]}


def checkout_of(python: str) -> tuple[str, str]:
    """(the checkout PY imports dropnorm from, its commit)."""
    where = subprocess.run([python, "-c", "import dropnorm, pathlib; print(pathlib.Path(dropnorm.__file__).resolve().parents[1])"],
                           capture_output=True, text=True, check=True, cwd="/").stdout.strip()  # not this checkout's
    commit = subprocess.run(["git", "-C", where, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", where, "status", "--porcelain", "--untracked-files=no", "dropnorm"],
                           capture_output=True, text=True).stdout.strip()
    return where, commit + ("+dirty" if dirty else "")


def run_once(python: str, checkout: str, audit: str) -> dict:
    # a checkout from before `python -m dropnorm` (issue 26) has the command in dropnorm.cli
    command = "dropnorm" if (pathlib.Path(checkout) / "dropnorm" / "__main__.py").exists() else "dropnorm.cli"
    with tempfile.TemporaryDirectory(prefix="dropnorm-bench-") as tmp:
        began = time.perf_counter()
        proc = subprocess.run([python, "-m", command, "audit", *AUDITS[audit], "--report-dir", tmp, "--quiet"],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=tmp)  # PY's own checkout
        wall = time.perf_counter() - began
        try:
            run = json.loads((pathlib.Path(tmp) / "report.json").read_text())["run"]
        except (OSError, ValueError, KeyError):
            run = {}
    return {"exit_status": proc.returncode, "wall_s": round(wall, 3), "tests": run.get("tests"),
            "timings": run.get("timings")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--vs-python", help="a second interpreter (another checkout's venv): the baseline")
    ap.add_argument("--audits", default="clause,quick,ci")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    pythons = [args.python] + ([args.vs_python] if args.vs_python else [])
    checkouts = {py: checkout_of(py) for py in pythons}
    batch = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")  # this invocation: figures.py reads the latest
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for audit in args.audits.split(","):
        for i in range(args.runs):
            for py in pythons:
                where, commit = checkouts[py]
                result = run_once(py, where, audit)
                entry = {"batch": batch, "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "audit": audit,
                         "argv": AUDITS[audit], "commit": commit, "checkout": where, "run": i,
                         "host_load": os.getloadavg()[0], "cpus": os.cpu_count(), **result}
                with open(out, "a", encoding="utf-8") as f:
                    f.write(json.dumps(entry) + "\n")
                t = result["timings"] or {}
                print(f"{audit:6} {commit[:9]:10} run {i}: {result['wall_s']:6.1f} s wall (exit {result['exit_status']}); "
                      + ", ".join(f"{k} {v}" for k, v in t.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
