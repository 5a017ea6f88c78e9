#!/usr/bin/env python3
"""Run the blind probes (benchmarks/blind_probes/round<N>/*.py) through `dropnorm audit`.

For each probe file: run its confirm() (a direct differential comparison with torch.nn, in a fresh
process), then `dropnorm audit --impl torch-module:<file> --profile P --report-dir /tmp/blind/<name>
--replay none --layer L...` (L: the layer families of the classes the probe defines itself; the rest of
the file is torch's own classes, re-exported), time it, read report.json, and append one JSON line to
benchmarks/results/blind-probes.jsonl. Audits run one at a time.

A probe is caught when the audit exits non-zero and at least one clause/condition fails (fail, error,
not-reached) that does not also fail -- or stand as a recorded deviation or known defect -- for torch
itself (`--impl torch`, same profile, audited once per run as the baseline). Conditions, not clauses: a
probe that subclasses torch's layers inherits torch's recorded defects as unrecorded failures of its own
class, on the same conditions, and those are not its defect. For the correct_* files, caught means a
false alarm. `--rejudge` recomputes the verdicts of the last run from its reports in /tmp/blind.

    python benchmarks/blind_probes/run.py [--round 3] [--profile quick|ci] [--only NAME]... [--reuse-baseline]
"""
from __future__ import annotations

import argparse
import json
import re
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
# the layer family (--layer) of each class a probe may define
FAMILY = {"Dropout": "dropout", "Dropout1d": "dropout2d", "Dropout2d": "dropout2d", "Dropout3d": "dropout2d",
          "AlphaDropout": "alphadropout", "FeatureAlphaDropout": "alphadropout"}
RESULTS = ROOT / "benchmarks" / "results" / "blind-probes.jsonl"
OUT = Path("/tmp/blind")
BAD = ("fail", "error", "not-reached", "known-defect")
PY = ROOT / ".venv" / "bin" / "python"
DROPNORM = ROOT / ".venv" / "bin" / "dropnorm"

CONFIRM = r"""
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("blind_probe_under_test", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
r = mod.confirm()
doc = (mod.__doc__ or "").strip().splitlines()
classes = [n for n, v in vars(mod).items() if isinstance(v, type) and v.__module__ == mod.__name__ and not n.startswith("_")]
print("CONFIRM-JSON " + json.dumps({"observable": bool(r["observable"]), "detail": str(r["detail"]),
                                    "summary": doc[0] if doc else "", "classes": classes}))
"""


