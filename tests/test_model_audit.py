"""The model audit (issue 27, `dropnorm audit-model`, MD-* clauses of spec/clauses.toml).

- meta: every MD clause lists its conditions, every condition a check can raise is listed under its clause
  and every listed one is raised by some check (static scan of dropnorm/models/checks.py), and every clause
  has a pitfall model in dropnorm/zoo/models/ or a reason in NO_PITFALL;
- each pitfall model is rejected on its own clause and condition; each correct model passes every clause;
- the compile check can fail (torch.compile replaced by a wrong compiler);
- the command: report files, reproduction scripts that exit 1, bad TARGETs as one-line errors (exit 2);
- real clients (torchvision, timm) where installed: they skip, saying why, where not.
These tests cite no layer clause: the MD clauses are judged by the model audit itself.
"""
from __future__ import annotations

import ast
import fnmatch
import json
import os
import pathlib
import subprocess
import sys

import pytest
import torch

from dropnorm.models import assert_model_conforms, audit_model
from dropnorm.models.checks import CHECKS, ModelAudit
from dropnorm.models.target import TargetError, as_target, load_target
from dropnorm.spec.models import model_clauses
from dropnorm.zoo.models import catalogue

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHECKS_PY = ROOT / "dropnorm" / "models" / "checks.py"
# clauses with no pitfall model yet, each with the reason (shrink only)
NO_PITFALL = {
    "MD-COMPILE-01": "a model pitfall that only torch.compile exposes is the compiler's departure, not the model's "
                     "(torch.compile's layer departures are audited by --impl torch-compile); the check is shown able "
                     "to fail by test_compile_check_can_fail with a wrong compiler",
}
SINKS = {"check": (1, 2), "skip": (0, 1), "error": (0, 1), "_compare_to_anchor": (0, 1), "_stats_close": (0, 1)}


def _pattern(node) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "*" for v in node.values)
    return None


