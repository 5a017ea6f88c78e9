"""From test records to clause statuses and the report dictionary (schema: dropnorm/report/schema.json).

A clause applies to layer kinds (dropout: Dropout; dropout2d: Dropout2d; batchnorm:
BatchNorm1d/2d/3d) and is judged per kind, then as a whole. Per kind, the status is:
  fail          a check of the clause failed on that kind (ClauseViolation)
  error         could not be tested: the implementation raised something other than a
                clause violation, the test timed out, or its process died
  not-reached   the kind is provided, but the clause's checks did not all run on it: no
                test of the clause exercised it, or a test stopped before judging it
  known-defect  a check failed inside a recorded deviation of kind known-defect (a bug)
  deviation     a check failed inside a recorded deviation of kind convention
  pass          the clause's tests ran on that kind and every check held
  not-provided  the implementation lacks the kind (or the keyword or capability the test needs)
  skip          skipped for another reason (for example no CUDA device)
A test counts for a kind only where it called that kind in an example that ran to its end
(record["kinds"], from dropnorm.suite.traced). The clause's status is the worst over its kinds,
in the order of STATUSES; it is not-provided only when every kind is.

Per condition (issue 22): every executed check is recorded with the layer kind it looked at
(record["conditions_run"], dropnorm.suite.checks). Each kind lists the conditions of the clause that apply
to it but never ran there (conditions_not_run). With ENFORCE_CONDITIONS (off for now, see there;
clause_entries(enforce_conditions=True) applies it), a kind whose status would be pass reads not-reached
when a condition of the clause that applies to that kind (spec/clauses.toml [clause.applies];
every kind of the clause's layer by default) never ran there in any test of the clause, e.g.
"D2-DTYPE-01/no-alias never ran on Dropout1d"; the kind lists those conditions (conditions_not_run,
also on a kind that fails). Not a gap of the suite, so no rule: a kind on which a test of the
clause filtered out examples as not provided (record["not_provided_kinds"]: the implementation
cannot express what the example needed, and which condition it would have reached is unknown),
a test of the clause skipped as a whole (the skip is reported with the test), and records that
carry no conditions_run (written before it existed, or synthetic). It holds for --clause/--layer
runs too: a selection runs every test that cites a selected clause.

The implementation is conformant when the run completed, something was tested, and no MUST
clause (with strict, no clause) is fail, error, not-reached or known-defect: a recorded bug
is not conformance. Exit 3 of `dropnorm audit` tells "only known defects" apart for CI.
A run restricted to some clauses (--clause, --layer) is never called conformant: it says whether
the selected clauses hold.

Each conformance class (spec/clauses.toml [[class]]) is judged by the same rules over its own
clauses (class_verdicts). Each failing clause carries a severity (dropnorm.spec.SEVERITIES), read
from what its checks observed: the worst severity among the failures behind its status; an error
(an exception, a hang, a crash) is "exception"; not-reached has none (nothing was observed).
"""
from __future__ import annotations

import math
import pathlib

from dropnorm.results_dir import ResultsFiles
from dropnorm.spec.kinds import KINDS, LAYER_KINDS
from dropnorm.spec import SEVERITIES, classes, clauses

SCHEMA_VERSION = "1.1"  # 1.1: classes, basis and class per clause, severity per failure
STATUSES = ("fail", "error", "not-reached", "known-defect", "deviation", "pass", "not-provided", "skip")  # worst first
FAILING = ("fail", "error", "not-reached", "known-defect")   # keep an implementation from conformant
UNRECORDED = ("fail", "error", "not-reached")                 # ... and are not a recorded known defect
ALL_KINDS = "*"


