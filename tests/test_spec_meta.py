"""The spec says exactly what the tests check.

(a) Every condition label a test can raise is listed under its clause in
    spec/clauses.toml (`conditions = [...]`), and every listed condition is
    raised by some test. The labels are found statically by tests/clause_scan.py
    (from every test function of dropnorm/properties/test_*.py down to
    dropnorm.suite.checks.check; tests/test_clause_scan.py tests the scan itself).
    A part the scan cannot resolve (a layout drawn by hypothesis) becomes the
    wildcard "*": "dx-*" must match at least one listed condition, and the listed
    conditions it matches count as used.
(b) Every clause has at least one defect in the catalogue
    (dropnorm/zoo/defects/*.py, DEFECT["clause"]) that tests/test_zoo.py shows
    the suite rejects on that clause, or is in NO_DEFECT below with the reason
    why none is catalogued yet. NO_DEFECT must shrink, never grow: a clause
    that gains a defect must leave it.

A self-check of the suite: it cites no spec clause of its own.
"""
from __future__ import annotations

import ast

from dropnorm import spec
from tests.clause_scan import ROOT, WILD, matches, used_conditions

# Clauses with no defect in the catalogue yet, each with the reason. Shrink only.
NO_DEFECT = {
    # consequences of another clause: every plausible defect breaks the clause it follows from, where
    # the zoo catalogues it; a defect of their own must depart only where the reference-free check sees it
    "BN-META-01": "consequence of BN-TRAIN-01; its defects (eps outside the root, a global mean) are "
                  "catalogued under BN-TRAIN-01; wanted: one that only a rescaled input exposes",
    "BN-META-02": "consequence of BN-TRAIN-01; statistics over a wrong axis (batch_axis_only.py) are "
                  "catalogued under BN-TRAIN-01; wanted: a position-dependent normalisation",
    "BN-GRAD-02": "consequence of BN-GRAD-01: a backward that ignores d mu/dx fails the dx check of the "
                  "same test first; wanted: a dx wrong only by a per-channel constant",
    "DO-MOMENT-01": "consequence of DO-TRAIN-01 and DO-TRAIN-02, whose defects (no_inverted_scaling.py, "
                    "keep_rate_off.py) break it; wanted: keep rate and scale off together (p as 1/scale)",
    "BN-EVAL-02": "a batch-dependent eval (eval_batch_stats.py) fails BN-EVAL-01 first; wanted: an eval "
                  "whose output depends on the batch below BN-EVAL-01's tolerance, or a nondeterministic one",
}


# ------------------------------------------------------------------ (a) conditions
def test_every_check_resolves_to_a_clause():
    """(a) Every check the scan finds names a clause of spec/clauses.toml (no wildcard, no unknown id)."""
    unresolved = sorted({(k, w) for c, k, w in used_conditions() if c == WILD or c not in spec.clauses()})
    assert not unresolved, f"checks whose clause the scan cannot resolve to a known clause: {unresolved}"


def test_every_condition_used_is_listed_under_its_clause():
    """(a) Every condition a test can raise is listed under its clause (a wildcard must match one)."""
    known = spec.clauses()
    missing = {}
    for clause, condition, where in sorted(used_conditions()):
        if clause not in known or condition == WILD:
            continue
        if not matches(condition, known[clause].conditions):
            missing.setdefault(clause, set()).add(condition)
    assert not missing, ("conditions the tests check but spec/clauses.toml does not list under the clause: "
                         + "; ".join(f"{c}: {sorted(v)}" for c, v in sorted(missing.items())))


def test_every_listed_condition_is_used():
    """(a) Every condition spec/clauses.toml lists is raised by some test (directly or through a wildcard)."""
    known = spec.clauses()
    used = {}
    for clause, condition, _ in used_conditions():
        if clause in known:
            used.setdefault(clause, set()).update(matches(condition, known[clause].conditions))
    unused = {cid: sorted(set(c.conditions) - used.get(cid, set())) for cid, c in known.items()}
    unused = {k: v for k, v in unused.items() if v}
    assert not unused, "conditions listed in spec/clauses.toml that no test checks: " + "; ".join(
        f"{c}: {v}" for c, v in sorted(unused.items()))


def test_every_clause_lists_its_conditions():
    """(a) No clause has an empty `conditions` list: what a clause checks is always named."""
    empty = sorted(cid for cid, c in spec.clauses().items() if not c.conditions)
    assert not empty, f"clauses with no conditions listed: {empty}"


# ------------------------------------------------------------------ (b) defects
def _defect_clauses():
    """{clause: [defect file names]} from the DEFECT dicts of dropnorm/zoo/defects/*.py."""
    out = {}
    for path in sorted((ROOT / "dropnorm" / "zoo" / "defects").glob("*.py")):
        if path.name.startswith("_"):
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "DEFECT" for t in node.targets)
                    and isinstance(node.value, ast.Dict)):
                for k, v in zip(node.value.keys, node.value.values):
                    if isinstance(k, ast.Constant) and k.value == "clause" and isinstance(v, ast.Constant):
                        out.setdefault(v.value, []).append(path.name)
    return out


def test_every_clause_has_a_defect_or_a_reason():
    """(b) Every clause has a catalogued defect or a reason in NO_DEFECT, and NO_DEFECT holds no clause that
    has since gained a defect."""
    defects = _defect_clauses()
    unknown = sorted(set(defects) - set(spec.clauses()))
    assert not unknown, f"defects cite unknown clauses: {unknown}"
    without = sorted(set(spec.clauses()) - set(defects) - set(NO_DEFECT))
    assert not without, f"clauses without a defect in dropnorm/zoo/defects/ and not in NO_DEFECT: {without}"
    stale = sorted(set(NO_DEFECT) & set(defects))
    assert not stale, f"clauses in NO_DEFECT that now have a defect (remove them from NO_DEFECT): {stale}"
    assert set(NO_DEFECT) <= set(spec.clauses()), sorted(set(NO_DEFECT) - set(spec.clauses()))
