"""How test outcomes become clause statuses (dropnorm/report/model.py), on hand-made records.

These tests check dropnorm's tools, not an implementation: they cite no spec clause of their
own (clause markers are for property tests); the clause IDs they assert on are those the
audited implementations are blamed for.
"""
from __future__ import annotations

import json

from dropnorm.report import model


def rec(nodeid, outcome, clauses, kinds=("Dropout",), **extra):
    return {"event": "test", "nodeid": nodeid, "when": "call", "outcome": outcome, "duration": 0.1,
            "clauses": clauses, "kinds": list(kinds), **extra}


def violation(cid, condition="c", layer=None):
    return {"clause": cid, "condition": condition, "message": "got 1, expected 2", "observed": "1",
            "expected": "2", "reproduction": "impl = ...", "script": None, "layer": layer}


def statuses(records, selected=None, collected=None, provided=None):
    return {e["id"]: e["status"] for e in model.clause_entries(records, collected or {}, selected, provided)
            if selected is None or e["id"] in selected}


def test_failure_blames_the_violated_clause_and_a_completed_rerun_judges_the_others():
    records = [rec("t1", "failed", ["DO-TRAIN-01", "DO-DTYPE-01"], violations=[violation("DO-TRAIN-01")])]
    assert statuses(records, {"DO-TRAIN-01", "DO-DTYPE-01"}) == {"DO-TRAIN-01": "fail", "DO-DTYPE-01": "pass"}


def test_a_test_stopped_before_judging_leaves_its_other_clauses_not_reached():
    records = [rec("t1", "failed", ["DO-TRAIN-01", "DO-DTYPE-01"], violations=[violation("DO-TRAIN-01")],
                   unjudged="a rerun ended in TypeError: boom")]
    got = statuses(records, {"DO-TRAIN-01", "DO-DTYPE-01"})
    assert got == {"DO-TRAIN-01": "fail", "DO-DTYPE-01": "not-reached"}
    entry = next(e for e in model.clause_entries(records, {}, {"DO-DTYPE-01"}))
    assert "stopped after a failure of DO-TRAIN-01" in entry["reason"]
    assert not model.is_conformant(model.clause_entries(records, {}, {"DO-DTYPE-01"}))


def test_a_clause_is_judged_per_layer_kind():
    """A test that ran only Dropout says nothing about Dropout2d; a missing kind is not-provided."""
    records = [rec("t1", "passed", ["D2-EVAL-01", "DO-EVAL-01"], kinds=("Dropout",))]
    assert statuses(records, {"D2-EVAL-01", "DO-EVAL-01"}) == {"D2-EVAL-01": "not-reached", "DO-EVAL-01": "pass"}
    assert statuses(records, {"D2-EVAL-01"}, provided=["Dropout"]) == {"D2-EVAL-01": "not-provided"}
    bn = [rec("t2", "passed", ["BN-TRAIN-01"], kinds=("BatchNorm1d", "BatchNorm2d"))]
    entry = model.clause_entries(bn, {}, {"BN-TRAIN-01"})[0]
    assert entry["status"] == "not-reached" and entry["by_layer"]["BatchNorm3d"]["status"] == "not-reached"
    assert model.clause_entries(bn, {}, {"BN-TRAIN-01"}, ["BatchNorm1d", "BatchNorm2d"])[0]["status"] == "pass"


def test_worst_outcome_wins_and_errors_are_not_failures():
    records = [rec("t1", "passed", ["BN-TRAIN-01"], kinds=("BatchNorm1d", "BatchNorm2d", "BatchNorm3d")),
               rec("t2", "failed", ["BN-TRAIN-01"], error="TypeError: x"),
               rec("t3", "skipped", ["BN-EVAL-01"], skip_reason="not provided: affine=False")]
    got = statuses(records, {"BN-TRAIN-01", "BN-EVAL-01"})
    assert got == {"BN-TRAIN-01": "error", "BN-EVAL-01": "not-provided"}