def finite_json(value):
    """`value` with every non-finite float written as the string NaN, Infinity or -Infinity
    (the schema's "real"), so that report.json is valid JSON whatever the implementation returned."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


_REALS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def with_reals(report: dict) -> dict:
    """The report with the schema's NaN/Infinity strings turned back into floats in its numeric
    sections (tolerance, statistics, trajectories), for rendering and figures."""
    def real(v):
        if isinstance(v, str) and v in _REALS:
            return _REALS[v]
        if isinstance(v, list):
            return [real(x) for x in v]
        if isinstance(v, dict):
            return {k: real(x) for k, x in v.items()}
        return v
    out = dict(report)
    out["clauses"] = [dict(e, tolerance=real(e["tolerance"]), statistics=real(e["statistics"]),
                           trajectories=real(e["trajectories"])) for e in report["clauses"]]
    return out


def read_records(path: pathlib.Path, timeouts: dict[str, float] | None = None) -> tuple[list[dict], dict]:
    """The test records of a results file, one per test; and the run's events.

    timeouts: nodeid -> the limit in seconds, for the tests whose worker the audit's watchdog stopped.
    Warnings raised by a test are attached to its record (as output).
    """
    tests: dict[str, dict] = {}
    events: dict = {}
    warned: dict[str, list[str]] = {}
    for entry in ResultsFiles(path).events():  # a line cut short by a kill: everything before it counts
        if entry.get("event") == "test":
            # per test: its first failure (setup, call or teardown), else its latest phase
            previous = tests.get(entry["nodeid"])
            if previous is None or previous["outcome"] != "failed":
                tests[entry["nodeid"]] = entry
        elif entry.get("event") == "warning":
            warned.setdefault(entry["nodeid"], []).append(f"{entry['message']} ({entry['where']})")
        else:
            events[entry.get("event")] = entry
    for nodeid, limit in (timeouts or {}).items():
        rec = tests.setdefault(nodeid, {"event": "test", "nodeid": nodeid, "when": "call", "duration": limit})
        rec.update(outcome="failed", violations=None,
                   error=f"timed out: still running after {limit:g} s, so the audit stopped its worker process")
    for nodeid, messages in warned.items():
        if nodeid in tests:
            rec = tests[nodeid]
            rec["output"] = ((rec.get("output") or "") + "\n".join(["warnings:"] + messages))[-4000:]
    return list(tests.values()), events


def test_outcomes(record: dict, collected: dict[str, list[str]]) -> dict[str, list[tuple[str, str, str]]]:
    """clause -> [(layer kind or "*", outcome, reason)] for one test record."""
    cited = record.get("clauses") or collected.get(record["nodeid"], [])
    kinds = set(record.get("kinds") or ())
    outcome = record["outcome"]
    out: dict[str, list] = {c: [] for c in cited}

    def ran(c, status, reason):  # the kinds of clause c this test exercised
        applicable = set(LAYER_KINDS[clauses()[c].layer]) if c in clauses() else set()
        for kind in sorted(applicable & kinds):
            out[c].append((kind, status, reason))

    if outcome == "failed":
        violations = record.get("violations")
        if not violations:
            err = record.get("error") or "the test failed without a clause violation"
            return {c: [(ALL_KINDS, "error", err)] for c in cited}
        failed = set()
        for v in violations:
            failed.add(v["clause"])
            out.setdefault(v["clause"], []).append((v.get("layer") or ALL_KINDS, "fail",
                                                    f"{v['clause']}/{v['condition']}: {v['message']}"))
        stopped = ", ".join(sorted(failed))
        for c in cited:
            if c in failed:
                continue
            if record.get("unjudged"):
                out[c].append((ALL_KINDS, "not-reached", f"its test stopped after a failure of {stopped}: "
                                                          f"{record['unjudged']}"))
            else:
                ran(c, "pass", "")
        _add_deviations(out, record)
        return out
    if outcome == "skipped":
        reason = record.get("skip_reason", "")
        if not reason.startswith(("known deviation", "known defect")):
            status = "not-provided" if "not provided" in reason else "skip"
            return {c: [(ALL_KINDS, status, reason)] for c in cited}
    for c in cited:
        ran(c, "pass", "")
    _add_deviations(out, record)
    return out


def _add_deviations(out: dict, record: dict) -> None:
    for d in record.get("deviations", []):
        status = "known-defect" if d.get("kind") == "known-defect" else "deviation"
        out.setdefault(d["clause"], []).append((d.get("layer") or ALL_KINDS, status,
                                                f"{d['clause']}/{d['condition']} ({d.get('kind', 'convention')}): "
                                                f"{d['reason']}"))


def _worst(a: str | None, b: str) -> str:
    return b if a is None or STATUSES.index(b) < STATUSES.index(a) else a


def clause_entries(records: list[dict], collected: dict, selected: set[str] | None,
                   provided: list[str] | None = None, enforce_conditions: bool | None = None) -> list[dict]:
    """One entry per clause of the spec (restricted to `selected`), in spec order.
    provided: the layer kinds the implementation has (None: all of them).
    enforce_conditions: whether a pass with conditions_not_run becomes not-reached (None:
    ENFORCE_CONDITIONS); the conditions are listed per kind either way."""
    enforce = ENFORCE_CONDITIONS if enforce_conditions is None else enforce_conditions
    provided_kinds = set(KINDS if provided is None else provided)
    entries = {cid: {"id": cid, "title": c.title, "layer": c.layer, "level": c.level, "basis": c.basis,
                     "class": c.conformance_class, "status": None, "severity": None,
                     "reason": "", "by_layer": {}, "tests": [], "failure": None, "errors": [], "deviations": [],
                     "statistics": [], "tolerance": None, "trajectories": [], "output": []}
               for cid, c in clauses().items() if selected is None or cid in selected}
    per_kind: dict[str, dict[str, list]] = {cid: {} for cid in entries}
    observed: dict[str, set] = {cid: set() for cid in entries}  # (status, severity) of what failed
    for rec in sorted(records, key=lambda r: r["nodeid"]):
        for status, sev in _severities(rec):
            if sev[0] in observed:
                observed[sev[0]].add((status, sev[1]))
        for cid, outcomes in test_outcomes(rec, collected).items():
            e = entries.get(cid)
            if e is None:
                continue
            test_status = None
            for kind, outcome, reason in outcomes:
                per_kind[cid].setdefault(kind, []).append((outcome, reason))
                test_status = _worst(test_status, outcome)
                if outcome == "fail" and e["failure"] is None:
                    e["failure"] = _failure(rec, cid)
                if outcome == "error":
                    e["errors"].append({"test": rec["nodeid"], "error": reason})
            # a kind whose examples were all filtered as not provided (strategies.given: every example of its
            # focus needed what it does not provide) is not-provided there, unless another outcome says more
            for kind in rec.get("not_provided_kinds") or []:
                if kind in LAYER_KINDS[e["layer"]]:
                    per_kind[cid].setdefault(kind, []).append(
                        ("not-provided", f"{kind}: not provided for {rec['nodeid'].split('::')[-1].split('[')[0]} "
                                         "(every example it needed was filtered as not provided)"))
            e["tests"].append({"nodeid": rec["nodeid"], "outcome": test_status or "skip",
                               "duration": rec.get("duration", 0.0), "examples": rec.get("examples", 0)})
            e["deviations"] += [d for d in rec.get("deviations", []) if d["clause"] == cid]
            if rec.get("output"):
                e["output"].append({"test": rec["nodeid"], "text": rec["output"]})
        for m in rec.get("measurements", []):
            e = entries.get(m.get("clause"))
            if e is not None:
                _add_measurement(e, m)
    coverage = condition_coverage(records, collected)
    for cid, e in entries.items():
        everywhere = per_kind[cid].get(ALL_KINDS, [])
        for kind in LAYER_KINDS[e["layer"]]:
            if kind not in provided_kinds:
                e["by_layer"][kind] = {"status": "not-provided", "reason": f"the implementation has no {kind}"}
                continue
            status, reason = None, ""
            for outcome, why in per_kind[cid].get(kind, []) + everywhere:
                if _worst(status, outcome) != status:
                    status, reason = outcome, why
            if status is None:
                status, reason = "not-reached", f"no test of this clause ran to a conclusion on {kind}"
            e["by_layer"][kind] = {"status": status, "reason": reason}
            missing = conditions_not_run(cid, kind, coverage) if status in JUDGED else []
            if missing:
                e["by_layer"][kind]["conditions_not_run"] = missing
                if status == "pass" and enforce:
                    e["by_layer"][kind] = {"status": "not-reached", "conditions_not_run": missing,
                                           "reason": f"{', '.join(f'{cid}/{c}' for c in missing)} never ran on {kind}"}
        status, reason = None, ""
        for kind, got in e["by_layer"].items():
            if _worst(status, got["status"]) != status:
                status, reason = got["status"], (f"{kind}: {got['reason']}" if len(e["by_layer"]) > 1 and
                                                 got["status"] not in ("pass",) else got["reason"])
        e["status"], e["reason"] = status, reason
        e["severity"] = worst_severity(sev for st, sev in observed[cid] if st == status)
        if status == "error" and e["severity"] is None:
            e["severity"] = "exception"
        if e["failure"] is not None:
            e["failure"]["severity"] = e["severity"] if status == "fail" else None
    return list(entries.values())


# Issue 22's verdict rule: a kind whose status would be pass reads not-reached where an applicable condition
# never ran on it. Conditions that hypothesis draws reach only by chance (a layout, affine=False, an offset input)
# are also run on a fixed grid on every kind (e.g. test_batchnorm_grad.py::test_every_layout_on_every_kind), and
# conditions a convention makes inapplicable are recorded as such (checks.inapplicable);
# tests/test_condition_coverage.py::test_no_clause_of_torch_passes_with_an_applicable_condition_unrun holds
# torch's audit to it.
ENFORCE_CONDITIONS = True

# statuses of a kind whose clause ran there: where an applicable condition did not run, the report lists it
# (conditions_not_run), and a pass becomes not-reached
JUDGED = ("pass", "fail", "known-defect", "deviation")


class Coverage:
    """Per clause, what the test records say about its conditions (pytest_results: conditions_run).

    ran: layer kind -> the conditions whose checks executed on that kind (held or not), over every test
    of the clause; excused: the kinds on which a test of the clause did not run everything it could for a
    reason that is no gap of the suite: the implementation could not express what an example needed
    (not_provided: filtered examples, noted with their layer kind) or the whole test was skipped (not
    provided, or for another reason such as no CUDA device; the skip is reported with the test). ALL_KINDS
    in excused: every kind. meaningful: some test of the clause recorded conditions_run (records written
    before issue 22, or synthetic ones, carry none: no rule then)."""

    def __init__(self):
        self.ran: dict[str, set] = {}
        self.excused: set = set()
        self.meaningful = False


def condition_coverage(records: list[dict], collected: dict | None = None) -> dict[str, Coverage]:
    """clause -> Coverage, from the test records (see Coverage)."""
    out: dict[str, Coverage] = {}
    known = clauses()
    for rec in records:
        cited = rec.get("clauses") or (collected or {}).get(rec.get("nodeid"), [])
        skipped = rec.get("outcome") == "skipped" and not str(rec.get("skip_reason", "")).startswith(
            ("known deviation", "known defect"))
        kinds = set(rec.get("kinds") or ())
        for cid in cited:
            cov = out.setdefault(cid, Coverage())
            if skipped:
                cov.excused.add(ALL_KINDS)
            if rec.get("not_provided"):
                filtered = rec.get("not_provided_kinds")
                if filtered is None or None in filtered:  # not known which kind: every kind
                    cov.excused.add(ALL_KINDS)
                else:
                    cov.excused |= set(filtered)
            if "conditions_run" in rec:
                cov.meaningful = True
        # a condition that cannot apply to a case under the implementation's convention (checks.inapplicable)
        # is not a gap of the suite there: it counts as covered on that kind
        for clause, condition, kind in (rec.get("conditions_run") or []) + (rec.get("conditions_inapplicable") or []):
            if clause not in known:
                continue
            cov = out.setdefault(clause, Coverage())
            # a check that called no layer (kind null) counts for the kinds its test exercised
            where = [kind] if kind is not None else (kinds or LAYER_KINDS[known[clause].layer])
            for k in where:
                cov.ran.setdefault(k, set()).add(condition)
    return out


def conditions_not_run(cid: str, kind: str, coverage: dict[str, Coverage]) -> list[str]:
    """The conditions of clause `cid` that apply to `kind` (spec/clauses.toml, [clause.applies]) and whose
    checks never executed on it; [] where the records say nothing about conditions or the gap is excused."""
    cov = coverage.get(cid)
    clause = clauses().get(cid)
    if cov is None or clause is None or not cov.meaningful or ALL_KINDS in cov.excused or kind in cov.excused:
        return []
    ran = cov.ran.get(kind, set())
    return [c for c in clause.applicable(kind) if c not in ran]


def _severities(rec: dict):
    """(status, (clause, severity)) for each failure a test record holds: its violations, its recorded
    deviations, and an error (an exception, a timeout or a crash: where a value was due)."""
    for v in rec.get("violations") or []:
        yield "fail", (v["clause"], v.get("severity") or "wrong-value")
    for d in rec.get("deviations") or []:
        yield ("known-defect" if d.get("kind") == "known-defect" else "deviation"), (d["clause"], d.get("severity"))
    if rec.get("outcome") == "failed" and not rec.get("violations"):
        for c in rec.get("clauses") or []:
            yield "error", (c, "exception")


def worst_severity(severities) -> str | None:
    """The most dangerous of the given severities (SEVERITIES order), None for none."""
    order = list(SEVERITIES)
    known = [s for s in severities if s in SEVERITIES]
    return min(known, key=order.index) if known else None


def failure_order(e: dict) -> tuple:
    """Sort key for failing clauses: severity first (most dangerous first), then status, then id."""
    sev = e.get("severity")
    return (list(SEVERITIES).index(sev) if sev in SEVERITIES else len(SEVERITIES),
            STATUSES.index(e["status"]), e["level"] != "MUST", e["id"])


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


def _counted(entries: list[dict], statuses, strict: bool) -> list[str]:
    return [e["id"] for e in entries if e["status"] in statuses and (strict or e["level"] == "MUST")]


def nothing_tested(entries: list[dict]) -> bool:
    return not entries or all(e["status"] in ("skip", "not-provided") for e in entries)


def is_conformant(entries: list[dict], strict: bool = False, complete: bool = True) -> bool:
    """Complete, something tested, and no MUST clause (with strict, no clause) is fail, error,
    not-reached or known-defect."""
    return complete and not nothing_tested(entries) and not _counted(entries, FAILING, strict)


def only_known_defects(entries: list[dict], strict: bool = False) -> bool:
    """Not conformant only because of recorded known defects: nothing unrecorded fails (exit 3)."""
    return not _counted(entries, UNRECORDED, strict) and bool(_counted(entries, ("known-defect",), strict))


def verdict(entries: list[dict], strict: bool = False, complete: bool = True) -> str:
    """The headline, e.g. 'not conformant: 1 known defect (BN-LAYOUT-01), no unrecorded failure'."""
    if nothing_tested(entries):
        return "nothing tested"
    parts = []
    for statuses, word in ((("fail",), "failing"), (("error",), "in error"), (("not-reached",), "not reached"),
                           (("known-defect",), "known defect")):
        ids = _counted(entries, statuses, strict)
        if ids:
            noun = "clause" if word != "known defect" else "known defect"
            label = f"{len(ids)} {noun}{'s' if len(ids) != 1 else ''}" + (f" {word}" if noun == "clause" else "")
            parts.append(f"{label} ({', '.join(ids)})")
    if not parts:
        text = "conformant"
    else:
        text = "not conformant: " + "; ".join(parts)
        if not _counted(entries, UNRECORDED, strict):
            text += "; no unrecorded failure"
    return text if complete else f"INCOMPLETE ({text} so far): the audit was interrupted"


CLASS_VERDICTS = ("not conformant", "only known defects", "conformant", "not provided")


def class_verdicts(entries: list[dict], strict: bool = False, complete: bool = True) -> list[dict]:
    """One verdict per conformance class over the clauses of `entries` it holds, by the rules of the
    headline: conformant, not conformant, only known defects (nothing unrecorded fails), or not provided
    (none of its clauses could be tested). should_failures: its SHOULD clauses that fail (listed, not
    counted); known_defects: the write-ups behind its known defects."""
    out = []
    for k in classes().values():
        members = [e for e in entries if e.get("class", _class_of(e["id"])) == k.id]
        if not members:
            continue
        if nothing_tested(members):
            word = "not provided"
        elif is_conformant(members, strict, complete):
            word = "conformant"
        elif only_known_defects(members, strict) and complete:
            word = "only known defects"
        else:
            word = "not conformant"
        findings = sorted({d.get("finding") for e in members if e["status"] == "known-defect"
                           for d in e.get("deviations", []) if d.get("kind") == "known-defect" and d.get("finding")})
        out.append({"id": k.id, "title": k.title, "clauses": [e["id"] for e in members], "verdict": word,
                    "conformant": word == "conformant",
                    "failing": [e["id"] for e in sorted(members, key=failure_order)
                                if e["status"] in FAILING and (strict or e["level"] == "MUST")],
                    "should_failures": [e["id"] for e in members if e["status"] in FAILING and e["level"] == "SHOULD"],
                    "known_defects": findings})
    return out


def _class_of(cid: str) -> str | None:
    c = clauses().get(cid)
    return c.conformance_class if c else None


def selection_verdict(entries: list[dict], selected, strict: bool = False, complete: bool = True) -> str:
    """The headline of a run restricted to some clauses: never 'conformant', since most clauses did not run."""
    text = verdict(entries, strict, complete)
    what = f"{len(entries)} of {len(clauses())} clauses selected ({', '.join(sorted(selected)[:8])}" \
           f"{', ...' if len(selected) > 8 else ''})"
    if text == "conformant":
        return f"the selected clauses hold: {what}; not a conformance verdict"
    return f"{text} [{what}; not a conformance verdict]"


def exercised(records: list[dict]) -> tuple[list[str], list[str]]:
    """The dtypes and layouts the implementation was called with."""
    pairs = {tuple(p) for r in records for p in r.get("inputs", [])}
    return sorted({d for d, _ in pairs}), sorted({lay for _, lay in pairs})
