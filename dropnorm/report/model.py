"""From test records to clause statuses and the report dictionary (schema: reports/schema.json).

A test cites clauses; its outcome becomes, for each cited clause:
  pass          the test passed (or passed apart from recorded deviations of other clauses)
  fail          a check of this clause failed (ClauseViolation)
  deviation     a check failed that matches a recorded, accepted deviation of this clause
  not-provided  the implementation lacks the layer, keyword or capability (NotProvided)
  skip          skipped for another reason (for example no CUDA device)
  error         could not be tested: the implementation raised something other than a
                clause violation, the test timed out, or its process died
A test that failed on one clause says nothing about its other clauses: they get no
outcome from it. A clause's status is the worst of its tests' outcomes, in the order
of STATUSES; a clause with no outcome at all is a skip ("not reached").
"""
from __future__ import annotations

import json
import pathlib

from dropnorm.spec import clauses

SCHEMA_VERSION = "1.0"
STATUSES = ("fail", "error", "deviation", "pass", "not-provided", "skip")  # worst first
FAILING = ("fail", "error")


def read_records(path: pathlib.Path) -> tuple[list[dict], dict]:
    """The test records of a results file, the last one per test; and the run's events."""
    tests: dict[str, dict] = {}
    events: dict = {}
    if not path.exists():
        return [], events
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a kill: everything before it counts
            continue
        if entry.get("event") == "test":
            # per test: its first failure (setup, call or teardown), else its latest phase
            previous = tests.get(entry["nodeid"])
            if previous is None or previous["outcome"] != "failed":
                tests[entry["nodeid"]] = entry
        else:
            events[entry.get("event")] = entry
    return list(tests.values()), events


def test_outcomes(record: dict, collected: dict[str, list[str]]) -> dict[str, tuple[str, str]]:
    """clause -> (outcome, reason) for one test record."""
    cited = record.get("clauses") or collected.get(record["nodeid"], [])
    outcome = record["outcome"]
    if outcome == "failed":
        violations = record.get("violations")
        if violations:
            return {v["clause"]: ("fail", f"{v['clause']}/{v['condition']}: {v['message']}") for v in violations}
        return {c: ("error", record.get("error") or "the test failed without a clause violation") for c in cited}
    if outcome == "skipped":
        reason = record.get("skip_reason", "")
        if reason.startswith("known deviation"):
            return _passed(record, cited)
        status = "not-provided" if "not provided" in reason else "skip"
        return {c: (status, reason) for c in cited}
    return _passed(record, cited)


def _passed(record: dict, cited: list[str]) -> dict[str, tuple[str, str]]:
    out = {c: ("pass", "") for c in cited}
    for d in record.get("deviations", []):
        out[d["clause"]] = ("deviation", f"{d['clause']}/{d['condition']}: {d['reason']}")
    return out


def _worst(a: str | None, b: str) -> str:
    return b if a is None or STATUSES.index(b) < STATUSES.index(a) else a


def clause_entries(records: list[dict], collected: dict, selected: set[str] | None) -> list[dict]:
    """One entry per clause of the spec (restricted to `selected`), in spec order."""
    entries = {cid: {"id": cid, "title": c.title, "layer": c.layer, "level": c.level, "status": None,
                     "reason": "", "tests": [], "failure": None, "errors": [], "deviations": [],
                     "statistics": [], "tolerance": None, "trajectories": [], "output": []}
               for cid, c in clauses().items() if selected is None or cid in selected}
    for rec in sorted(records, key=lambda r: r["nodeid"]):
        for cid, (outcome, reason) in test_outcomes(rec, collected).items():
            e = entries.get(cid)
            if e is None:
                continue
            e["tests"].append({"nodeid": rec["nodeid"], "outcome": outcome, "duration": rec.get("duration", 0.0),
                               "examples": rec.get("examples", 0)})
            if _worst(e["status"], outcome) != e["status"]:
                e["status"], e["reason"] = outcome, reason
            if outcome == "fail" and e["failure"] is None:
                e["failure"] = _failure(rec, cid)
            if outcome == "error":
                e["errors"].append({"test": rec["nodeid"], "error": reason})
            if outcome == "deviation":
                e["deviations"] += [d for d in rec.get("deviations", []) if d["clause"] == cid]
            if rec.get("output"):
                e["output"].append({"test": rec["nodeid"], "text": rec["output"]})
        for m in rec.get("measurements", []):
            e = entries.get(m.get("clause"))
            if e is not None:
                _add_measurement(e, m)
    for e in entries.values():
        if e["status"] is None:
            stopped = sorted({v["clause"] for rec in records if e["id"] in (rec.get("clauses") or [])
                              for v in rec.get("violations", [])})
            e["status"] = "skip"
            e["reason"] = (f"not reached: its tests stopped at a failure of {', '.join(stopped)}" if stopped
                           else "not reached: no test of this clause ran to a conclusion")
    return list(entries.values())


def _failure(rec: dict, cid: str) -> dict:
    v = next(v for v in rec["violations"] if v["clause"] == cid)
    return {"test": rec["nodeid"], "condition": v["condition"], "message": v["message"],
            "observed": v.get("observed"), "expected": v.get("expected"),
            "counterexample": rec.get("counterexample"), "reproduction": v["reproduction"],
            "script": v.get("script"), "script_file": None}


def _add_measurement(e: dict, m: dict) -> None:
    kind = m.get("kind")
    if kind in ("binomial", "mean-ratio"):
        e["statistics"].append({k: m.get(k) for k in ("condition", "kind", "n", "k", "rate", "p0", "ci",
                                                       "pvalue", "alpha")})
    elif kind == "tolerance":
        t = e["tolerance"]
        if t is None:
            t = e["tolerance"] = {"checks": 0, "max_error_over_tolerance": 0.0, "max_error": 0.0,
                                  "tolerance": None, "condition": None, "ratios": []}
        t["checks"] += 1
        if len(t["ratios"]) < 2000:
            t["ratios"].append(m["max_error_over_tolerance"])
        if m["max_error_over_tolerance"] >= t["max_error_over_tolerance"]:
            t.update(max_error_over_tolerance=m["max_error_over_tolerance"], max_error=m["max_error"],
                     tolerance=m["tolerance"], condition=m["condition"])
    elif kind == "trajectory" and m.get("steps"):
        e["trajectories"].append(m["steps"])


def summary(entries: list[dict]) -> dict:
    counts = {s: sum(e["status"] == s for e in entries) for s in STATUSES}
    counts["total"] = len(entries)
    counts["should_failures"] = sum(e["status"] in FAILING and e["level"] == "SHOULD" for e in entries)
    return counts


def is_conformant(entries: list[dict], strict: bool = False) -> bool:
    """No MUST clause (and with strict, no SHOULD clause either) is fail or error."""
    return not any(e["status"] in FAILING and (strict or e["level"] == "MUST") for e in entries)


def nothing_tested(entries: list[dict]) -> bool:
    return bool(entries) and all(e["status"] in ("skip", "not-provided") for e in entries)


def exercised(records: list[dict]) -> tuple[list[str], list[str]]:
    """The dtypes and layouts the implementation was called with."""
    pairs = {tuple(p) for r in records for p in r.get("inputs", [])}
    return sorted({d for d, _ in pairs}), sorted({lay for _, lay in pairs})
