"""How test outcomes become clause statuses (dropnorm/report/model.py), on hand-made records.

These tests check dropnorm's tools, not an implementation: they cite no spec clause of their
own (clause markers are for property tests); the clause IDs they assert on are those the
audited implementations are blamed for.
"""
from __future__ import annotations

import json

from dropnorm.report import model


def rec(nodeid, outcome, clauses, **extra):
    return {"event": "test", "nodeid": nodeid, "when": "call", "outcome": outcome, "duration": 0.1,
            "clauses": clauses, **extra}


def violation(cid, condition="c"):
    return {"clause": cid, "condition": condition, "message": "got 1, expected 2", "observed": "1",
            "expected": "2", "reproduction": "impl = ...", "script": None}


def statuses(records, selected=None, collected=None):
    return {e["id"]: e["status"] for e in model.clause_entries(records, collected or {}, selected)
            if selected is None or e["id"] in selected}


def test_failure_blames_only_the_violated_clause():
    records = [rec("t1", "failed", ["DO-TRAIN-01", "DO-DTYPE-01"], violations=[violation("DO-TRAIN-01")])]
    got = statuses(records, {"DO-TRAIN-01", "DO-DTYPE-01"})
    assert got == {"DO-TRAIN-01": "fail", "DO-DTYPE-01": "skip"}
    entry = next(e for e in model.clause_entries(records, {}, {"DO-DTYPE-01"}))
    assert "stopped at a failure of DO-TRAIN-01" in entry["reason"]


def test_worst_outcome_wins_and_errors_are_not_failures():
    records = [rec("t1", "passed", ["BN-TRAIN-01"]), rec("t2", "failed", ["BN-TRAIN-01"], error="TypeError: x"),
               rec("t3", "skipped", ["BN-EVAL-01"], skip_reason="not provided: affine=False")]
    got = statuses(records, {"BN-TRAIN-01", "BN-EVAL-01"})
    assert got == {"BN-TRAIN-01": "error", "BN-EVAL-01": "not-provided"}


def test_deviation_is_charged_to_its_clause_only():
    records = [rec("t1", "skipped", ["BN-API-01", "BN-API-02"], skip_reason="known deviation: ...",
                   deviations=[{"clause": "BN-API-01", "condition": "nan", "reason": "r", "message": "m"}])]
    assert statuses(records, {"BN-API-01", "BN-API-02"}) == {"BN-API-01": "deviation", "BN-API-02": "pass"}


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


def test_read_records_keeps_the_first_failure_and_survives_a_cut_line(tmp_path):
    path = tmp_path / "r.jsonl"
    lines = [rec("t1", "failed", ["DO-P0-01"], violations=[violation("DO-P0-01")]),
             {**rec("t1", "failed", ["DO-P0-01"], error="teardown"), "when": "teardown"},
             rec("t2", "passed", ["DO-P1-01"])]
    path.write_text("\n".join(json.dumps(x) for x in lines) + '\n{"event": "test", "nodeid": "t3", "outc')
    records, _ = model.read_records(path)
    assert [r["nodeid"] for r in records] == ["t1", "t2"] and records[0]["violations"]
