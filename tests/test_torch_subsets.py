"""torch's own classes in a user's file (issue 25, "The user's loop").

A user's torch-module file often holds some of torch.nn's classes themselves (`from torch.nn import
BatchNorm2d, Dropout`, `Dropout = nn.Dropout`) next to classes of its own. Two things must hold:

- whichever subset of the layer kinds a file provides, torch's own classes get nothing beyond torch's
  recorded departures (spec/deviations/torch.toml): the audit ends in exit 0 or 3, with no clause
  fail, error or not-reached. The suite's probes and draws depend on which kinds are present (a probe
  input once had one dimension too few whenever BatchNorm1d was absent: BN-GRAD-05 erred on torch's
  BatchNorm2d), so each kind is audited alone and in the pairs users write;
- torch's record covers torch's own classes and only them (by identity, per layer kind): a user's own
  class (a subclass of torch's included) is judged as the user's, and a user's --deviations cover only
  the user's own classes, so that a user's bug is never labelled a known defect of torch.

These tests check dropnorm's tools, not an implementation: they cite no spec clause of their own.

The subset audits run in the quick profile on the clauses whose tests depend on which kinds a file
provides (probes before drawing, the dims or kinds drawn from the provided ones, tests that skip
without one kind), two audits at a time. DROPNORM_SUBSETS_FULL=1 audits every clause instead (about
ten minutes on two cores).
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import pathlib
import time

import pytest

from dropnorm.spec.kinds import KINDS
from dropnorm.spec import clauses
from tests.conftest import ROOT, audit as run_audit, clean_env, run_pytest

# each kind alone, then the pairs users typically write
SUBSETS = [(k,) for k in KINDS] + [("BatchNorm2d", "Dropout"), ("BatchNorm1d", "Dropout"),
                                   ("BatchNorm2d", "Dropout2d"), ("BatchNorm3d", "Dropout3d")]

# the clauses whose tests depend on which kinds are provided, beyond the examples drawn: a probe that
# runs a forward before drawing (BN-GRAD-05: test_batchnorm_family.py's _probe_forward_in, whose input
# once had one dimension too few without BatchNorm1d), provided_dims / provides() picking what to run
# (argument checks, ranks, defaults, gradcheck, folding), kinds picked among the provided ones (the channel
# keep rate and independence, D2-TRAIN-03/04, run on each provided channel kind, none without one). The other
# probes of test_batchnorm_family.py (BN-RESET-01, BN-LOAD-01, BN-SYNC-01, BN-LAZY-01) construct
# layers without running them, whatever the kind: left to DROPNORM_SUBSETS_FULL=1, for time.
DEPENDENT = ("BN-GRAD-05", "BN-API-01", "BN-API-02", "BN-API-03", "BN-TRAIN-06", "BN-TRAIN-07", "BN-DEFAULT-01",
             "BN-GRAD-04", "BN-FOLD-01", "DO-API-01", "DO-API-02", "DO-EVAL-02", "DO-GRAD-02",
             "D2-API-01", "D2-API-02", "D2-RANK-01", "D2-EVAL-01", "D2-EDGE-01", "D2-TRAIN-03", "D2-TRAIN-04",
             "AD-API-01", "AD-API-02", "AD-INPLACE-01", "AD-EDGE-01")
UNRECORDED = ("fail", "error", "not-reached")


def subset_name(kinds: tuple) -> str:
    return "+".join(kinds)


def audit(impl: str, report_dir: pathlib.Path, *args: str, timeout: float = 600) -> tuple[int, dict, str]:
    """`dropnorm audit` (quick, no replay) in a fresh process, as a user runs it, free of this test run's
    DROPNORM_/PYTEST_ variables: (exit status, report.json or {} when it wrote none, stderr)."""
    run = run_audit(impl, report_dir, "--quiet", "--replay=none", *args, timeout=timeout, env=clean_env())
    path = report_dir / "report.json"
    report = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return run.returncode, report, run.stderr


def unrecorded(entries: list[dict]) -> list[str]:
    return [f"{e['id']} {e['status']}: {(e.get('reason') or '').splitlines()[0][:300] if e.get('reason') else ''}"
            for e in entries if e["status"] in UNRECORDED]


def exit_status(entries: list[dict]) -> int:
    """The exit status dropnorm audit gives these clause entries (dropnorm.run.audit.audit, a complete run)."""
    from dropnorm.report import model
    if model.is_conformant(entries):
        return 0
    return 3 if model.only_known_defects(entries) else 1


def selected_clauses() -> list[str]:
    if os.environ.get("DROPNORM_SUBSETS_FULL"):
        return []
    selected = [c for c in DEPENDENT if c in clauses()]
    assert len(selected) >= len(DEPENDENT) // 2, \
        f"most of the clauses of this test are gone from the spec: {sorted(set(DEPENDENT) - set(selected))}"
    return selected


@pytest.fixture(scope="module")
def subset_audits(tmp_path_factory) -> dict:
    """Every subset audited in one pytest process of the property suite (as dropnorm audit runs it, with one
    --impl per subset and two workers), judged by dropnorm audit's own functions (dropnorm.report.model):
    subset name -> its clause entries. One process: the start-up, not the tests, is most of a small audit."""
    from dropnorm.properties import module_files as property_test_files
    from dropnorm.report import model
    base = tmp_path_factory.mktemp("torch-subsets")
    specs = {}
    for kinds in SUBSETS:
        source = base / f"{subset_name(kinds).replace('+', '_').lower()}.py"
        source.write_text(f"from torch.nn import {', '.join(kinds)}  # noqa: F401\n", encoding="utf-8")
        specs[subset_name(kinds)] = (kinds, f"torch-module:{source}", source.name)
    selected = selected_clauses()
    results = base / "results.jsonl"
    args = [*property_test_files(), "-n", "2", "-q", "--no-header", "-rN", "--hypothesis-profile=quick",
            f"--dropnorm-results={results}"]
    args += [f"--impl={spec}" for _kinds, spec, _file in specs.values()] + [f"--clause={c}" for c in selected]
    started = time.time()
    run = run_pytest(*args, timeout=1800, env=clean_env())
    assert run.returncode in (0, 1) and results.is_file(), (run.stdout + run.stderr)[-4000:]
    records, _events = model.read_records(results)
    collected = json.loads(results.with_name(results.name + ".collected.json").read_text(encoding="utf-8"))
    out = {"_wall_s": time.time() - started}
    for name, (kinds, spec, file) in specs.items():
        mine = [r for r in records if r.get("impl") == spec]
        ids = {n: c for n, c in collected.items() if f"[torch-module:{file}" in n}
        assert mine and len(mine) >= len(ids), f"{name}: {len(mine)} records of {len(ids)} tests collected"
        out[name] = model.clause_entries(mine, ids, set(selected) or None, list(kinds))
    return out


@pytest.mark.parametrize("kinds", SUBSETS, ids=subset_name)
def test_torch_classes_get_only_torchs_record(kinds, subset_audits):
    entries = subset_audits[subset_name(kinds)]
    problems = unrecorded(entries)
    status = exit_status(entries)
    print(f"{subset_name(kinds)}: exit {status} (all subsets: {subset_audits['_wall_s']:.0f} s)")
    assert status in (0, 3) and not problems, f"exit {status}; beyond torch's record:\n" + "\n".join(problems)
    # what is recorded is torch's: every deviation met is an entry of spec/deviations/torch.toml
    met = {d["key"] for e in entries for d in e.get("deviations", [])}
    torch_keys = {d.key for d in _torch_record()}
    assert met <= torch_keys, met - torch_keys
    assert any(e["status"] == "pass" for e in entries), "nothing passed: nothing was tested"


def test_the_users_loop_exits_0_or_3(tmp_path):
    """The reported case, through the command a user runs: `from torch.nn import BatchNorm2d, Dropout`
    audited with dropnorm audit (BN-GRAD-05 used to err: expected 4D input (got 3D input), exit 1)."""
    source = tmp_path / "layers.py"
    source.write_text("from torch.nn import BatchNorm2d, Dropout  # noqa: F401\n", encoding="utf-8")
    status, report, err = audit(f"torch-module:{source}", tmp_path / "report",
                                *[f"--clause={c}" for c in selected_clauses()])
    assert report, f"no report (exit {status}): {err[-3000:]}"
    assert set(report["layers"]["provided"]) == {"BatchNorm2d", "Dropout"}, report["layers"]
    assert status in (0, 3) and not unrecorded(report["clauses"]), f"exit {status}: {err[-3000:]}"
    assert {e["id"]: e["status"] for e in report["clauses"]}.get("BN-GRAD-05") == "pass", err[-3000:]


def _torch_record():
    from dropnorm.spec import default_deviations_file, load_deviations
    return load_deviations(default_deviations_file("torch"))


# ------------------------------------------------------------------ torch's record, torch's classes only
MIXED = '''import torch.nn as nn

Dropout = nn.Dropout            # torch's own classes
AlphaDropout = nn.AlphaDropout


class BatchNorm2d(nn.BatchNorm2d):
    """The user's own BatchNorm2d: it inherits torch's CPU backward bug for transposed inputs (BN-LAYOUT-01)."""
'''


def test_torch_own_kinds_by_identity(tmp_path):
    from dropnorm.adapters import load
    path = tmp_path / "mixed.py"
    path.write_text(MIXED, encoding="utf-8")
    impl = load(f"torch-module:{path}")
    assert impl.torch_own_kinds == ["Dropout", "AlphaDropout"]   # the subclass is the user's own
    assert load("torch").torch_own_kinds == []                    # torch's whole record applies there already


def test_deviation_scopes():
    """torch's entries cover torch's own kinds only, entries of clauses of their layers only; the user's
    cover the user's own kinds only; a framework's record given as --deviations never covers a user's class."""
    from dropnorm.suite.plugin import recorded_deviations
    from dropnorm.spec import Deviation
    torch_entries = _torch_record()
    user = Deviation("BN-LAYOUT-01", "dx-transposed", "mine", "mine", "convention", source="/elsewhere/mine.toml")
    got = recorded_deviations("torch-module:/x/layers.py", ["Dropout", "AlphaDropout"], [user] + torch_entries)
    where = dict(dtype="float32", layout="transposed", params={}, seeds=set(), error=None)
    layers = {clauses()[d.clause].layer for d in got if d.reason != "mine"}
    assert layers <= {"dropout", "alphadropout"} and layers, layers
    assert all(not d.covers(layer="BatchNorm2d", **where) for d in got if d.reason != "mine")
    assert any(d.covers(layer="AlphaDropout", **where) for d in got if d.clause == "AD-INPLACE-01")
    (mine,) = [d for d in got if d.reason == "mine"]
    assert mine.key == user.key   # the scope is not part of the key: hits count for the entry as written
    assert mine.covers(layer="BatchNorm2d", **where) and not mine.covers(layer="Dropout", **where)
    # no torch class in the file: none of torch's record, the user's entries as they are
    assert recorded_deviations("torch-module:/x/layers.py", [], [user] + torch_entries) == [user]
    # --impl torch: its own file and --deviations, unchanged
    assert len(recorded_deviations("torch", [], [user])) == len(torch_entries) + 1


