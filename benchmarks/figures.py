"""The README's benchmark figures, recomputed from benchmarks/results/ and printed as markdown.

    python benchmarks/figures.py [--results DIR] [--code latest|all|COMMIT-PREFIX]... [--since UTC-ISO-TIME]

Reads benchmarks/results/soak.jsonl (benchmarks/soak.py) and calibration-runs.jsonl
(benchmarks/calibration.py) and prints one markdown block that the README can include
verbatim: the calibration rejection rates against the level, with their counts; the soak
runs per implementation and their failures; and the false-alarm bound the soak gives.

Runs are grouped by the code they audited: two commits whose audited paths (dropnorm/,
dropnorm/reference/, spec/, tests/, conftest.py, pyproject.toml) have the same git trees are the
same code; runs recorded before the soak kept commits are "legacy". --code latest (the
default) reports the code version of the most recent run, `all` pools every run, and a
commit prefix takes every run on that commit, uncommitted working-tree states included
(benchmarks/soak.py --tree worktree records them as COMMIT+dirty:<hash>). --code may be given
more than once: the runs on each are pooled, and the scope line names the files in which the
listed commits' audited paths differ (git diff --stat), so that a reader sees what was pooled.

A soak failure is classified with the current spec/deviations/<impl>.toml: a failing
(clause, condition) now recorded there as a known defect of the implementation (e.g. the
torch transposed backward) is a real bug the soak found, not a false alarm; any other
failure is counted as a false alarm of the suite. The per-run false-alarm probability is
bounded by the one-sided 95% Clopper-Pearson upper limit for k false alarms in n runs
(1 - 0.05**(1/n) when k = 0, about 3/n).
"""
from __future__ import annotations

import argparse
import collections
import json
import pathlib
import re
import subprocess
import sys
import tomllib

from scipy import stats as st

ROOT = pathlib.Path(__file__).resolve().parent.parent
AUDITED_PATHS = ("dropnorm", "reference", "spec", "tests", "conftest.py", "pyproject.toml")
LEVELS = (0.001, 0.01, 0.05, 0.1)


