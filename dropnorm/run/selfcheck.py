"""`dropnorm selfcheck`: the suite's power, measured on its own defect catalogue.

Audits every defect (dropnorm/zoo/defects/) on the clause it names, every correct
variant (dropnorm/zoo/variants/) on all clauses of its layers, and pairs of defects
combined in one implementation (dropnorm/zoo/pairs.py) on both their clauses, with
dropnorm.zoo.meta, and prints the kill rate, the clause and conditions that caught each
defect and the time the failing tests took, every survivor or false alarm, and for each
pair whether both clauses were named. Exit 1 on a survivor (a defect no test rejects on
its clause), a false alarm (a correct variant rejected) or a pair with a clause unnamed.
Then the model catalogue (dropnorm/zoo/models/, dropnorm/run/model_selfcheck.py): each pitfall model on its own
MD clause, each correct model passing.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from dropnorm.zoo import meta, pairs


def selfcheck(profile: str = meta.PROFILE, jobs: int | None = None, seed: int | None = None,
              out=sys.stdout, n_pairs: int = 24, models: bool = False) -> int:
    entries = meta.catalogue()
    extra = [f"--hypothesis-seed={seed}"] if seed is not None else []
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        pair_entries = pairs.entries(pairs.pairs(n_pairs), Path(d))
        audits = meta.run_groups(entries + pair_entries, Path(d), jobs=jobs, extra=extra, profile=profile,
                                 timeout=3600)
        elapsed = time.time() - t0
        # each defect's reproduction, run standalone: it must exit 1 (the failure reproduces)
        repro = {}
        for e in entries:
            script = audits[e.spec].scripts.get(next(iter(e.clauses))) if e.kind == "defect" else None
            if script:
                repro[e.spec] = meta.run_script(script, Path(d), e.name).returncode
    defects = [e for e in entries if e.kind == "defect"]
    variants = [e for e in entries if e.kind == "variant"]
    survivors, misattributed, alarms, unreproduced = [], [], [], []
    print(f"{'defect':32} {'named clause':14} {'caught on (conditions)':48} {'seconds':>7} repro", file=out)
    for e in defects:
        (clause,) = e.clauses
        a = audits[e.spec]
        caught = ", ".join(f"{c} ({'/'.join(conds)})" for c, conds in sorted(a.violated.items())) or \
            ("error: " + a.errors[0][:40] if a.errors else "-")
        code = repro.get(e.spec)
        print(f"{e.name:32} {clause:14} {caught:48} {a.fail_seconds:7.2f} "
              f"{'-' if code is None else 'exit ' + str(code)}", file=out)
        if a.failed and code != 1:
            unreproduced.append(e.name)
        if not a.failed:
            survivors.append(e.name)
        elif clause not in a.violated:
            misattributed.append(e.name)
    for e in variants:
        a = audits[e.spec]
        verdict = "passes" if not a.failed else f"FALSE ALARM {sorted(a.violated)} {a.errors[:1]}"
        print(f"variant {e.name:24} {verdict}", file=out)
        if a.failed:
            alarms.append(e.name)
    unnamed = []
    print(f"\n{'defect pair':64} both clauses named?", file=out)
    for e in pair_entries:
        a = audits[e.spec]
        missing = sorted(set(e.clauses) - set(a.violated))
        print(f"{e.name:64} " + ("yes: " + ", ".join(sorted(e.clauses)) if not missing else
                                 f"NO: {', '.join(missing)} unnamed (named: {', '.join(sorted(a.violated)) or '-'})"),
              file=out)
        if missing:
            unnamed.append(e.name)
    killed = len(defects) - len(survivors)
    print(f"\nkill rate: {killed}/{len(defects)} defects rejected ({100 * killed / len(defects):.1f}%), "
          f"{len(defects) - len(survivors) - len(misattributed)} on their named clause; "
          f"{len(variants) - len(alarms)}/{len(variants)} correct variants pass; "
          f"{len(pair_entries) - len(unnamed)}/{len(pair_entries)} defect pairs name both clauses; "
          f"{len(repro) - len(unreproduced)}/{len(defects)} reproductions exit 1; profile {profile}"
          f"{', seed ' + str(seed) if seed is not None else ''}; {elapsed:.0f} s", file=out)
    for name, items in (("survivors", survivors), ("rejected on another clause", misattributed),
                        ("false alarms", alarms), ("pairs with a clause unnamed", unnamed),
                        ("reproductions that do not exit 1", unreproduced)):
        if items:
            print(f"{name}: {', '.join(items)}", file=out)
    failed_models = 0
    if models:   # issue 27: the model catalogue (MD-* clauses); `dropnorm selfcheck` passes models=True
        from dropnorm.run.model_selfcheck import model_selfcheck
        failed_models = model_selfcheck(out)
    return 1 if survivors or misattributed or alarms or unnamed or unreproduced or failed_models else 0
