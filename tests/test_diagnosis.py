"""Likely causes (dropnorm/report/diagnosis.py) and messages that keep their case (report/markdown.keep_case),
on hand-made records shaped like the suite's own (issue 25).

These tests check dropnorm's tools, not an implementation: they cite no spec clause of their own.
"""
from __future__ import annotations

import pathlib
import subprocess
import sys

import jsonschema

from dropnorm.run.audit import summary_line
from dropnorm.report import diagnosis, files, markdown, model

BN_KINDS = ("BatchNorm2d",)


def rec(nodeid, outcome, clauses, kinds=BN_KINDS, **extra):
    return {"event": "test", "nodeid": nodeid, "when": "call", "outcome": outcome, "duration": 0.1,
            "clauses": clauses, "kinds": list(kinds), **extra}


def close_violation(cid, condition, got, expected, tol, what, layer="BatchNorm2d"):
    """A violation as checks.assert_close writes it."""
    return {"clause": cid, "condition": condition, "layer": layer, "severity": "wrong-value",
            "message": f"got {got!r}, expected {expected!r} at index (0,): |error| {abs(got - expected):.3g} > "
                       f"tolerance {tol:.3g}; 1 of 3 outside [{what}]",
            "observed": f"{got!r} at index (0,)", "expected": f"{expected!r} +- {tol:.3g}",
            "reproduction": "...", "script": None}


def entries(records, kinds=BN_KINDS):
    selected = {c for r in records for c in r["clauses"]}
    return model.clause_entries(records, {}, selected, list(kinds))


# the planted bug of benchmarks/user_loop/my_layers.py: running_var updated with the biased variance
BIASED = [
    rec("t_long", "failed", ["BN-TRAIN-03"], violations=[close_violation(
        "BN-TRAIN-03", "running-var", 3.0542778968811035, 3.057335307235422, 0.0015,
        "BatchNorm2d(eps=0.00958, momentum=1.0, affine=True, track_running_stats=True), "
        "x (1000, 3, 1, 1) float16 contiguous (zeros=relu, channel magnitudes 2^+-1)")]),
    rec("t_default", "failed", ["BN-DEFAULT-01"], violations=[close_violation(
        "BN-DEFAULT-01", "running-var", 0.9030202031135559, 0.9032948043764925, 2.05e-06,
        "BatchNorm2d with torch's defaults (momentum 0.1 weighing the new value, unbiased variance, eps 1e-05)")]),
    rec("t_nonfinite", "failed", ["BN-NONFINITE-01"], violations=[close_violation(
        "BN-NONFINITE-01", "running-var-other-channels", 19.602759722562055, 20.105394587243126, 5.25e-13,
        "training, channels [0], BatchNorm2d(eps=0.00427, momentum=1.0, affine=False, track_running_stats=True), "
        "x (5, 2, 4, 2) float64 contiguous, 3 non-finite value(s) [-inf, -inf, nan] in channel 1")]),
    rec("t_api", "failed", ["BN-API-01"], violations=[{
        "clause": "BN-API-01", "condition": "nan", "layer": "BatchNorm2d", "severity": "invalid-accepted",
        "message": "got a constructed layer, expected ValueError [BatchNorm2d(3, {'momentum': nan})]",
        "observed": None, "expected": None, "reproduction": "...", "script": None}]),
    rec("t_output", "passed", ["BN-TRAIN-01", "BN-TRAIN-02"]),
]


def test_the_biased_running_variance_is_the_first_likely_cause_with_its_quantitative_evidence():
    causes = diagnosis.diagnose(entries(BIASED))
    first = causes[0]
    assert first["mechanism"] == "running-var-bessel" and first["source"] == "signature"
    assert "biased" in first["cause"] and first["confidence"] >= 0.9
    # both momentum-1 cases agree with observed/expected = (n-1)/n: n = 1000 and n = 5*4*2 = 40
    assert "(n-1)/n for n = 1000" in first["evidence"] and "2 of 2" in first["evidence"]
    assert {"BN-TRAIN-03/running-var", "BN-DEFAULT-01/running-var",
            "BN-NONFINITE-01/running-var-other-channels"} <= set(first["explains"])
    assert "BN-API-01/nan" not in first["explains"]
    # the invalid argument is another cause; confidences never increase down the list
    assert any(c["mechanism"] == "argument-validation" and "BN-API-01/nan" in c["explains"] for c in causes)
    ranked = [c["confidence"] for c in causes if c["cause"] != "unexplained"]
    assert ranked == sorted(ranked, reverse=True)


def test_a_ratio_that_is_not_n_minus_1_over_n_is_not_blamed_on_the_bessel_correction():
    """running_std's kind of failure: observed/expected far from (n-1)/n at momentum 1."""
    records = [rec("t", "failed", ["BN-TRAIN-03"], violations=[close_violation(
        "BN-TRAIN-03", "running-var", 1.7, 3.0, 0.0015,
        "BatchNorm2d(eps=0.01, momentum=1.0, affine=True, track_running_stats=True), x (10, 3, 2, 2) float64 contiguous")])]
    causes = diagnosis.diagnose(entries(records))
    assert not any(c["source"] == "signature" and c["mechanism"] == "running-var-bessel" for c in causes)


