"""Soak: audit correct implementations many times with fresh seeds and count failures.

    python benchmarks/soak.py [--runs 10] [--impl torch --impl reference] [--profile ci]
                              [--tree snapshot|worktree]

Each run is `dropnorm audit --seed S --profile P` with a new S drawn from the OS
(dropnorm.suite.plugin turns derandomization off when a seed is given: new examples every run).
A correct implementation must never fail: any fail or error is a bug in the suite (fix
the test, never the count) or, as for torch's transposed backward, a real bug of the
implementation, to be recorded and written up.

Runs never overwrite earlier ones: each finished run is appended at once, as one JSON
line, to benchmarks/results/soak.jsonl (seed, profile, implementation, commit, tree,
versions, duration, failures), so an interrupted soak loses at most the run in progress
and successive soaks add up. Implementations are interleaved (torch, reference, torch,
...) so that the counts stay balanced whenever the soak is stopped.

--tree snapshot (default) audits an exported copy (`git archive`) of the commit HEAD
names when the soak starts, so that edits made to the working tree while the soak runs
cannot mix into it: every run's "commit" is exactly the code it ran. --tree worktree
audits the working tree itself and records, per run, the commit with "+dirty:<hash of the
uncommitted changes>" when the audited paths differ from it. A snapshot needs a commit that
works on its own with the shared venv; while engineers commit partial sets of changes HEAD
may not (the first snapshot soaks of Dec 1 hit such commits: see soak.jsonl), and then the
working tree is the state that is actually tested.

benchmarks/figures.py summarises soak.jsonl (runs, failures, the false-alarm bound).
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import pathlib
import platform
import random
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "soak.jsonl"
# what the audit's outcome depends on: a change under these paths makes the working tree dirty
AUDITED_PATHS = ("dropnorm", "reference", "spec", "tests", "conftest.py", "pyproject.toml")


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout.strip()


def snapshot(commit: str, into: pathlib.Path) -> None:
    """Export the tree of `commit` into `into` (no .git; the repository is not touched)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", commit],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)


def worktree_commit() -> str:
    """HEAD, plus "+dirty:<sha256 of the uncommitted changes>" when the audited paths differ from it
    (tracked changes and the untracked files' contents), so that runs on one working-tree state group."""
    head = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=all", "--", *AUDITED_PATHS)
    if not status:
        return head
    digest = hashlib.sha256(subprocess.run(["git", "-C", str(ROOT), "diff", "HEAD", "--binary", "--", *AUDITED_PATHS],
                                           capture_output=True, check=True).stdout)
    for line in sorted(status.splitlines()):
        if line.startswith("??"):
            path = ROOT / line[3:]
            digest.update(line.encode() + (path.read_bytes() if path.is_file() else b""))
    return f"{head}+dirty:{digest.hexdigest()[:12]}"


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("torch", "numpy", "scipy", "hypothesis", "pytest", "xdist"):
        try:
            module = __import__(name)
            out[name] = getattr(module, "__version__", None)
        except Exception:  # noqa: BLE001 - a missing package is recorded as None
            out[name] = None
    return out


def audit(tree: pathlib.Path, impl: str, seed: int, profile: str, jobs: str,
          extra: list[str] | tuple = ()) -> tuple[dict | None, int, str]:
    """One `dropnorm audit` of `tree`'s code; returns (report.json or None, exit status, stderr tail)."""
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, PYTHONPATH=str(tree) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        pyproject = tree / "pyproject.toml"
        if tree != ROOT and pyproject.exists() and "pytest11" not in pyproject.read_text():
            # the shared venv's editable install may register a pytest11 entry point the snapshot predates
            env["PYTEST_ADDOPTS"] = (env.get("PYTEST_ADDOPTS", "") + " -p no:dropnorm").strip()
        proc = subprocess.run([sys.executable, "-m", "dropnorm.run.cli", "audit", f"--impl={impl}", f"--jobs={jobs}",
                               "--quiet", f"--report-dir={d}", f"--seed={seed}", f"--profile={profile}", *extra],
                              cwd=tree, env=env, capture_output=True, text=True, check=False)
        report_file = pathlib.Path(d) / "report.json"
        report = json.loads(report_file.read_text()) if report_file.exists() else None
        return report, proc.returncode, (proc.stdout + proc.stderr)[-2000:]


