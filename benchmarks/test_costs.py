"""Measure what each property test costs on torch, for the audit's per-test time limits.

    python benchmarks/test_costs.py REPORT_DIR [REPORT_DIR ...]

reads report.json files of torch audits (ci profile) and writes dropnorm/run/test_costs.json:
test function -> the longest duration seen (seconds) and the runs it rests on. `dropnorm audit`
gives each test COST_FACTOR times that (scaled by the profile's examples), at least MIN_LIMIT_S
and at most the profile's flat limit (dropnorm/run/audit.py).
"""
from __future__ import annotations

import json
import pathlib
import sys

OUT = pathlib.Path(__file__).resolve().parent.parent / "dropnorm" / "test_costs.json"


def function_of(nodeid: str) -> str:
    return nodeid.split("::")[-1].split("[")[0]


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    costs: dict[str, float] = {}
    runs = []
    for d in argv:
        report = json.loads((pathlib.Path(d) / "report.json").read_text())
        if report["implementation"]["name"] != "torch" or report["environment"]["profile"] != "ci":
            print(f"{d}: not a torch ci-profile audit; skipped", file=sys.stderr)
            continue
        runs.append({"dir": str(d), "finished": report["run"]["finished"],
                     "commit": report["provenance"]["dropnorm_commit"]})
        for e in report["clauses"]:
            for t in e["tests"]:
                f = function_of(t["nodeid"])
                costs[f] = max(costs.get(f, 0.0), float(t["duration"]))
    OUT.write_text(json.dumps({"profile": "ci", "runs": runs, "seconds": dict(sorted(costs.items()))}, indent=1)
                   + "\n")
    print(f"wrote {OUT}: {len(costs)} tests from {len(runs)} run(s); longest {max(costs.values()):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
