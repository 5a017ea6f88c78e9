"""Leave-one-out measurement of dropnorm/report/diagnosis.py over the defect catalogue (issue 25).

For every defect of dropnorm/zoo/defects (all of them: one pytest process per clause family audits the
whole catalogue, each defect restricted to the tests citing its own clause, dropnorm.zoo.selection), the
quick profile (8 examples per test, derandomized, no shrinking) builds that defect's clause entries from
the structured results exactly as `dropnorm audit` does (model.clause_entries), then diagnoses them with
the defect's own catalogue fingerprint removed (diagnosis.diagnose(entries, exclude={name})).

"Correct" (the rule): a cause is correct when its mechanism tag equals the defect's mechanism tag
(diagnosis.MECHANISMS: hand-tagged families such as "running-var-bessel" or "dropout-unscaled"; a defect
in no family is its own mechanism, which only a signature could name). With its own fingerprint removed a
defect can be diagnosed only by a quantitative/pattern signature or by a sibling defect of the same
mechanism. top-1: the first cause is correct; top-3: one of the first three is. A defect the quick profile
does not catch (no failing clause) is counted apart, not as a miss.

    .venv/bin/python benchmarks/diagnosis/run.py [--reuse DIR] [--jobs N]

writes benchmarks/results/diagnosis.json (commit, profile, counts, per-defect rows).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from dropnorm.report import diagnosis, model  # noqa: E402
from dropnorm.zoo import meta  # noqa: E402

PROFILE = "quick"
OUT = ROOT / "benchmarks" / "results" / "diagnosis.json"


def audit(workdir: pathlib.Path, jobs: int) -> float:
    """Run the catalogue's grouped quick audits into workdir/<group>.results.jsonl; seconds taken."""
    t0 = time.time()
    meta.run_groups(meta.defects(), workdir, jobs=jobs, profile=PROFILE, timeout=3000)
    return time.time() - t0


def entries_of(workdir: pathlib.Path) -> dict[str, list[dict]]:
    """--impl spec -> its clause entries (its own clause only), from the grouped results files."""
    by_impl: dict[str, list[dict]] = {}
    for path in sorted(workdir.glob("*.results.jsonl")):
        records, _ = model.read_records(path)
        for rec in records:
            if rec.get("impl"):
                by_impl.setdefault(rec["impl"], []).append(rec)
    out = {}
    for d in meta.defects():
        recs = by_impl.get(d.spec, [])
        kinds = sorted({k for r in recs for k in r.get("kinds") or ()})
        out[d.spec] = model.clause_entries(recs, {}, set(d.clauses), kinds or None)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reuse", help="a directory holding the results of an earlier run (skips the audits)")
    ap.add_argument("--workdir", help="where to write the audits' results (default: a temporary directory)")
    ap.add_argument("--jobs", type=int, default=1, help="clause families audited at once (default 1: a shared machine)")
    ap.add_argument("--audit-s", type=float, help="with --reuse: how long that run's audits took (recorded as audit_s)")
    args = ap.parse_args(argv)
    if args.reuse:
        workdir, audit_s = pathlib.Path(args.reuse), args.audit_s
    else:
        workdir = pathlib.Path(args.workdir or tempfile.mkdtemp(prefix="dropnorm-diagnosis-"))
        workdir.mkdir(parents=True, exist_ok=True)
        audit_s = audit(workdir, args.jobs)
        print(f"audits: {audit_s:.0f} s, results in {workdir}", file=sys.stderr)
    t0 = time.time()
    entries = entries_of(workdir)
    rows = []
    for d in meta.defects():
        mech = diagnosis.mechanism_of(d.name)
        causes = [c for c in diagnosis.diagnose(entries[d.spec], exclude={d.name}) if c["cause"] != "unexplained"]
        failing = sorted({k for e in entries[d.spec] for k in diagnosis.failure_keys(e)})
        ranks = [i for i, c in enumerate(causes) if c.get("mechanism") == mech]
        caught = any(e["status"] in ("fail", "error") for e in entries[d.spec])
        rows.append({"defect": d.name, "clause": d.meta["clause"], "mechanism": mech, "caught": caught,
                     "failing": failing, "diagnosable": diagnosis.diagnosable(d.name),
                     "rank": ranks[0] + 1 if ranks else None,
                     "top": [{k: c.get(k) for k in ("cause", "mechanism", "confidence", "source")} for c in causes[:3]]})
    caught = [r for r in rows if r["caught"]]
    # the same leave-one-out with fewer kinds of knowledge: catalogue + value signatures, catalogue alone
    ablation = {}
    for mode in ("quantitative", "none"):
        hits1 = hits3 = 0
        for d in meta.defects():
            if not any(e["status"] in ("fail", "error") for e in entries[d.spec]):
                continue
            causes = [c for c in diagnosis.diagnose(entries[d.spec], exclude={d.name}, signatures=mode)
                      if c["cause"] != "unexplained"]
            ranks = [i for i, c in enumerate(causes) if c.get("mechanism") == diagnosis.mechanism_of(d.name)]
            hits1 += bool(ranks) and ranks[0] == 0
            hits3 += bool(ranks) and ranks[0] < 3
        ablation[mode] = {"top1": hits1, "top3": hits3}
    top1 = sum(r["rank"] == 1 for r in caught)
    top3 = sum(r["rank"] is not None and r["rank"] <= 3 for r in caught)
    able = [r for r in caught if r["diagnosable"]]
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout.strip())
    result = {
        "commit": commit, "working_tree_modified": dirty, "profile": PROFILE,
        "method": "leave-one-out: each defect audited (quick profile) on its own clause, diagnosed without its own "
                  "catalogue fingerprint; correct = the cause's mechanism tag equals the defect's "
                  "(diagnosis.MECHANISMS; a defect in no family is its own mechanism)",
        "audit_s": round(audit_s, 1) if audit_s is not None else None,
        "diagnosis_s": round(time.time() - t0, 2),
        "defects": len(rows), "caught": len(caught),
        "top1": top1, "top3": top3,
        "diagnosable_in_principle": len(able),
        "top1_of_diagnosable": sum(r["rank"] == 1 for r in able),
        "top3_of_diagnosable": sum(r["rank"] is not None and r["rank"] <= 3 for r in able),
        "signatures": {"all": {"top1": top1, "top3": top3}, **ablation},
        "top_source": {src: sum(r["rank"] == 1 and r["top"][0]["source"] == src for r in caught)
                       for src in ("signature", "catalogue")},
        "not_caught": [r["defect"] for r in rows if not r["caught"]],
        "rows": rows,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"{len(caught)} of {len(rows)} defects caught (quick profile); top-1 {top1}, top-3 {top3} "
          f"(of the {len(able)} whose mechanism a sibling or a signature can name: top-1 "
          f"{result['top1_of_diagnosable']}, top-3 {result['top3_of_diagnosable']}); value signatures + catalogue only: "
          f"{ablation['quantitative']}; catalogue only: {ablation['none']}; written to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