def _raised() -> set:
    """(clause, condition pattern) for every verdict call in checks.py with a literal clause."""
    found = set()
    for node in ast.walk(ast.parse(CHECKS_PY.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SINKS \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "self":
            i, j = SINKS[node.func.attr]
            if len(node.args) > j:
                clause, cond = _pattern(node.args[i]), _pattern(node.args[j])
                if clause and cond and clause != "*" and cond.strip("*"):
                    found.add((clause, cond))
    return found


def test_every_model_condition_is_listed_and_every_listed_one_is_raised():
    """Meta (MD-*): the conditions in spec/clauses.toml are exactly those dropnorm/models/checks.py can raise."""
    clauses = model_clauses()
    raised = _raised()
    assert {c for c, _ in raised} == set(clauses), "a clause is never judged, or a check names an unknown clause"
    unlisted = [(c, p) for c, p in raised if not fnmatch.filter(clauses[c].conditions, p)]
    assert not unlisted, f"conditions raised but not listed under their clause: {unlisted}"
    unused = [(c, k) for c, cl in clauses.items() for k in cl.conditions
              if not any(c == c2 and fnmatch.fnmatch(k, p) for c2, p in raised)]
    assert not unused, f"listed conditions no check raises: {unused}"


def test_every_model_clause_has_a_pitfall_or_a_reason():
    """Meta (MD-*): each clause is rejected by a catalogue pitfall on a listed condition, or is in NO_PITFALL."""
    clauses = model_clauses()
    pitfalls = {e.clause for e in catalogue().values() if e.kind == "pitfall"}
    for e in catalogue().values():
        if e.kind == "pitfall":
            assert e.condition in clauses[e.clause].conditions, e.name
    assert not (set(clauses) - pitfalls - set(NO_PITFALL)), "clauses without a pitfall model or a reason"
    assert not (set(NO_PITFALL) & pitfalls), "a clause with a pitfall must leave NO_PITFALL"
    assert sum(e.kind == "pitfall" for e in catalogue().values()) >= 12


def _audit(entry, checks=None):
    return ModelAudit(as_target(entry.build(), f"dropnorm:{entry.name}"), tuple(checks or entry.checks or CHECKS),
                      0).run()


PITFALLS = sorted(n for n, e in catalogue().items() if e.kind == "pitfall")
CORRECT = sorted(n for n, e in catalogue().items() if e.kind == "correct")


@pytest.mark.parametrize("name", PITFALLS)
def test_pitfall_model_is_rejected_on_its_own_clause(name):
    """Each pitfall model fails (a SHOULD: warns on) the clause and condition it is catalogued under."""
    e = catalogue()[name]
    a = _audit(e)
    hit = [r for r in a.results if r.clause == e.clause and r.condition == e.condition]
    want = "warn" if model_clauses()[e.clause].level == "SHOULD" else "fail"
    assert any(r.status == want for r in hit), (name, [(r.clause, r.condition, r.status, r.message) for r in a.results
                                                       if r.status != "skip"])


@pytest.mark.parametrize("name", CORRECT)
def test_correct_model_passes_every_model_clause(name):
    """No false alarm: a correct catalogue model passes every clause that runs (export on small_cnn: 10 s each) and
    warns on none; every clause but MD-COMPILE-01 (opt-in) and MD-SHIFT-01 (no dropout feeds a BatchNorm) ran."""
    checks = ("eval", "batch", "freeze", "fold", "lowp", "shift", "mc") + (("export",) if name == "small_cnn" else ())
    a = _audit(catalogue()[name], checks)
    bad = [(r.clause, r.condition, r.status, r.message) for r in a.results if r.status in ("fail", "error", "warn")]
    assert not bad, bad
    ran = {r.clause for r in a.results if r.status == "pass"}
    assert {"MD-EVAL-01", "MD-EVAL-02", "MD-MC-01"} <= ran


def test_correct_models_name_their_structure():
    """The structure the per-module table rests on: the small CNN's two conv -> BN pairs fold, its dropout feeds
    no BatchNorm, its smallest training batch is 1; the MLP's BatchNorm1d needs 2."""
    a = _audit(catalogue()["small_cnn"], ("batch",))
    assert a.structure.pairs == [("0", "1", "fx"), ("3", "4", "fx")] and not a.structure.dropout_to_bn
    assert a.min_batch == 1
    assert _audit(catalogue()["mlp_bn"], ("batch",)).min_batch == 2
    assert _audit(catalogue()["dropout_before_bn"], ("batch",)).structure.dropout_to_bn == [("2", "4")]


def test_failures_name_the_offending_module():
    """MD-EVAL-02 names the module that owns the buffer / drew from the RNG; MD-EVAL-01 the innermost module that
    diverged; MD-FOLD-01 each pair that alone breaks the output."""
    def named(name, clause, condition):
        a = _audit(catalogue()[name])
        return [r.modules for r in a.results if (r.clause, r.condition) == (clause, condition) and r.status == "fail"]
    assert named("buffer_updated_in_eval", "MD-EVAL-02", "buffers") == [("3",)]
    assert named("rng_drawn_in_eval", "MD-EVAL-02", "rng") == [("8",)]
    assert named("functional_dropout_default", "MD-EVAL-01", "deterministic") == [("<root>",)]
    assert named("fold_ported_eps", "MD-FOLD-01", "fusion-utils") == [("0 -> 1", "3 -> 4")]
    assert named("forward_switches_mode", "MD-EVAL-02", "modes") == [("drop",)]


def test_compile_check_can_fail(monkeypatch):
    """MD-COMPILE-01 is not a check that cannot fail: a 'compiler' that drops the model's BatchNorms is rejected
    on eval-output and train-stats (torch.compile itself is exercised by the clients, --compile)."""
    def wrong_compile(model, *a, **k):
        for name, m in list(model.named_children()):
            if isinstance(m, torch.nn.BatchNorm2d):
                setattr(model, name, torch.nn.Identity())
        return model
    monkeypatch.setattr(torch, "compile", wrong_compile)
    a = _audit(catalogue()["small_cnn"], ("compile",))
    got = {(r.condition, r.status) for r in a.results if r.clause == "MD-COMPILE-01"}
    assert ("eval-output", "fail") in got and ("train-stats", "fail") in got, got


def test_compile_train_stats_bound_still_catches_a_momentum_slip(monkeypatch):
    """MD-COMPILE-01/train-stats after its bound allowed float32 accumulation (tolerances.compile_train_bound): a
    'compiler' whose BatchNorms update with momentum 0.11 instead of 0.1 is still rejected, its eval output kept."""
    def slipped_compile(model, *a, **k):
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = 0.11
        return model
    monkeypatch.setattr(torch, "compile", slipped_compile)
    a = _audit(catalogue()["small_cnn"], ("compile",))
    got = {(r.condition, r.status) for r in a.results if r.clause == "MD-COMPILE-01"}
    assert got == {("eval-output", "pass"), ("train-stats", "fail")}, got


def test_cli_check_names_match_the_checks():
    """The parser's literal list of checks (no torch import to build `dropnorm --help`) is the checks module's."""
    from dropnorm.run.audit_model import CHECK_NAMES
    assert CHECK_NAMES == CHECKS


def test_api_assert_model_conforms():
    """The pytest entry: a correct model returns its audit; a pitfall raises AssertionError naming clause/condition."""
    m, x = catalogue()["mlp_bn"].build()
    assert assert_model_conforms(m, x, checks=("eval", "batch", "mc")).min_batch == 2
    m, x = catalogue()["bn_without_running_stats"].build()
    with pytest.raises(AssertionError, match="MD-EVAL-01/batch-independent"):
        assert_model_conforms(m, x, checks=("eval",))
    with pytest.raises(TargetError, match="unknown checks"):
        audit_model(m, x, checks=("nope",))


@pytest.mark.parametrize("built, match", [
    (lambda: 3, "must return"),
    (lambda: (torch.nn.Linear(2, 2), "x"), "example input"),
    (lambda: ("model", torch.ones(2, 2)), "not an nn.Module"),
    (lambda: (torch.nn.Linear(2, 2), (torch.ones(2, 2), torch.ones(3, 2))), "disagree on the batch size"),
    (lambda: (torch.nn.Linear(2, 2), torch.ones(2, 2), {"freez": 1}), "unknown options"),
])
def test_bad_build_results_are_clear_errors(built, match):
    with pytest.raises(TargetError, match=match):
        as_target(built())


def _cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "dropnorm", "audit-model", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


@pytest.mark.parametrize("target, match", [
    ("nocolon", "must be MODULE:CALLABLE"),
    ("no_such_module_xyz:build", "importing no_such_module_xyz raised ModuleNotFoundError"),
    ("/nonexistent/file.py:build", "no file"),
    ("dropnorm:nope", "catalogue has no 'nope'"),
    ("dropnorm.zoo.models.correct:nothing_here", "no callable"),
    ("FILE:", "the model in eval raised on its example input [(2, 4)]: RuntimeError"),
])
def test_cli_bad_target_is_one_line_exit_2(target, match, tmp_path):
    """A TARGET that cannot be loaded: exit 2 and one line on stderr, never a traceback."""
    if target.startswith("FILE:"):
        path = tmp_path / "bad_model.py"
        path.write_text("import torch\n\ndef build():\n    return torch.nn.Linear(3, 2), torch.ones(2, 4)\n")
        target = f"{path}:build"
    r = _cli(target, "--checks", "eval")
    assert r.returncode == 2, r.stderr
    assert match in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_cli_report_and_reproduction(tmp_path):
    """`dropnorm audit-model` on a pitfall: exit 1, report.json/md/html and junit.xml written, the failure's
    reproduction exits 1 in a fresh process; a file TARGET of a correct model exits 0."""
    out = tmp_path / "r"
    r = _cli("dropnorm:bn_without_running_stats", "--checks", "eval", "--report-dir", str(out))
    assert r.returncode == 1, r.stdout + r.stderr
    data = json.loads((out / "report.json").read_text())
    assert data["clauses"]["MD-EVAL-01"]["conditions"]["batch-independent"] == "fail" and not data["conformant"]
    assert {p.name for p in out.iterdir()} >= {"report.json", "report.md", "report.html", "junit.xml",
                                               "repro-MD-EVAL-01-batch-independent.py"}
    assert "MD-EVAL-01/batch-independent" in (out / "report.md").read_text()
    assert [row["module"] for row in data["modules"]] == ["1", "4", "8"]
    rep = subprocess.run([sys.executable, str(out / "repro-MD-EVAL-01-batch-independent.py")], capture_output=True,
                         text=True, timeout=300)
    assert rep.returncode == 1 and "reproduces" in rep.stdout, rep.stdout + rep.stderr
    user = tmp_path / "my_model.py"
    user.write_text("import torch\nfrom torch import nn\n\ndef build():\n    torch.manual_seed(0)\n"
                    "    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.2),"
                    " nn.Linear(8, 2)), torch.randn(6, 4)\n")
    r = _cli(f"{user}:build", "--checks", "eval,batch,freeze,fold,mc", "--report-dir", str(tmp_path / "u"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads((tmp_path / "u" / "report.json").read_text())["structure"]["min_training_batch"] == 2


# ------------------------------------------------------------------ clients (optional extra: .[models])
def test_dropoutnet_seed004():
    """DropoutNet as shared/seeds/004 writes it: eval deterministic (dropout off), MC samples vary, no BatchNorm."""
    a = _audit(catalogue()["dropoutnet_seed004"], ("eval", "batch", "mc"))
    status = {(r.clause, r.condition): r.status for r in a.results}
    assert status[("MD-EVAL-01", "deterministic")] == "pass" and status[("MD-MC-01", "samples-vary")] == "pass"
    assert a.structure.dropouts == ["dropout"] and not a.structure.bns


@pytest.mark.parametrize("name", ["torchvision:resnet18", "timm:resnet10t"])
def test_client_audit(name):
    """A real client (skipped where torchvision/timm is not installed): every MUST clause that runs passes."""
    import importlib
    try:   # absent, or a wheel built for another torch (torchvision's CUDA wheels on a CPU torch raise RuntimeError)
        importlib.import_module(name.split(":")[0])
    except Exception as e:
        pytest.skip(f"{name} needs the optional extra .[models] with a build matching torch ({type(e).__name__})")
    t = load_target(name)
    a = ModelAudit(t, ("eval", "batch", "freeze", "fold", "lowp", "shift", "mc"), 0).run()
    bad = [(r.clause, r.condition, r.status, r.message) for r in a.results if r.status in ("fail", "error")]
    assert not bad, bad
    assert a.min_batch == 2 and len(a.structure.pairs) >= 1
