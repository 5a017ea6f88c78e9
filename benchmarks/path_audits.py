"""Whole audits of torch's execution paths, timed: the figures of README "Execution paths".

    python benchmarks/path_audits.py --impl torch-functional --runs 3
    python benchmarks/path_audits.py --impl torch-compile --cache cold --runs 1
    python benchmarks/path_audits.py --table            # the README table, from the results file
    python benchmarks/path_audits.py --impl torch-compile --cache warm --keep docs/matrix-run/reports/torch-compile

Each run is one `dropnorm audit --impl IMPL --profile PROFILE --jobs 2` in a temporary report directory,
its wall time measured around the whole command (the audit, its report, and the replay of the
reproduction scripts in fresh processes). For the compile paths `--cache cold` gives the run an empty
inductor cache (TORCHINDUCTOR_CACHE_DIR, as on a fresh CI machine) and `--cache warm` the shared one
under benchmarks/.inductor-cache that earlier runs filled (a run that finds it empty fills it and is
recorded as cold). Every run appends one line to
benchmarks/results/path-audits.jsonl: the commit, the machine's load average before and after (this
machine is shared, so a time is an upper bound for its code), the verdict and the clause counts.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "path-audits.jsonl"
WARM_CACHE = ROOT / "benchmarks" / ".inductor-cache"


def commit() -> str:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "dropnorm", "reference", "spec"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return head + ("+dirty" if dirty else "")


def keep(report_dir: pathlib.Path, dest: pathlib.Path, wall: float, exit_status: int) -> None:
    """The report as `dropnorm matrix --from` reads it: report.json.gz, report.md, matrix-run.json."""
    import gzip
    import shutil
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "report.json.gz").write_bytes(gzip.compress((report_dir / "report.json").read_bytes(), mtime=0))
    shutil.copyfile(report_dir / "report.md", dest / "report.md")
    (dest / "matrix-run.json").write_text(json.dumps({"python": sys.executable, "wall_s": round(wall, 1),
                                                      "exit_status": exit_status}, indent=1) + "\n")


def one_run(impl: str, profile: str, cache: str, keep_dir: pathlib.Path | None = None) -> dict:
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as d, tempfile.TemporaryDirectory() as fresh:
        if cache != "none":
            WARM_CACHE.mkdir(parents=True, exist_ok=True)
            env["TORCHINDUCTOR_CACHE_DIR"] = fresh if cache == "cold" else str(WARM_CACHE)
            if cache == "warm" and not any(WARM_CACHE.iterdir()):
                cache = "cold"  # an empty shared cache: this run fills it, and is timed as cold
        load_before = os.getloadavg()[0]
        code = commit()  # before the run: the code it ran is the code on disk when it started
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "dropnorm.run.cli", "audit", f"--impl={impl}", f"--profile={profile}",
                               "--jobs=2", "--quiet", f"--report-dir={d}"], cwd=ROOT, env=env,
                              capture_output=True, text=True, check=False)
        wall = time.monotonic() - started
        report = json.loads((pathlib.Path(d) / "report.json").read_text())
        if keep_dir is not None:
            keep(pathlib.Path(d), keep_dir, wall, proc.returncode)
    return {"impl": impl, "profile": profile, "cache": cache, "wall_s": round(wall, 1),
            "audit_s": report["run"]["duration_s"], "replay_s": report["run"].get("replay_s", 0.0),
            "tests": report["run"]["tests"], "exit": proc.returncode, "verdict": report["verdict"],
            "summary": {k: v for k, v in report["summary"].items() if v}, "commit": code,
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
            "cpus": os.cpu_count(), "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def table(runs: list[dict]) -> str:
    groups: dict = {}
    for r in runs:
        groups.setdefault((r["impl"], r["profile"], r["cache"], r["commit"][:7]), []).append(r)
    out = ["| `--impl` | profile | inductor cache | runs | wall time, median (min - max) | load avg. (before) | "
           "verdict | code |", "|---|---|---|---|---|---|---|---|"]
    for (impl, profile, cache, code), rs in groups.items():
        walls = [r["wall_s"] for r in rs]
        verdicts = sorted({r["verdict"] for r in rs})
        loads = [r["load_before"] for r in rs]
        span = f"{statistics.median(walls) / 60:.1f} min" + (
            f" ({min(walls) / 60:.1f} - {max(walls) / 60:.1f})" if len(walls) > 1 else "")
        out.append(f"| {impl} | {profile} | {'-' if cache == 'none' else cache} | {len(rs)} | {span} | "
                   f"{min(loads):.1f} - {max(loads):.1f} | {'; '.join(verdicts)} | {code} |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--impl", action="append", default=[])
    ap.add_argument("--profile", default="ci")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--cache", choices=("cold", "warm", "none"), default=None,
                    help="inductor cache for compile paths (default: cold for torch-compile*, none otherwise)")
    ap.add_argument("--table", action="store_true", help="print the README table from the results file")
    ap.add_argument("--code", action="append", default=[], metavar="COMMIT",
                    help="with --table: only runs of the code at these commits (prefixes)")
    ap.add_argument("--keep", metavar="DIR", help="keep the last run's report there, as `dropnorm matrix --from` "
                                                   "reads it (e.g. docs/matrix-run/reports/torch-compile)")
    args = ap.parse_args(argv)
    for impl in args.impl:
        cache = args.cache or ("cold" if impl.startswith("torch-compile") else "none")
        for _ in range(args.runs):
            run = one_run(impl, args.profile, cache, pathlib.Path(args.keep) if args.keep else None)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            with RESULTS.open("a", encoding="utf-8") as f:
                f.write(json.dumps(run) + "\n")
            print(json.dumps(run), flush=True)
    if args.table:
        runs = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
        if args.code:
            runs = [r for r in runs if any(r["commit"].startswith(c) for c in args.code)]
        print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
