"""Every clause of a test judged on its own: run the test again after each failure.

A property test usually checks several clauses. When a check fails, hypothesis
stops at that example (and shrinks it), so the test's other checks would never
run on the remaining examples: one defect would hide another. `run` therefore
reruns the test with the failed conditions masked (dropnorm.suite.checks.Context.masked:
they are recorded once, not raised again) until a run completes, a run ends in
an error that is not a clause violation, or MAX_RUNS runs were made. Every
violation found on the way is raised together (ClauseViolations), and a test
whose last run did not complete says so in Context.unjudged, so that the report
marks its other clauses not-reached rather than pass.

A run that ends in an exception raised by the implementation on one class of inputs (a rank, a dtype, a
layout, an option: dropnorm.suite.input_classes) is not the end of the test: the exception fails the clause that
covers that class, the class is filtered out of the following runs (current_trace().rejected), and the test's other
clauses are judged on the inputs the implementation accepts. At most MAX_CLASSES classes are isolated per test.
"""
from __future__ import annotations

from dropnorm.errors import DropnormError
from dropnorm.suite import input_classes
from dropnorm.adapters.base import NotProvided
from dropnorm.suite.checks import ClauseViolation, Context, check, circumstances
from dropnorm.suite.traced import current_trace

MAX_RUNS = 6  # 1 + up to 5 reruns: a layer failing more conditions of one test than that is judged unfinished
MAX_CLASSES = 3  # input classes isolated per test (each costs a rerun); past that the test ends in the error


class ClauseViolations(DropnormError, AssertionError):
    """Several violations found in one test (each with its own failing example)."""

    def __init__(self, violations: list[ClauseViolation], unjudged: str = ""):
        self.exceptions = tuple(violations)
        self.unjudged = unjudged
        lines = [f"{len(violations)} clause violation(s) in this test:"]
        for v in violations:
            lines.append(f"- {v.clause}/{v.condition}: {v.message}")
        if unjudged:
            lines.append(f"(the test's other checks could not all be judged: {unjudged})")
        lines.append("")
        for v in violations:
            lines += [f"Reproduce {v.clause}/{v.condition} (exits 1 while it fails):", v.shown_script(), ""]
        super().__init__("\n".join(lines))


def _leaves(exc: BaseException) -> list[BaseException]:
    subs = getattr(exc, "exceptions", None)
    if subs and not isinstance(exc, ClauseViolation):
        return [leaf for sub in subs for leaf in _leaves(sub)]
    return [exc]


def _unsatisfied(exc: BaseException) -> bool:
    """hypothesis found no example it could run (all were filtered out)."""
    from hypothesis.errors import FailedHealthCheck, Unsatisfiable
    return isinstance(exc, (Unsatisfiable, FailedHealthCheck))


def _isolate(leaves: list[BaseException]) -> ClauseViolation | None | bool:
    """When the run ended in one exception that the latest call on the implementation raised, on an input class
    (dropnorm.suite.input_classes.blamed): reject that class for the following runs and judge the exception as the
    covering clause's failure. Returns that ClauseViolation, True where a recorded deviation covers it (nothing
    to raise), None where the exception is not isolated."""
    errors = [e for e in leaves if not isinstance(e, ClauseViolation)]
    if (len(errors) != 1 or isinstance(errors[0], (NotProvided, input_classes.InputClassRejected))
            or len(current_trace().rejected) >= MAX_CLASSES):
        return None
    if not current_trace().calls:
        return None
    # the constructor arguments of the layer of the latest call (followed through round trips and copies)
    last = current_trace().calls[-1]
    found = input_classes.blamed(current_trace().calls, {last.layer: circumstances()["params"]}, current_trace().accepted,
                                 current_trace().builders.get(last.layer))
    if found is None:
        return None
    cls, (clause, condition), failed = found
    if not failed.error.startswith(type(errors[0]).__name__ + ":"):
        return None  # the test's own code raised after the call, or another exception
    current_trace().rejected.append((cls, (clause, condition)))
    try:
        check(False, clause, condition, f"got {failed.error[:300]}, expected an output: {cls.describe()} is "
              f"valid input (its examples are left out of this test's other checks)", severity="exception",
              covering=True)
    except ClauseViolation as v:
        return v
    return True  # a recorded deviation of this implementation covers it


def run(call, ctx: Context, max_runs: int = MAX_RUNS):
    """Call the test (`call()`), rerunning it with failed conditions masked; see the module docstring."""
    __tracebackhide__ = True
    found: list[ClauseViolation] = []
    for _ in range(max_runs):
        ctx.runs += 1
        ctx.examples = 0
        try:
            call()
            current_trace().end_example()  # a test without hypothesis: its one example ran to its end
        except Exception as exc:  # BaseException (pytest.skip, KeyboardInterrupt) passes through
            leaves = _leaves(exc)
            violations = [e for e in leaves if isinstance(e, ClauseViolation)]
            new = [v for v in violations if (v.clause, v.condition) not in ctx.masked]
            if violations and len(violations) == len(leaves) and new:
                for v in new:
                    found.append(v)
                    ctx.masked.add((v.clause, v.condition))
                continue
            isolated = _isolate(leaves)
            if isolated is not None:
                for v in new:
                    found.append(v)
                    ctx.masked.add((v.clause, v.condition))
                if isinstance(isolated, ClauseViolation):
                    found.append(isolated)
                continue
            if not found:
                if ctx.not_provided and ctx.examples == 0 and _unsatisfied(exc):
                    raise NotProvided("no example could run: " + "; ".join(
                        f"{reason} ({n} examples)" for reason, n in ctx.not_provided.items())) from None
                raise
            ctx.unjudged = f"a rerun ended in {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            found += new
            break
        else:
            break
    else:
        ctx.unjudged = f"still failing new conditions after {max_runs} runs"
    if found:
        raise ClauseViolations(found, ctx.unjudged)