def read_jsonl(path: pathlib.Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def code_of(commit: str | None) -> str:
    """An id of the audited code of `commit`: its audited paths' git objects ('legacy' when unknown)."""
    if not commit:
        return "legacy"
    base, plus, dirty = commit.partition("+dirty")
    if plus:  # an uncommitted working-tree state: only runs on that same state share its code
        return commit[:12] + "+dirty" + dirty
    try:
        ids = [subprocess.run(["git", "-C", str(ROOT), "rev-parse", f"{base}:{p}"], capture_output=True,
                              text=True).stdout.strip() for p in AUDITED_PATHS]
    except OSError:
        return base[:12]
    return "/".join(i[:7] for i in ids)


def commit_time(commit: str) -> int:
    out = subprocess.run(["git", "-C", str(ROOT), "show", "-s", "--format=%ct", commit.partition("+dirty")[0]],
                         capture_output=True, text=True).stdout.strip()
    return int(out) if out.isdigit() else 0


def known_defects(impl: str) -> set[tuple[str, str]]:
    path = ROOT / "spec" / "deviations" / f"{impl}.toml"
    if not path.exists():
        return set()
    data = tomllib.loads(path.read_text())
    return {(d["clause"], d.get("condition", "*")) for d in data.get("deviation", [])
            if d.get("kind", "known-defect") == "known-defect"}


def classify(run: dict) -> tuple[bool, list[str], list[str]]:
    """(false alarm?, real-bug failures, unexplained failures) of one soak run."""
    known = known_defects(run["impl"])
    real, other = [], []
    for clause, reason in (run.get("failing") or {}).items():
        # the reason may start with the layer kind ("BatchNorm3d: BN-FOLD-01/folded-bias: got ...")
        m = re.search(re.escape(clause) + r"/([\w-]+):", reason or "")
        cond = m.group(1) if m else "?"
        (real if (clause, cond) in known or (clause, "*") in known else other).append(f"{clause}/{cond}")
    if not run.get("complete", True) and not run.get("failing"):
        other.append("incomplete run")
    return bool(other), real, other


def cp_upper(k: int, n: int, conf: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper confidence limit for a binomial proportion."""
    return 1.0 if k >= n else float(st.beta.ppf(conf, k + 1, n - k))


def select(runs: list[dict], code: str) -> tuple[list[dict], str]:
    if code == "all":
        return runs, "all runs, every code version pooled"
    committed = [r for r in runs if r.get("commit")]
    if not committed:
        return [], "no run with a recorded commit"
    if code == "latest":  # the code of the most recent run (a working-tree state has no commit time)
        newest = max(committed, key=lambda r: (r.get("time") or "", commit_time(r["commit"])))["commit"]
    else:  # a commit prefix: every run on that commit, its working-tree states included
        chosen = [r for r in committed if r["commit"].startswith(code)]
        states = sorted({r["commit"][:12] + ("+dirty" + r["commit"].partition("+dirty")[2][:13]
                                             if "+dirty" in r["commit"] else "") for r in chosen})
        return chosen, f"runs on commit {code} ({len(states)} working-tree state{'s' * (len(states) != 1)}: " \
                       f"{', '.join(states)})"
    want = code_of(newest)
    chosen = [r for r in committed if code_of(r["commit"]) == want]
    commits = sorted({r["commit"][:12] for r in chosen})
    return chosen, f"the code audited at commit {newest[:12]} (runs on {', '.join(commits)}: same audited tree)"


def select_many(runs: list[dict], codes: list[str]) -> tuple[list[dict], str]:
    """`select` for several --code values: the union of their runs, and what differs between them."""
    if len(codes) == 1:
        return select(runs, codes[0])
    chosen, scopes, seen = [], [], set()
    for code in codes:
        rs, scope = select(runs, code)
        chosen += [r for r in rs if id(r) not in seen]
        seen |= {id(r) for r in rs}
        scopes.append(scope)
    commits = [c for c in codes if c not in ("latest", "all")]
    diff = ""
    if len(commits) >= 2:
        names = subprocess.run(["git", "-C", str(ROOT), "diff", "--stat=200", commits[0], commits[-1], "--",
                                *AUDITED_PATHS], capture_output=True, text=True).stdout.strip().splitlines()
        diff = "; pooled code versions differ in " + (", ".join(n.split("|")[0].strip() + " (" +
                                                               n.split("|")[1].strip() + ")" for n in names[:-1])
                                                     or "nothing audited")
    return chosen, " + ".join(scopes) + diff


def unjudged_cell(runs: list[dict]) -> str:
    """Runs whose report left a clause not-reached on a correct implementation (soak.py not_reached): no false
    alarm, but a verdict short of conformant. Runs written before soak.py recorded it are counted apart."""
    recorded = [r for r in runs if "not_reached" in r]
    if not recorded:
        return "not recorded"
    k = sum(bool(r["not_reached"]) for r in recorded)
    older = len(runs) - len(recorded)
    return f"{k} of {len(recorded)}" + (f" ({older} runs predate the record)" if older else "")


def soak_section(runs: list[dict], scope: str) -> list[str]:
    out = [f"**Soak** ({scope}; `python benchmarks/soak.py`, whole `dropnorm audit` runs with fresh seeds, "
           "benchmarks/results/soak.jsonl):", "",
           "| implementation | profile | runs | runs with a failure | real bugs found (recorded deviations) | "
           "false alarms | per-run false-alarm probability, 95% upper bound | runs with a clause left unjudged |",
           "|---|---|---|---|---|---|---|---|"]
    by = collections.defaultdict(list)
    for r in runs:
        by[(r["impl"], r.get("profile"))].append(r)
    total_n = total_k = 0
    for (impl, profile), rs in sorted(by.items()):
        verdicts = [classify(r) for r in rs]
        failed = sum(bool(r.get("failed") or r.get("failing")) for r in rs)
        real = collections.Counter(f for _, rb, _ in verdicts for f in rb)
        k = sum(fa for fa, _, _ in verdicts)
        total_n, total_k = total_n + len(rs), total_k + k
        real_text = ", ".join(f"{name} ({c} run{'s' if c > 1 else ''})" for name, c in real.items()) or "none"
        out.append(f"| {impl} | {profile} | {len(rs)} | {failed} | {real_text} | {k} | "
                   f"{cp_upper(k, len(rs)):.3f} | {unjudged_cell(rs)} |")
    if by:
        out.append(f"| all | | {total_n} | | | {total_k} | {cp_upper(total_k, total_n):.3f} | {unjudged_cell(runs)} |")
    unexplained = [(r["impl"], r["seed"], o) for r in runs for fa, _, o in [classify(r)] if fa]
    digested = [r for r in runs if r.get("examples_digest")]
    out.append("")
    if digested:  # soak.py examples_digest: runs that drew the same examples are one observation, not several
        distinct = {(r["impl"], r.get("profile"), r["examples_digest"]) for r in digested}
        out.append(f"Fresh examples: {len(distinct)} distinct example sets among the {len(digested)} runs that "
                   f"record one (a digest of every clause's statistics); {len(runs) - len(digested)} runs "
                   "predate the digest.")
        out.append("")
    gaps = collections.Counter(part for r in runs for reason in (r.get("not_reached") or {}).values()
                               for part in reason.split("; "))
    if gaps:
        out.append("Clauses left unjudged (not-reached: a condition that applies never ran on that kind): "
                   + "; ".join(f"{g} ({c} run{'s' if c > 1 else ''})" for g, c in gaps.most_common()) + ".")
        out.append("")
    out.append("False alarms (failures not recorded as a known defect): "
               + ("; ".join(f"{i} seed {s}: {', '.join(o)}" for i, s, o in unexplained) if unexplained else "none")
               + ".")
    return out


def calibration_section(runs: list[dict], scope: str) -> list[str]:
    out = [f"**Calibration** ({scope}; `python benchmarks/calibration.py`, every p-value of the exact tests of "
           "DO-TRAIN-02..05, DO-MOMENT-01, D2-TRAIN-03/04, fresh seeds, benchmarks/results/calibration-runs.jsonl):", ""]
    by = collections.defaultdict(list)
    for r in runs:
        by[r["impl"]].append(r)
    if not by:
        return out + ["no calibration runs recorded"]
    out += ["| implementation | runs | distinct p-values (per run) | " + " | ".join(f"p <= {a}" for a in LEVELS) + " |",
            "|---|---|---|" + "---|" * len(LEVELS)]
    notes = []
    from calibration import distinct_pvalues  # benchmarks/calibration.py: family p-values, repeats counted once
    for impl, rs in sorted(by.items()):
        ps = distinct_pvalues(rs)[impl]
        per_run = sorted({len(r["pvalues"]) for r in rs})
        cells = []
        for a in LEVELS:
            k = sum(p <= a for p in ps)
            ci = st.binomtest(k, len(ps), a).proportion_ci(0.95, method="exact")
            above = st.binomtest(k, len(ps), a, alternative="greater").pvalue
            cells.append(f"{k} = {k / len(ps):.4f} [{ci.low:.4f}, {ci.high:.4f}]")
            if above < 0.001 / len(LEVELS):
                notes.append(f"{impl} at level {a}: rate significantly above the level (p = {above:.2g})")
        per = f"{per_run[0]}" if len(per_run) == 1 else f"{per_run[0]}..{per_run[-1]}"
        out.append(f"| {impl} | {len(rs)} | {len(ps)} ({per}) | " + " | ".join(cells) + " |")
    out += ["", "p-values: distinct ones (an example every run draws alike counts once), screened families "
            "(every-lag, every-shift, period, size-sweep) as their Bonferroni p-value min(1, T p). "
            "Each cell: rejections at that level, their rate and its exact 95% interval; a calibrated test has "
            "rate <= level within the interval. "
            + ("; ".join(notes) if notes else "No rate is significantly above its level (one-sided binomial test, "
                                               "Bonferroni over the levels, 0.001).")]
    conds = collections.Counter()
    for r in runs:
        conds.update(f"{p['clause']}/{p['condition']}" for p in r["pvalues"])
    out += ["", "p-values per condition, all runs: " + ", ".join(f"{c} {n}" for c, n in sorted(conds.items())) + "."]
    return out


def speed_section(runs: list[dict]) -> list[str]:
    """The latest benchmarks/breakdown.py invocation: each audit's wall time and phases, per checkout."""
    if not runs:
        return []
    batch = max(r.get("batch", "") for r in runs)
    runs = [r for r in runs if r.get("batch", "") == batch]
    out = [f"**Speed** (`python benchmarks/breakdown.py`, {batch[:16]} UTC, benchmarks/results/breakdown.jsonl; "
           "whole `dropnorm audit` runs of torch, medians, seconds; phases from report.json run.timings, where the "
           "checkout records them):", "",
           "| audit | commit | runs | wall (min-max) | set-up | pytest start-up | tests | pytest shutdown | "
           "report | in torch's calls | tests summed | host load |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    by = collections.defaultdict(list)
    for r in runs:
        by[(r["audit"], r["commit"])].append(r)

    def med(values):
        values = sorted(v for v in values if v is not None)
        return f"{values[len(values) // 2]:.1f}" if values else "-"
    for (audit, commit), rs in sorted(by.items(), key=lambda kv: (["clause", "quick", "ci"].index(kv[0][0])
                                                                   if kv[0][0] in ("clause", "quick", "ci") else 9, kv[0][1])):
        walls = [r["wall_s"] for r in rs]
        phase = lambda k: med((r.get("timings") or {}).get(k) for r in rs)  # noqa: E731
        out.append(f"| {audit} | {commit[:9]} | {len(rs)} | {med(walls)} ({min(walls):.1f}-{max(walls):.1f}) | "
                   f"{phase('setup_s')} | {phase('pytest_startup_s')} | {phase('tests_s')} | {phase('pytest_shutdown_s')} | "
                   f"{phase('report_s')} | {phase('implementation_s')} | {phase('tests_summed_s')} | "
                   f"{med(r['host_load'] for r in rs)} |")
    cpus = sorted({r.get("cpus") for r in runs})
    out += ["", f"On {', '.join(map(str, cpus))} CPUs; exit statuses: "
            + ", ".join(f"{a} {c[:9]}: {sorted({r['exit_status'] for r in rs})}" for (a, c), rs in sorted(by.items())) + "."]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--code", action="append", help="latest (default), all, or a commit prefix; repeatable (pooled)")
    ap.add_argument("--calibration-code", action="append",
                    help="the code versions of the calibration section (default: those of --code)")
    ap.add_argument("--since", help="only runs started at or after this UTC time (ISO, e.g. 2026-12-01T09:32)")
    args = ap.parse_args()
    results = pathlib.Path(args.results)
    soak = read_jsonl(results / "soak.jsonl")
    calib = read_jsonl(results / "calibration-runs.jsonl")
    if args.since:  # ISO times of one zone compare as strings
        soak = [r for r in soak if (r.get("time") or "") >= args.since]
        calib = [r for r in calib if (r.get("time") or "") >= args.since]
    lines = ["<!-- generated by python benchmarks/figures.py; do not edit by hand -->"]
    codes = args.code or ["latest"]
    lines += calibration_section(*select_many(calib, args.calibration_code or codes)) + [""]
    lines += soak_section(*select_many(soak, codes))
    if "all" not in codes:
        legacy = [r for r in soak if not r.get("commit")]
        other = len(soak) - len(legacy) - len(select_many(soak, codes)[0])
        lines += ["", f"Not counted above: {len(legacy)} legacy soak runs without a recorded commit"
                      f" ({sum(classify(r)[0] for r in legacy)} false alarms) and {other} runs on other code "
                      "versions; `--code all` pools them."]
    speed = speed_section(read_jsonl(results / "breakdown.jsonl"))
    if speed:
        lines += [""] + speed
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
