"""`dropnorm matrix`'s choice of interpreter per implementation (frameworks in other venvs)."""
import sys

from dropnorm.run import matrix


def test_plan_audits_what_is_installed_here_with_this_interpreter():
    chosen, problems = matrix.plan([], [], paths=False)
    assert chosen and set(chosen.values()) == {sys.executable}
    assert "torch" in chosen and "reference" in chosen
    assert not set(chosen) & matrix.PATH_CANDIDATES.keys(), "paths are columns only with --paths"


def test_plan_names_what_no_interpreter_has():
    chosen, problems = matrix.plan(["torch", "no-such-framework"], ["/nonexistent/python"], paths=False)
    assert chosen == {"torch": sys.executable}
    assert problems == {"no-such-framework": "not installed"}


def test_plan_with_paths_adds_torchs_execution_paths():
    chosen, _ = matrix.plan([], [], paths=True)
    assert {"torch-functional", "torch-compile"} <= set(chosen)