def examples_digest(report: dict) -> str:
    """A digest of every clause's statistics (what the statistical checks counted, example by example): two
    runs with the same digest drew the same examples. Recorded so that a soak shows its runs were fresh
    (until c6cfbd8 the seed was lost under quick and ci, and every run drew the same examples)."""
    stats = [(e["id"], e.get("statistics")) for e in report["clauses"]]
    return hashlib.sha256(json.dumps(stats, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_record(tree: pathlib.Path, commit: str, tree_kind: str, impl: str, profile: str, jobs: str,
               vers: dict) -> dict:
    seed = random.SystemRandom().randrange(2 ** 31)
    started = time.time()
    report, status, tail = audit(tree, impl, seed, profile, jobs)
    seconds = round(time.time() - started, 1)
    record = {"time": dt.datetime.fromtimestamp(started, dt.timezone.utc).isoformat(timespec="seconds"),
              "impl": impl, "seed": seed, "profile": profile, "commit": commit, "tree": tree_kind,
              "versions": vers, "seconds": seconds, "exit_status": status, "host_load": os.getloadavg()[0]}
    if report is None:  # the audit itself broke: a failure of the run, with what it printed
        record.update(complete=False, failing={"(audit)": f"no report.json; exit {status}: {tail}"}, summary=None)
    else:
        record.update(complete=bool(report["complete"]), summary=report.get("summary"),
                      failing={e["id"]: (e.get("reason") or "")[:500] for e in report["clauses"]
                               if e["status"] in ("fail", "error")},
                      # a clause left unjudged on a correct implementation (a condition the run's draws never
                      # reached): not a false alarm, but a verdict short of "conformant"
                      not_reached={e["id"]: (e.get("reason") or "")[:500] for e in report["clauses"]
                                   if e["status"] == "not-reached"},
                      implementation_version=(report.get("implementation") or {}).get("version"),
                      audit_duration_s=(report.get("run") or {}).get("duration_s"),
                      examples_digest=examples_digest(report))
    record["failed"] = bool(record["failing"]) or not record["complete"]
    return record


def append(record: dict, path: pathlib.Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10, help="runs per implementation")
    ap.add_argument("--impl", action="append", help="repeatable; default torch and reference")
    ap.add_argument("--profile", default="ci")
    ap.add_argument("--jobs", default="2")
    ap.add_argument("--tree", choices=("snapshot", "worktree"), default="snapshot")
    ap.add_argument("--commit", default="HEAD", help="the commit to snapshot (--tree snapshot); default HEAD")
    ap.add_argument("--out", default=str(RESULTS), help="the JSON Lines file runs are appended to")
    args = ap.parse_args()
    impls = args.impl or ["torch", "reference"]
    out = pathlib.Path(args.out)
    vers = versions()
    failures = {impl: 0 for impl in impls}
    with tempfile.TemporaryDirectory(prefix="dropnorm-soak-") as tmp:
        if args.tree == "snapshot":
            commit = git("rev-parse", "--verify", args.commit + "^{commit}")
            tree = pathlib.Path(tmp)
            snapshot(commit, tree)
            tree_kind = f"snapshot of {commit[:12]} (git archive)"
        else:
            commit, tree, tree_kind = worktree_commit(), ROOT, "working tree"
        print(f"soak: {args.runs} runs each of {', '.join(impls)} ({args.profile}, fresh seeds) on {commit}, "
              f"appending to {out}", flush=True)
        for i in range(args.runs):
            for impl in impls:
                if args.tree == "worktree":
                    commit = worktree_commit()
                record = run_record(tree, commit, tree_kind, impl, args.profile, args.jobs, vers)
                append(record, out)
                failures[impl] += record["failed"]
                print(json.dumps({k: record[k] for k in ("impl", "seed", "seconds", "failed", "failing")}
                                 | {"not_reached": sorted(record.get("not_reached") or ())}),
                      flush=True)
    for impl in impls:
        print(f"{impl}: {args.runs} runs this soak, {failures[impl]} with a failure "
              f"(all runs: python benchmarks/figures.py)", flush=True)
    return 1 if any(failures.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
