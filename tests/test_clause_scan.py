"""The clause scan (tests/clause_scan.py) on small source trees written here: each test states the exact
set of (clause, condition) pairs the scan must find, so a citation it misses and one it invents both fail.
The last test runs the scan on the real property suite, on checks whose resolution each rule below makes.

These tests check dropnorm's own tooling: they cite no spec clause of their own (the ids below are made up).
"""
from __future__ import annotations

import textwrap

from tests.clause_scan import WILD, Scan, matches, used_conditions

# The sink and two helpers in the shape of dropnorm/suite/checks.py: every check ends in check().
CHECKS = '''
def check(ok, clause, condition, message=""):
    if not ok:
        raise AssertionError(f"{clause}/{condition}: {message}")


def assert_shape(got, want, clause, what):
    check(got == want, clause, "shape", what)


def assert_scaled(x, y, clause, *, channelwise=False):
    check(x == y, clause, "scale")
    if not channelwise:
        return
    check(x == y, clause, "whole-channel")


def never_called(ok):
    check(ok, "Z-00", "unreached")
'''


def scan(tmp_path, tests: str, **helpers: str) -> set:
    """{(clause, condition, where)} the scan finds in a tree holding pkg/checks.py (the sink), the modules
    `helpers` (pkg/<name>.py) and the property tests `tests` (pkg/props/test_props.py)."""
    pkg = tmp_path / "pkg"
    (pkg / "props").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "checks.py").write_text(CHECKS)
    for name, source in helpers.items():
        (pkg / f"{name}.py").write_text(textwrap.dedent(source))
    (pkg / "props" / "test_props.py").write_text(textwrap.dedent(tests))
    return Scan(tmp_path, packages=("pkg",), sink=("pkg.checks", "check")).used_conditions(pkg / "props")


def pairs(found: set) -> set:
    return {(clause, condition) for clause, condition, _ in found}


def test_a_literal_check_is_found_with_its_test_and_nothing_else(tmp_path):
    """A literal check() call is found, and named by its file and test; the sink's other callers that no test
    calls (checks.never_called) add nothing."""
    found = scan(tmp_path, """
        from pkg import checks as ph

        def test_value():
            ph.check(1 == 1, "A-01", "value", "one is one")
    """)
    assert found == {("A-01", "value", "test_props.py::test_value")}


def test_helpers_are_followed_with_the_arguments_of_each_call_site(tmp_path):
    """A helper's condition is found under the clause its call site passes, through `import module as` and
    `from module import function`; two call sites of one helper do not mix their clauses."""
    found = scan(tmp_path, """
        from pkg import checks as ph
        from pkg.checks import assert_shape

        def test_one():
            ph.assert_shape((1,), (1,), "A-01", "first")

        def test_two():
            assert_shape((2,), (2,), "A-02", "second")
    """)
    assert found == {("A-01", "shape", "test_props.py::test_one"), ("A-02", "shape", "test_props.py::test_two")}


def test_a_branch_a_known_flag_rules_out_is_pruned(tmp_path):
    """assert_scaled checks whole-channel only with channelwise=True: the call site with the default reaches
    "scale" alone, the one with channelwise=True both; neither borrows the other's."""
    found = scan(tmp_path, """
        from pkg import checks as ph

        def test_elements():
            ph.assert_scaled(1, 1, "A-01")

        def test_channels():
            ph.assert_scaled(1, 1, "A-02", channelwise=True)
    """)
    assert pairs(found) == {("A-01", "scale"), ("A-02", "scale"), ("A-02", "whole-channel")}


def test_literal_loops_f_strings_and_returned_labels_resolve(tmp_path):
    """Conditions built by an f-string over a literal loop, and a label returned by a project helper of
    another module whose branch the argument decides."""
    found = scan(tmp_path, """
        from pkg import checks as ph
        from pkg import labels

        def test_buffers():
            for name in ("running_mean", "running_var"):
                ph.check(True, "A-01", f"{name}-unchanged")

        def test_label():
            ph.check(True, "A-02", labels.label("2d"))
    """, labels="""
        def label(kind):
            return "whole" if kind == "2d" else "element"
    """)
    assert pairs(found) == {("A-01", "running_mean-unchanged"), ("A-01", "running_var-unchanged"),
                            ("A-02", "whole")}


def test_names_unpacked_from_one_loop_vary_together(tmp_path):
    """for clause, condition in ((A-01, p), (A-02, q)): the pairs of the rows, never A-01/q or A-02/p."""
    found = scan(tmp_path, """
        from pkg import checks as ph

        def test_rows():
            for clause, condition in (("A-01", "p"), ("A-02", "q")):
                ph.check(True, clause, condition)
    """)
    assert pairs(found) == {("A-01", "p"), ("A-02", "q")}