def run_confirm(path: Path) -> dict:
    p = subprocess.run([str(PY), "-c", CONFIRM, str(path)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    for line in p.stdout.splitlines():
        if line.startswith("CONFIRM-JSON "):
            return json.loads(line[len("CONFIRM-JSON "):])
    return {"observable": None, "detail": f"confirm() failed (rc {p.returncode}): {p.stderr.strip()[-400:]}",
            "summary": "", "classes": []}


def audit(impl: str, profile: str, report_dir: Path, layers=()) -> tuple[int, float, Path]:
    if report_dir.exists():
        shutil.rmtree(report_dir)
    report_dir.parent.mkdir(parents=True, exist_ok=True)
    log = report_dir.parent / f"{report_dir.name}.log"
    t0 = time.monotonic()
    with open(log, "w") as fh:
        rc = subprocess.run([str(DROPNORM), "audit", "--impl", impl, "--profile", profile,
                             "--report-dir", str(report_dir), "--replay", "none", *[f"--layer={x}" for x in layers]],
                            cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT).returncode
    return rc, time.monotonic() - t0, log


def failing(report_dir: Path, statuses=BAD) -> dict:
    """clause id -> {status, level, reason, layers} for the clauses whose status is in statuses."""
    path = report_dir / "report.json"
    if not path.exists():
        return {}
    report = json.loads(path.read_text())
    out = {}
    for c in report.get("clauses", []):
        if c.get("status") in statuses:
            layers = {k: v.get("status") for k, v in (c.get("by_layer") or {}).items() if v.get("status") in statuses}
            out[c["id"]] = {"status": c["status"], "level": c.get("level"), "layers": layers,
                            "reason": (c.get("reason") or "")[:300]}
    return out


def failing_conditions(report_dir: Path, own: bool) -> set:
    """(clause, condition) of the report's failures; an error counts as (clause, "error"). own=True: the
    baseline's view, which also counts its known defects and recorded deviations (their conditions)."""
    path = report_dir / "report.json"
    if not path.exists():
        return set()
    out = set()
    for c in json.loads(path.read_text()).get("clauses", []):
        if c.get("status") in ("fail", "not-reached") and c.get("failure"):
            out.add((c["id"], c["failure"]["condition"]))
        elif c.get("status") in ("error", "not-reached"):
            out.add((c["id"], "error"))
        if own:
            out |= {(c["id"], d.get("condition")) for d in c.get("deviations", [])}
    return out


TEST_LINE = re.compile(r"^\[\s*\d+/\d+\]\s+(\S+)\s+(\S+)")


def test_outcomes(log: Path) -> dict:
    """test id (implementation name replaced by IMPL) -> outcome word of the audit's progress lines."""
    out = {}
    if not log.exists():
        return out
    for line in log.read_text(errors="replace").splitlines():
        m = TEST_LINE.match(line)
        if m:
            test = re.sub(r"\[(torch-module:[^-\]]+\.py|torch)", "[IMPL", m.group(2))
            out[test] = m.group(1)
    return out


def bad_tests(log: Path, ignore=("ok", "skip")) -> set:
    return {t for t, o in test_outcomes(log).items() if o not in ignore}


def baseline(profile: str, reuse: bool) -> set:
    d = OUT / f"_torch-{profile}"
    if not (reuse and (d / "report.json").exists()):
        rc, secs, _ = audit("torch", profile, d)
        print(f"torch baseline ({profile}): exit {rc}, {secs:.0f} s", flush=True)
    # torch's own departures: failures, known defects and recorded conventions (a probe that inherits
    # torch's convention, e.g. a dropped inf giving NaN, fails that clause outright, not as a deviation)
    return set(failing(d, BAD + ("deviation",)))


def git_head() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--round", default="3", help="the probes of benchmarks/blind_probes/round<N>/")
    ap.add_argument("--profile", default="quick", choices=("quick", "ci", "thorough"))
    ap.add_argument("--only", action="append", default=[], help="probe name (file stem); repeatable")
    ap.add_argument("--reuse-baseline", action="store_true", help="reuse /tmp/blind/_torch-<profile> if present")
    ap.add_argument("--no-append", action="store_true", help="print only, do not write the results file")
    ap.add_argument("--rejudge", action="store_true", help="no audits: judge the reports of the last run again")
    args = ap.parse_args()

    probes = HERE / f"round{args.round}"
    files = sorted(p for p in probes.glob("*.py") if not p.name.startswith("_"))
    if args.only:
        files = [p for p in files if p.stem in args.only]
        missing = set(args.only) - {p.stem for p in files}
        if missing:
            print(f"no such probe: {sorted(missing)}", file=sys.stderr)
            return 2
    torch_set = baseline(args.profile, args.reuse_baseline or args.rejudge)
    torch_conditions = failing_conditions(OUT / f"_torch-{args.profile}", own=True)
    print(f"torch's own failing clauses ({args.profile}): {sorted(torch_set)}", flush=True)
    commit = git_head()
    rows = []
    for path in files:
        name = path.stem
        correct = name.startswith("correct_")
        conf = run_confirm(path)
        suffix = "" if args.profile == "quick" else f"-{args.profile}"
        rdir = OUT / f"{name}{suffix}"
        layers = sorted({FAMILY.get(c, "batchnorm" if "BatchNorm" in c else None) for c in conf.get("classes") or []} - {None})
        if args.rejudge:
            log = rdir.parent / f"{rdir.name}.log"
            rc = None  # not kept by the last run; a new unrecorded failure is exit 1 anyway
            if (rdir / "report.json").exists():  # the row says which code the reports rest on
                commit = json.loads((rdir / "report.json").read_text())["provenance"]["dropnorm_commit"] or commit
            secs = json.loads((rdir / "report.json").read_text())["run"]["duration_s"] if (rdir / "report.json").exists() else 0.0
        else:
            rc, secs, log = audit(f"torch-module:{path}", args.profile, rdir, layers)
        fails = failing(rdir)
        new = sorted(set(fails) - torch_set)
        new_conditions = sorted(f"{c}/{k}" for c, k in failing_conditions(rdir, own=False) - torch_conditions)
        caught = bool(new_conditions) and rc != 0
        new_must = [k for k in new if fails[k].get("level") == "MUST"]
        # finer than clauses: tests that fail here but pass on torch (a defect can fail a test of a clause
        # torch already fails for another reason)
        new_tests = sorted(bad_tests(log) - bad_tests(OUT / f"_torch-{args.profile}.log", ignore=("ok",)))
        row = {"round": args.round, "commit": commit, "layers": layers, "profile": args.profile, "name": name, "correct": correct,
               "classes": conf.get("classes"), "defect": conf.get("summary"),
               "observable": conf["observable"], "detail": conf["detail"], "exit": rc,
               "seconds": round(secs, 1), "failing_clauses": sorted(fails), "new_failing_clauses": new,
               "new_failures": {k: fails[k] for k in new}, "new_failing_conditions": new_conditions, "new_must_failing": new_must, "new_failing_tests": new_tests, "torch_failing_clauses": sorted(torch_set),
               "caught": caught, "report": str(rdir / "report.json"), "log": str(log)}
        rows.append(row)
        verdict = ("FALSE ALARM" if caught else "ok (no false alarm)") if correct else ("caught" if caught else "ESCAPED")
        print(f"{name}: observable={conf['observable']} exit={rc} {secs:.0f}s new={new_conditions} -> {verdict}", flush=True)
        if not args.no_append:
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            with open(RESULTS, "a") as fh:
                fh.write(json.dumps(row) + "\n")
    defects = [r for r in rows if not r["correct"]]
    corrects = [r for r in rows if r["correct"]]
    esc = [r["name"] for r in defects if not r["caught"]]
    if defects:
        print(f"escapes ({args.profile}): {len(esc)}/{len(defects)} = {len(esc) / len(defects):.2f}: {esc}")
    if corrects:
        fa = [r["name"] for r in corrects if r["caught"]]
        print(f"false alarms: {len(fa)}/{len(corrects)}: {fa}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