def test_deviation_is_charged_to_its_clause_only_and_a_known_defect_is_not_conformance():
    dev = {"clause": "DO-API-01", "condition": "nan", "reason": "r", "message": "m", "kind": "convention"}
    records = [rec("t1", "skipped", ["DO-API-01", "DO-P0-01"], skip_reason="known deviation: ...", deviations=[dev])]
    assert statuses(records, {"DO-API-01", "DO-P0-01"}) == {"DO-API-01": "deviation", "DO-P0-01": "pass"}
    assert model.is_conformant(model.clause_entries(records, {}, {"DO-API-01", "DO-P0-01"}))
    records[0]["deviations"] = [dict(dev, kind="known-defect")]
    entries = model.clause_entries(records, {}, {"DO-API-01", "DO-P0-01"})
    assert {e["id"]: e["status"] for e in entries} == {"DO-API-01": "known-defect", "DO-P0-01": "pass"}
    assert not model.is_conformant(entries) and model.only_known_defects(entries)
    assert model.verdict(entries) == "not conformant: 1 known defect (DO-API-01); no unrecorded failure"


def test_crashed_worker_is_an_error_on_the_collected_clauses():
    records = [{"event": "test", "nodeid": "t1", "when": "???", "outcome": "failed", "duration": 0.0,
                "error": "the test process stopped: worker 'gw0' crashed"}]
    got = statuses(records, {"DO-EVAL-01"}, collected={"t1": ["DO-EVAL-01"]})
    assert got == {"DO-EVAL-01": "error"}


def test_conformance_counts_must_clauses_and_strict_counts_should():
    entries = model.clause_entries([rec("t1", "failed", ["DO-NONFINITE-01"],
                                        violations=[violation("DO-NONFINITE-01")])], {}, {"DO-NONFINITE-01"})
    assert model.is_conformant(entries) and not model.is_conformant(entries, strict=True)
    assert model.summary(entries)["should_failures"] == 1


def test_interrupted_or_empty_runs_are_never_conformant():
    entries = model.clause_entries([rec("t1", "passed", ["DO-P0-01"])], {}, {"DO-P0-01"})
    assert model.is_conformant(entries) and not model.is_conformant(entries, complete=False)
    assert model.verdict(entries, complete=False).startswith("INCOMPLETE")
    nothing = model.clause_entries([], {}, {"DO-P0-01"})
    assert not model.is_conformant(nothing) and "1 clause not reached (DO-P0-01)" in model.verdict(nothing)


def test_nonfinite_values_become_the_schemas_strings():
    got = model.finite_json({"a": [float("nan"), float("inf"), -float("inf"), 1.5], "b": {"c": float("nan")}})
    assert got == {"a": ["NaN", "Infinity", "-Infinity", 1.5], "b": {"c": "NaN"}}
    json.dumps(got, allow_nan=False)


def test_read_records_keeps_the_first_failure_and_survives_a_cut_line(tmp_path):
    path = tmp_path / "r.jsonl"
    lines = [rec("t1", "failed", ["DO-P0-01"], violations=[violation("DO-P0-01")]),
             {**rec("t1", "failed", ["DO-P0-01"], error="teardown"), "when": "teardown"},
             rec("t2", "passed", ["DO-P1-01"])]
    path.write_text("\n".join(json.dumps(x) for x in lines) + '\n{"event": "test", "nodeid": "t3", "outc')
    records, _ = model.read_records(path)
    assert [r["nodeid"] for r in records] == ["t1", "t2"] and records[0]["violations"]


def test_known_defect_script_names_are_plain_files_whatever_the_condition(tmp_path):
    """A condition such as D2-EDGE-01's "p=1.0" becomes a plain file name (the audit exited 2 on it)."""
    from dropnorm.report import files
    dev = {"kind": "known-defect", "condition": "p=1.0", "script": "#!/usr/bin/env python\nraise SystemExit(1)\n"}
    report = {"implementation": {"description": "x"},
              "clauses": [{"id": "D2-EDGE-01", "failure": None, "deviations": [dev]}]}
    files.write_scripts(tmp_path, report)
    assert dev["script_file"] == "repro-D2-EDGE-01-p_1.0.py" and (tmp_path / dev["script_file"]).exists()


# ------------------------------------------------------------------ classes and severity (spec 0.2.0)
def entries_for(records, selected):
    return model.clause_entries(records, {}, selected)