def test_without_a_checkable_case_the_pattern_still_names_the_running_variance():
    """No momentum-1 case: only running-variance conditions fail while output and running mean pass."""
    records = [BIASED[1], BIASED[4]]
    first = diagnosis.diagnose(entries(records))[0]
    assert first["mechanism"] == "running-var-bessel" and "BN-TRAIN-01, BN-TRAIN-02" in first["evidence"]
    assert first["confidence"] < 0.9


def test_a_dropout_scale_of_one_is_no_inverted_scaling():
    x, p = 0.7, 0.3
    v = close_violation("DO-TRAIN-01", "scale", x, x / (1 - p), 1e-6, "Dropout(p=0.3), float32 contiguous", "Dropout")
    first = diagnosis.diagnose(entries([rec("t", "failed", ["DO-TRAIN-01"], kinds=("Dropout",), violations=[v])],
                                       ("Dropout",)))[0]
    assert first["mechanism"] == "dropout-unscaled" and "1-p" in first["evidence"]


def test_failures_only_in_half_precision_point_at_the_input_precision():
    records = [rec("t1", "failed", ["BN-TRAIN-02"], violations=[close_violation(
        "BN-TRAIN-02", "running-mean", 0.51, 0.5, 1e-3,
        "BatchNorm2d(eps=0.001, momentum=0.5), x (4, 3, 2, 2) float16 contiguous")]),
               rec("t2", "failed", ["BN-TRAIN-01"], violations=[close_violation(
                   "BN-TRAIN-01", "output", 0.26, 0.25, 1e-3,
                   "BatchNorm2d(eps=0.001, momentum=0.5), x (4, 3, 2, 2) bfloat16 contiguous")])]
    causes = diagnosis.diagnose(entries(records))
    assert causes[0]["mechanism"] == "input-precision"
    assert set(causes[0]["explains"]) == {"BN-TRAIN-02/running-mean", "BN-TRAIN-01/output"}


def test_float64_failures_at_float32_roundoff_point_at_float32_arithmetic():
    records = [rec("t1", "failed", ["BN-TRAIN-01"], violations=[close_violation(
        "BN-TRAIN-01", "output", 1.0000001, 1.0, 1e-12, "BatchNorm2d(eps=0.001), x (4, 3, 2, 2) float64 contiguous")])]
    assert diagnosis.diagnose(entries(records))[0]["mechanism"] == "float32-compute"


def test_exceptions_on_one_dtype_only_are_grouped_as_an_input_class():
    records = [rec("t1", "failed", ["BN-DTYPE-01"], error="RuntimeError: no kernel [x (2, 3, 4, 4) bfloat16 contiguous]"),
               rec("t2", "failed", ["BN-EVAL-01"], error="RuntimeError: no kernel [x (5, 3, 4, 4) bfloat16 contiguous]")]
    first = diagnosis.diagnose(entries(records))[0]
    assert first["mechanism"] == "input-class-exception" and "bfloat16" in first["cause"]
    assert set(first["explains"]) == {"BN-DTYPE-01/error", "BN-EVAL-01/error"}


def test_the_catalogue_proposes_a_defect_by_its_fingerprint_and_leave_one_out_removes_it():
    v = {"clause": "DO-TRAIN-04", "condition": "sample-agreement", "layer": "Dropout", "severity": "wrong-value",
         "message": "pairs agree [Dropout(p=0.5) adjacent samples]", "observed": None, "expected": None,
         "reproduction": "...", "script": None}
    got = entries([rec("t", "failed", ["DO-TRAIN-04"], kinds=("Dropout",), violations=[v])], ("Dropout",))
    summaries = {c["cause"] for c in diagnosis.diagnose(got, signatures="none")}
    assert "one mask is broadcast over the batch axis" in summaries
    left_out = diagnosis.diagnose(got, exclude={"mask_shared_across_batch"}, signatures="none")
    assert "one mask is broadcast over the batch axis" not in {c["cause"] for c in left_out}
    # its sibling of the same mechanism still names it
    assert left_out[0]["mechanism"] == diagnosis.mechanism_of("mask_shared_across_batch") == "dependent-draws"


def test_a_failure_nothing_explains_stays_listed_as_unexplained_and_a_stopped_clause_follows_its_cause():
    records = [rec("t1", "failed", ["BN-TRAIN-03", "BN-STATE-01"], violations=[BIASED[0]["violations"][0]],
                   unjudged="a rerun ended in TypeError: boom"),
               rec("t2", "failed", ["BN-EVAL-02"], violations=[{
                   "clause": "BN-EVAL-02", "condition": "something-new", "layer": "BatchNorm2d",
                   "severity": "wrong-state", "message": "odd [x (2, 3, 1, 1) float32 contiguous]",
                   "observed": None, "expected": None, "reproduction": "...", "script": None}])]
    causes = diagnosis.diagnose(entries(records))
    assert causes[-1]["cause"] == "unexplained" and causes[-1]["explains"] == ["BN-EVAL-02/something-new"]
    assert "BN-STATE-01/not-reached" in causes[0]["explains"]  # stopped by BN-TRAIN-03's failure