def test_parametrize_values_and_a_conditional_clause_resolve(tmp_path):
    """A condition from pytest.mark.parametrize, passed through a local helper, and a clause chosen by a
    conditional expression that the parametrized value decides."""
    found = scan(tmp_path, """
        import pytest
        from pkg import checks as ph

        def _bad(clause, condition):
            ph.check(False, clause, condition)

        @pytest.mark.parametrize("condition", ["negative", "nan"])
        def test_rejects(condition):
            _bad("A-01", condition)

        @pytest.mark.parametrize("kind", ["Dropout"])
        def test_kind(kind):
            clause = "A-02" if kind == "Dropout" else "A-03"
            ph.check(True, clause, "mode")
    """)
    assert pairs(found) == {("A-01", "negative"), ("A-01", "nan"), ("A-02", "mode")}


def test_the_clause_marker_is_read_back_through_get_closest_marker(tmp_path):
    """A clause read from request.node.get_closest_marker("clause") is the test's pytest.mark.clause."""
    found = scan(tmp_path, """
        import pytest
        from pkg import checks as ph

        def _marked(request):
            ph.check(True, request.node.get_closest_marker("clause").args[0], "marked")

        @pytest.mark.clause("A-01")
        def test_own_mark(request):
            _marked(request)
    """)
    assert found == {("A-01", "marked", "test_props.py::test_own_mark")}


def test_a_test_without_its_own_mark_takes_the_module_marks(tmp_path):
    """A test with no pytest.mark.clause of its own gets the clause marks written at module level: the rows of
    a parametrize list (pytest.param(..., marks=pytest.mark.clause(...)), as dropnorm/properties/test_provided.py
    does) or pytestmark. Each row's clause is read back; the scan cannot tell the rows apart, so a condition
    goes to every clause of the module (an over-approximation, never a clause the module does not mark)."""
    found = scan(tmp_path, """
        import pytest
        from pkg import checks as ph

        CASES = [pytest.param("Dropout", marks=pytest.mark.clause("A-01")),
                 pytest.param("BatchNorm", marks=pytest.mark.clause("A-02"))]

        @pytest.mark.parametrize("kind", CASES)
        def test_rows(kind, request):
            ph.check(True, request.node.get_closest_marker("clause").args[0], "declared")
    """)
    assert pairs(found) == {("A-01", "declared"), ("A-02", "declared")}


def test_a_state_machine_rule_is_scanned_with_the_module_clauses(tmp_path):
    """The rules of a RuleBasedStateMachine are scanned as roots, named Class.method."""
    found = scan(tmp_path, """
        import pytest
        from hypothesis.stateful import RuleBasedStateMachine, rule
        from pkg import checks as ph

        class Steps(RuleBasedStateMachine):
            @rule()
            def step(self):
                ph.check(True, "A-01", "step")

        @pytest.mark.clause("A-01")
        def test_steps():
            Steps.TestCase().runTest()
    """)
    assert found == {("A-01", "step", "test_props.py::Steps.step")}


def test_what_the_scan_cannot_resolve_is_a_wildcard(tmp_path):
    """A condition drawn at run time becomes "dx-*", which stands for the listed conditions it matches."""
    found = scan(tmp_path, """
        from pkg import checks as ph

        def test_drawn(data):
            layout = data.draw(layouts())
            ph.check(True, "A-01", f"dx-{layout}")
    """)
    assert pairs(found) == {("A-01", f"dx-{WILD}")}
    listed = ["dx-contiguous", "dx-transposed", "dy-contiguous"]
    assert matches(f"dx-{WILD}", listed) == ["dx-contiguous", "dx-transposed"]
    assert matches("dx-contiguous", listed) == ["dx-contiguous"] and matches("dx", listed) == []


def test_a_function_named_like_the_sink_is_not_the_sink(tmp_path):
    """A test module's own check() that never reaches pkg.checks.check cites nothing."""
    found = scan(tmp_path, """
        def check(ok, clause, condition):
            assert ok

        def test_local():
            check(True, "Z-01", "local")
    """)
    assert found == set()


def test_the_property_suite_resolves_each_kind_of_call():
    """On dropnorm/properties/: a pair each rule above makes (found), and a pair a pruned branch or a
    separate call site would invent (not found)."""
    found = {(c, k) for c, k, _ in used_conditions()}
    assert ("BN-DTYPE-01", "dtype") in found            # assert_dtype
    assert ("DO-TRAIN-01", "scale") in found            # assert_inverted_dropout
    assert ("DO-TRAIN-01", "whole-channel") not in found  # channelwise=False prunes that check
    assert ("BN-EVAL-03", "running_mean-unchanged") in found  # f-string over a literal loop
    assert ("BN-API-01", "out-of-range") in found       # parametrize value through a helper
    assert ("BN-API-02", "out-of-range") not in found   # call sites stay apart
    assert ("BN-LAYOUT-01", "output") in found          # a clause chosen by a conditional expression
    assert ("BN-TRAIN-02", "running-buffers") in found  # names unpacked from one loop vary together
    assert ("BN-TRAIN-01", "running-buffers") not in found
