"""`dropnorm selfcheck`: the suite's power, measured on its own defect catalogue.

Audits every defect (dropnorm/zoo/defects/) on the clause it names and every correct
variant (dropnorm/zoo/variants/) on all clauses of its layers, with dropnorm.zoo.meta,
and prints the kill rate, the clause that caught each defect and the time the failing
tests took, and every survivor or false alarm. Exit 1 on a survivor (a defect no test
rejects on its clause) or a false alarm (a correct variant rejected).
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from dropnorm.zoo import meta


def selfcheck(profile: str = meta.PROFILE, jobs: int | None = None, seed: int | None = None,
              out=sys.stdout) -> int:
    entries = meta.catalogue()
    extra = [f"--hypothesis-seed={seed}"] if seed is not None else []
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        audits = meta.run_groups(entries, Path(d), jobs=jobs, extra=extra, profile=profile, timeout=3600)
    elapsed = time.time() - t0
    defects = [e for e in entries if e.kind == "defect"]
    variants = [e for e in entries if e.kind == "variant"]
    survivors, misattributed, alarms = [], [], []
    print(f"{'defect':32} {'named clause':14} {'caught on':28} {'seconds':>7}", file=out)
    for e in defects:
        (clause,) = e.clauses
        a = audits[e.spec]
        caught = ", ".join(sorted(a.violated)) or ("error: " + a.errors[0][:40] if a.errors else "-")
        print(f"{e.name:32} {clause:14} {caught:28} {a.fail_seconds:7.2f}", file=out)
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
    killed = len(defects) - len(survivors)
    print(f"\nkill rate: {killed}/{len(defects)} defects rejected ({100 * killed / len(defects):.1f}%), "
          f"{len(defects) - len(survivors) - len(misattributed)} on their named clause; "
          f"{len(variants) - len(alarms)}/{len(variants)} correct variants pass; profile {profile}"
          f"{', seed ' + str(seed) if seed is not None else ''}; {elapsed:.0f} s", file=out)
    for name, items in (("survivors", survivors), ("rejected on another clause", misattributed),
                        ("false alarms", alarms)):
        if items:
            print(f"{name}: {', '.join(items)}", file=out)
    return 1 if survivors or misattributed or alarms else 0