def test_nothing_failing_gives_no_diagnosis_and_known_defects_are_not_diagnosed():
    known = {"clause": "BN-LAYOUT-01", "condition": "output", "reason": "r", "message": "m", "kind": "known-defect"}
    records = [rec("t1", "passed", ["BN-TRAIN-01"]), rec("t2", "passed", ["BN-LAYOUT-01"], deviations=[known])]
    assert diagnosis.diagnose(entries(records)) == []


def test_the_diagnosis_module_imports_no_torch():
    code = ("import sys; from dropnorm.report import diagnosis; diagnosis.catalogue(); "
            "assert 'torch' not in sys.modules, 'torch imported'; print(len(diagnosis.catalogue()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) >= 100


def test_every_mechanism_family_names_catalogue_defects_that_exist():
    names = {d["name"] for d in diagnosis.catalogue()}
    for mech, (_, defects) in diagnosis.MECHANISMS.items():
        assert set(defects) <= names, mech


def test_the_schema_takes_a_diagnosis_and_does_not_require_one():
    schema = files.schema()
    assert "diagnosis" not in schema["required"]
    jsonschema.validate(diagnosis.diagnose(entries(BIASED)), schema["properties"]["diagnosis"])


# ------------------------------------------------------------------ messages keep what distinguishes the case
LONG = ("BatchNorm2d: BN-LAYOUT-01/running-var: got 0.7533990740776062, expected 0.797467198504342 at index (1,): "
        "|error| 0.0441 > tolerance 2.63e-06; 1 of 2 outside [BatchNorm2d(eps=2.28e-05, momentum=None, affine=True, "
        "track_running_stats=True), x (5, 2, 1, 2) float16 channels_last (zeros=zero-channel, repeated values, "
        "channel magnitudes 2^+-3), run channels_last, step 1, convention torch]")
LONG_BF16 = ("BatchNorm2d: BN-TRAIN-01/output: got 0.12890625, expected 0.1280234098434448 at index (0, 1, 0, 2): "
             "|error| 0.00088 > tolerance 0.00078; 3 of 36 outside [BatchNorm2d(eps=0.000123, momentum=0.1, "
             "affine=True, track_running_stats=True), training, x (3, 4, 1, 3) bfloat16 strided "
             "(zeros=scattered, repeated values, trend along the batch, channel magnitudes 2^+-7)]")


def test_keep_case_shortens_the_constructor_not_the_case():
    for limit in (220, 160, 140):
        short = markdown.keep_case(LONG, limit)
        assert len(short) <= limit
        assert "BN-LAYOUT-01/running-var" in short and "(5, 2, 1, 2) float16 channels_last" in short
        assert "BatchNorm2d(eps=2.28e-05, momentum=None)" in short  # defaults dropped, the rest kept
        short = markdown.keep_case(LONG_BF16, limit)
        assert len(short) <= limit and "training" in short and "x (3, 4, 1, 3) bfloat16 strided" in short
    assert markdown.keep_case("short enough", 160) == "short enough"


def test_the_console_summary_and_the_markdown_cells_keep_the_case():
    got = entries([rec("t", "failed", ["BN-LAYOUT-01"], violations=[{
        "clause": "BN-LAYOUT-01", "condition": "running-var", "layer": "BatchNorm2d", "severity": "wrong-value",
        "message": LONG.split("running-var: ", 1)[1], "observed": "0.7533990740776062 at index (1,)",
        "expected": "0.797467198504342 +- 2.63e-06", "reproduction": "...", "script": None}])])
    report = {"implementation": {"name": "torch-module:my_layers.py", "version": "unversioned"},
              "verdict": "not conformant", "summary": model.summary(got), "layers": {"missing": []},
              "classes": model.class_verdicts(got), "clauses": got, "deviations": [],
              "diagnosis": diagnosis.diagnose(BIASED and entries(BIASED))}
    text = summary_line(report, pathlib.Path("/tmp/r"))
    lines = text.splitlines()
    assert lines[2] == "likely causes:" and "biased" in lines[3]  # at the top, after the verdict and counts
    row = next(line for line in lines if " BN-LAYOUT-01 " in line and "fail" in line)
    assert "x (5, 2, 1, 2) float16 channels_last" in row and "BatchNorm2d(eps=2.28e-05, momentum=None)" in row
    cell = markdown.cell(got[0]["reason"])
    assert "(5, 2, 1, 2) float16 channels_last" in cell and len(cell) <= 170
    rows = markdown.diagnosis_rows(report)
    assert rows[0] == "## Likely causes" and "biased" in rows[4]