def test_each_class_is_judged_by_the_headline_rules_over_its_own_clauses():
    """A failure in one class leaves the others conformant; a known defect makes its class 'only known
    defects' with its write-up; a class none of whose clauses could run is 'not provided'."""
    known = {"clause": "BN-LAYOUT-01", "condition": "output", "reason": "r", "message": "m", "kind": "known-defect",
             "finding": "docs/findings/x.md", "severity": "wrong-value"}
    records = [rec("t1", "failed", ["DO-TRAIN-01"], violations=[violation("DO-TRAIN-01")]),
               rec("t2", "passed", ["DO-TRAIN-02"]),
               rec("t3", "passed", ["BN-LAYOUT-01"], kinds=("BatchNorm2d",), deviations=[known]),
               rec("t4", "skipped", ["BN-NUM-01"], skip_reason="not provided: no BatchNorm")]
    got = {k["id"]: k for k in model.class_verdicts(entries_for(records, {"DO-TRAIN-01", "DO-TRAIN-02",
                                                                         "BN-LAYOUT-01", "BN-NUM-01"}))}
    assert set(got) == {"values", "randomness", "layouts", "numerics"}
    assert got["values"]["verdict"] == "not conformant" and got["values"]["failing"] == ["DO-TRAIN-01"]
    assert got["randomness"]["verdict"] == "conformant" and got["randomness"]["conformant"]
    assert got["layouts"]["verdict"] == "only known defects" and got["layouts"]["known_defects"] == ["docs/findings/x.md"]
    assert got["numerics"]["verdict"] == "not provided"


def test_a_should_failure_is_listed_in_its_class_but_never_makes_it_non_conformant():
    """BN-API-01 (momentum validation) is a recommendation of this spec (SHOULD): failing it leaves the
    validation class conformant, listing it; with strict it counts."""
    records = [rec("t1", "failed", ["BN-API-01"], kinds=("BatchNorm1d",),
                   violations=[dict(violation("BN-API-01", "nan"), severity="invalid-accepted")])]
    entries = entries_for(records, {"BN-API-01"})
    k = model.class_verdicts(entries)[0]
    assert (k["id"], k["verdict"], k["should_failures"]) == ("validation", "conformant", ["BN-API-01"])
    assert model.class_verdicts(entries, strict=True)[0]["verdict"] == "not conformant"


def test_severity_comes_from_what_the_check_observed_and_orders_the_failures():
    """A wrong value outranks a wrong state, an exception and an accepted invalid argument; an error (no
    clause violation: an exception, a hang) is 'exception'; not-reached has no severity."""
    records = [rec("t1", "failed", ["BN-API-02"], kinds=("BatchNorm1d",),
                   violations=[dict(violation("BN-API-02", "nan"), severity="invalid-accepted")]),
               rec("t2", "failed", ["DO-TRAIN-01"], violations=[dict(violation("DO-TRAIN-01"), severity="wrong-value")]),
               rec("t3", "failed", ["DO-DTYPE-01"], error="RuntimeError: boom"),
               rec("t4", "failed", ["DO-EVAL-02", "DO-P0-01"],
                   violations=[dict(violation("DO-EVAL-02", "rng-untouched"), severity="wrong-state")],
                   unjudged="a rerun ended in TypeError")]
    entries = entries_for(records, {"BN-API-02", "DO-TRAIN-01", "DO-DTYPE-01", "DO-EVAL-02", "DO-P0-01"})
    sev = {e["id"]: e["severity"] for e in entries}
    assert sev == {"BN-API-02": "invalid-accepted", "DO-TRAIN-01": "wrong-value", "DO-DTYPE-01": "exception",
                   "DO-EVAL-02": "wrong-state", "DO-P0-01": None}
    failing = [e["id"] for e in sorted(entries, key=model.failure_order)]
    assert failing[:4] == ["DO-TRAIN-01", "DO-EVAL-02", "DO-DTYPE-01", "BN-API-02"]
    assert next(e for e in entries if e["id"] == "DO-TRAIN-01")["failure"]["severity"] == "wrong-value"


def test_a_selection_is_never_called_conformant():
    """A run restricted to some clauses says that the selected clauses hold, never 'conformant'."""
    entries = entries_for([rec("t1", "passed", ["DO-TRAIN-01"])], {"DO-TRAIN-01"})
    text = model.selection_verdict(entries, {"DO-TRAIN-01"})
    assert text.startswith("the selected clauses hold: 1 of ") and "not a conformance verdict" in text
    assert "conformant" not in text.replace("not a conformance verdict", "")