def test_torch_record_covers_torch_classes_not_the_users(tmp_path):
    """The verdict pair: torch's AlphaDropout in a user's file is torch's known defect (AD-INPLACE-01), not an
    unrecorded failure; the user's own BatchNorm2d keeps its failure (BN-LAYOUT-01), even with torch's record
    passed as --deviations (which used to relabel it a known defect of torch: exit 3)."""
    path = tmp_path / "mixed.py"
    path.write_text(MIXED, encoding="utf-8")
    torch_toml = ROOT / "spec" / "deviations" / "torch.toml"
    status, report, err = audit(f"torch-module:{path}", tmp_path / "report", "--clause=AD-INPLACE-01",
                                "--clause=BN-LAYOUT-01", f"--deviations={torch_toml}")
    by_id = {e["id"]: e for e in report.get("clauses", [])}
    assert by_id, err[-3000:]
    assert by_id["AD-INPLACE-01"]["status"] == "known-defect", by_id["AD-INPLACE-01"]
    assert by_id["BN-LAYOUT-01"]["status"] == "fail", by_id["BN-LAYOUT-01"]
    assert status == 1, err[-2000:]


def test_compare_warns_when_torchs_own_classes_differ():
    from dropnorm.report.compare import warnings

    def report(own):
        return {"environment": {"profile": "quick", "seed": None, "device": "cpu"},
                "selection": {"clauses": None, "layers": None}, "provenance": {"spec_version": "1"},
                "implementation": {"name": "torch-module:layers.py", **({"torch_own_kinds": own} if own is not None else {})}}

    assert not warnings(report(["Dropout"]), report(["Dropout"]))
    assert not warnings(report(None), report([]))
    (w,) = warnings(report(["Dropout"]), report([]))
    assert "torch's own classes differ" in w and "['Dropout'] vs []" in w
