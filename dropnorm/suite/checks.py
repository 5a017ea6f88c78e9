"""Assertion helpers (alias `ph` in the tests): every check names its clause.

A failed check raises ClauseViolation with the message
  "<clause>/<condition>: got X, expected Y [what]"
and keeps the trace of the failing example (dropnorm.suite.traced), from which
dropnorm.suite.reproduce writes a standalone script that rebuilds the case.
A failed check inside the scope of a recorded deviation (spec/deviations/<impl>.toml
or --deviations) is recorded instead of raised, so that it cannot hide another failure.
A check whose condition already failed in this test (Context.masked: the test is run
again after a failure, dropnorm.suite.judging) is not raised again, so that the rerun judges
the test's other checks.

A check may only cite a clause the running test is marked with (@pytest.mark.clause):
otherwise `--clause X` would not run every check of X. Citing another is an error of
the suite (SuiteError).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dropnorm.errors import DropnormError, SuiteError  # noqa: F401 - SuiteError: `ph.SuiteError` in the tests
from dropnorm.spec import SEVERITIES, Deviation, clauses
from dropnorm.suite import state
from dropnorm.suite.traced import current_trace

__all__ = ["ClauseViolation", "SuiteError", "check", "held", "inapplicable", "measure", "assert_equal", "assert_close", "assert_dtype",
           "assert_shape", "assert_binomial", "context"]


class ClauseViolation(DropnormError, AssertionError):
    """A failed check: the clause, the condition within it, observed and expected values
    (as text), the comparison it made and the trace of the failing example, kept apart for the
    report and for the reproduction script (dropnorm.suite.reproduce)."""

    def __init__(self, clause: str, condition: str, message: str, observed: str | None = None,
                 expected: str | None = None, comparison: dict | None = None, severity: str = "wrong-value"):
        self.clause, self.condition, self.message = clause, condition, message
        self.severity = severity  # dropnorm.spec.SEVERITIES: what kind of departure the check observed
        self.observed, self.expected = observed, expected
        self.comparison = comparison or {"kind": "predicate"}
        self.calls = list(current_trace().calls)
        self.impl_spec = current_trace().impl_spec
        self._script = None
        super().__init__(f"{clause}/{condition}: {message}")

    @property
    def script(self) -> str:
        """A standalone script that rebuilds the failing case and exits 1 when it reproduces."""
        if self._script is None:
            from dropnorm.suite import reproduce
            self._script = reproduce.script(self)
        return self._script

    @property
    def reproduction(self) -> str:
        return self.script

    def shown_script(self, limit: int = 6000) -> str:
        """The script with large embedded arrays shortened (dropnorm.suite.reproduce.abbreviated)."""
        from dropnorm.suite import reproduce
        return reproduce.abbreviated(self.script, limit)

    def __str__(self) -> str:
        return (f"{self.clause}/{self.condition}: {self.message}\n\nReproduce (exits 1 while it fails):\n"
                f"{self.shown_script()}")


@dataclass
class Context:
    impl_name: str = "torch"
    deviations: list = field(default_factory=list)   # Deviation, in the order read
    marked: frozenset = frozenset()                  # the clauses the running test is marked with
    masked: set = field(default_factory=set)         # (clause, condition) that failed earlier in this test
    observed: dict = field(default_factory=dict)     # (clause, condition, deviation key, layer kind) -> (Deviation, message,
    #                                                  layer kind, ClauseViolation kept as evidence)
    measurements: list = field(default_factory=list)
    examples: int = 0                                # hypothesis examples run to their end
    not_provided: dict = field(default_factory=dict)  # reason -> examples filtered out as not provided
    runs: int = 0                                    # runs of the test (1 + reruns after failures)
    unjudged: str = ""                               # why the test's other clauses could not be judged
    ran: set = field(default_factory=set)            # (clause, condition, layer kind or None) of every check
    #                                                  executed, held or not (issue 22: per-condition coverage)
    not_provided_kinds: set = field(default_factory=set)  # layer kinds (None: unknown) of examples filtered
    #                                                  out as not provided
    inapplicable: set = field(default_factory=set)   # (clause, condition, layer kind or None) that cannot apply
    #                                                  to the case at hand under the implementation's convention

    def __post_init__(self):
        if not isinstance(self.not_provided, _NotProvidedCounts):
            self.not_provided = _NotProvidedCounts(self, self.not_provided)


class _NotProvidedCounts(dict):
    """Context.not_provided (reason -> examples filtered out): counting a reason also notes the layer kind
    the filtered example was on (Context.not_provided_kinds), so that the report can tell a condition that
    never ran because the implementation cannot express what it needs from one that no test ran."""

    def __init__(self, ctx: "Context", values=()):
        super().__init__(values)
        self._ctx = ctx

    def __setitem__(self, reason, count):
        super().__setitem__(reason, count)
        kind = checked_kind()
        if kind is None:
            kind = state.current().focus  # the kind the test is running for, where it runs one per kind
        self._ctx.not_provided_kinds.add(kind)


def context() -> Context:
    """The clause context of the running test (the run's state, suite/state.py)."""
    run = state.current()
    if run.context is None:
        run.context = Context()
    return run.context


def set_context(ctx: Context) -> None:
    state.current().context = ctx


def circumstances(calls=None) -> dict:
    """What the failing check looked at, read from the trace: the layer kind, dtype and layout of
    the latest forward call, that layer's constructor arguments, and the seeds set in the example."""
    calls = current_trace().calls if calls is None else calls
    out = {"layer": None, "dtype": None, "layout": None, "params": {}, "seeds": set()}
    constructed, parent = {}, {}
    for c in calls:
        if c.method == "construct":
            constructed[c.layer] = c.args
        elif c.method == "roundtrip" and c.result is not None:
            parent[c.result] = c.layer
        elif c.method == "seed":
            out["seeds"].add(c.args["seed"])
    for c in reversed(calls):
        if c.method in ("forward", "forward_backward", "gradcheck"):
            number = c.layer
            while number not in constructed and number in parent:
                number = parent[number]
            out.update(layer=c.kind, dtype=c.args.get("dtype", "float64"), layout=c.args.get("layout", "contiguous"),
                       params=constructed.get(number, {}))
            break
    else:  # no forward call (a constructor check): the latest layer constructed
        for c in reversed(calls):
            if c.method == "construct":
                out.update(layer=c.kind, params={k: v for k, v in c.args.items() if k != "factory"})
                break
    return out


_FORWARD = frozenset(("forward", "forward_backward", "gradcheck", "forward_in"))


def checked_kind(calls=None) -> str | None:
    """The layer kind a check looks at, as circumstances() reads it but cheaper (it runs on every check):
    the kind of the latest forward call of the current example, else of the latest layer constructed;
    None when the example called no layer."""
    calls = current_trace().calls if calls is None else calls
    constructed = None
    for c in reversed(calls):
        method = c.method
        if method in _FORWARD:
            return c.kind
        if method == "construct" and constructed is None:
            constructed = c.kind
    return constructed


def _ran(ctx: Context, clause: str, condition: str) -> None:
    """Note that a check of clause/condition was executed on the current layer kind (held or not)."""
    ctx.ran.add((clause, condition, checked_kind()))


def _deviation(clause: str, condition: str, error: float | None) -> tuple[Deviation | None, str | None]:
    """The recorded deviation whose scope covers this failed check, if any, and the layer kind checked."""
    ctx = context()
    candidates = [d for d in ctx.deviations if d.clause == clause and d.condition in (condition, "*")]
    if not candidates:
        return None, None
    where = circumstances()
    for dev in candidates:
        if dev.covers(layer=where["layer"], dtype=where["dtype"], layout=where["layout"], params=where["params"],
                      seeds=where["seeds"], error=error):
            return dev, where["layer"]
    return None, None


def check(ok: bool, clause: str, condition: str, message: str, *, observed=None, expected=None,
          comparison: dict | None = None, severity: str = "wrong-value", covering: bool = False) -> None:
    """The one place a clause can fail. observed/expected: the values, for the report;
    comparison: what was compared (kind close/equal with got, expected, atol), for the reproduction;
    severity: what the check observes when it fails (dropnorm.spec.SEVERITIES): a value compared with the
    reference is wrong-value (the default); a shape, dtype, buffer, counter, mode or alias is wrong-state;
    an exception where an output was due is exception; an invalid argument that gets no (or the wrong)
    error is invalid-accepted. covering: the check is dropnorm.suite.judging's verdict on an exception the test met on
    an input class (dropnorm.suite.input_classes), which is the covering clause's whichever test met it."""
    __tracebackhide__ = True
    ctx = context()
    if clause not in clauses():
        raise SuiteError(f"check cites unknown clause {clause!r}")
    if severity not in SEVERITIES:
        raise SuiteError(f"check of {clause}/{condition}: severity {severity!r} is not one of {list(SEVERITIES)}")
    if ctx.marked and clause not in ctx.marked and not covering:
        raise SuiteError(f"a check of {clause} (condition {condition!r}) in a test marked only with "
                         f"{sorted(ctx.marked)}: add {clause} to the test's clause marker, so that "
                         f"--clause {clause} runs it")
    _ran(ctx, clause, condition)
    if ok:
        return
    dev, layer = _deviation(clause, condition, (comparison or {}).get("max_error"))
    if dev is not None:
        # kept, not raised: its reproduction is the evidence that a recorded bug is still there
        evidence = ClauseViolation(clause, condition, message, None if observed is None else str(observed),
                                   None if expected is None else str(expected), comparison, severity)
        # one entry per layer kind: a test that runs several kinds must show the defect on each it met
        ctx.observed.setdefault((clause, condition, dev.key, layer), (dev, message, layer, evidence))
        return
    if (clause, condition) in ctx.masked:
        return
    raise ClauseViolation(clause, condition, message, None if observed is None else str(observed),
                          None if expected is None else str(expected), comparison, severity)


def held(clause: str, condition: str) -> None:
    """A check that held where the test calls check() only on failure (an expected error that came, a
    call that did not raise): the condition ran, for the report's per-condition coverage."""
    __tracebackhide__ = True
    check(True, clause, condition, "")


def inapplicable(clause: str, condition: str) -> None:
    """The condition cannot apply to the case at hand, by the clause's own statement, under the implementation's
    convention (BN-TRAIN-06/output holds only where the running variance is biased, so there is an output to
    compare; under torch's unbiased convention the call must raise instead). Recorded per layer kind so that the
    report's per-condition coverage does not count it as a condition the suite failed to run; never use it for a
    case the draws merely missed."""
    __tracebackhide__ = True
    ctx = context()
    if clause not in clauses():
        raise SuiteError(f"inapplicable() cites unknown clause {clause!r}")
    if condition not in clauses()[clause].conditions:
        raise SuiteError(f"inapplicable(): {clause} has no condition {condition!r}")
    if ctx.marked and clause not in ctx.marked:
        raise SuiteError(f"inapplicable({clause!r}, {condition!r}) in a test marked only with {sorted(ctx.marked)}")
    ctx.inapplicable.add((clause, condition, checked_kind()))


def measure(clause: str, condition: str, **values) -> None:
    """Record a measurement (statistics, errors against tolerance) for the conformance report."""
    context().measurements.append({"clause": clause, "condition": condition, **values})


def _first_bad(bad: np.ndarray) -> tuple:
    return tuple(int(i) for i in np.argwhere(bad)[0]) if bad.ndim else ()


def assert_shape(got, expected, clause: str, what: str) -> None:
    __tracebackhide__ = True
    check(tuple(got) == tuple(expected), clause, "shape", f"got shape {tuple(got)}, expected {tuple(expected)} [{what}]",
          observed=tuple(got), expected=tuple(expected), severity="wrong-state")


def assert_dtype(got: str, expected: str, clause: str, what: str) -> None:
    __tracebackhide__ = True
    check(got == expected, clause, "dtype", f"got dtype {got}, expected {expected} [{what}]",
          observed=got, expected=expected, severity="wrong-state")


def assert_equal(got, expected, clause: str, condition: str, what: str) -> None:
    """Bitwise-equal values (NaN equals NaN; -0.0 equals 0.0)."""
    __tracebackhide__ = True
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    if got.shape != expected.shape:
        check(False, clause, condition, f"got shape {got.shape}, expected {expected.shape} [{what}]",
              observed=got.shape, expected=expected.shape, severity="wrong-state")
        return
    bad = ~((got == expected) | (np.isnan(got) & np.isnan(expected)))
    _ran(context(), clause, condition)
    if bad.any():
        i = _first_bad(bad)
        check(False, clause, condition, f"got {float(got[i])!r}, expected {float(expected[i])!r} at index {i}; "
                                        f"{int(bad.sum())} of {bad.size} differ [{what}]",
              observed=f"{float(got[i])!r} at index {i}", expected=repr(float(expected[i])),
              comparison={"kind": "equal", "got": got, "expected": expected, "what": what})


def assert_close(got, expected, atol, clause: str, condition: str, what: str, rel_note: str = "") -> float:
    """|got - expected| <= atol element-wise (atol broadcasts); returns the largest error/atol ratio."""
    __tracebackhide__ = True
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    if got.shape != expected.shape:
        check(False, clause, condition, f"got shape {got.shape}, expected {expected.shape} [{what}]",
              observed=got.shape, expected=expected.shape, severity="wrong-state")
        return float("inf")
    atol = np.broadcast_to(np.asarray(atol, np.float64), got.shape)
    err = np.abs(got - expected)
    same_nonfinite = (got == expected) | (np.isnan(got) & np.isnan(expected))
    bad = ~((err <= atol) | same_nonfinite)
    ratios = np.where(same_nonfinite, 0.0, err / np.maximum(atol, 1e-300))
    ratio = float(np.max(ratios, initial=0.0))
    _ran(context(), clause, condition)
    if ratios.size:
        j = np.unravel_index(int(np.nanargmax(np.where(np.isnan(ratios), np.inf, ratios))), ratios.shape)
        measure(clause, condition, kind="tolerance", max_error_over_tolerance=ratio,
                max_error=float(err[j]), tolerance=float(atol[j]))
    if bad.any():
        i = _first_bad(bad)
        check(False, clause, condition,
              f"got {float(got[i])!r}, expected {float(expected[i])!r} at index {i}: |error| {err[i]:.3g} > tolerance "
              f"{atol[i]:.3g}; {int(bad.sum())} of {bad.size} outside {rel_note}[{what}]",
              observed=f"{float(got[i])!r} at index {i}", expected=f"{float(expected[i])!r} +- {atol[i]:.3g}",
              comparison={"kind": "close", "got": got, "expected": expected, "atol": np.array(atol), "what": what,
                          "max_error": float(np.max(np.where(bad, np.nan_to_num(err, nan=np.inf), 0.0)))})
    return ratio


def assert_binomial(result, clause: str, condition: str, what: str) -> None:
    """Fail when an exact binomial test rejects (dropnorm.spec.stats.BinomialResult)."""
    __tracebackhide__ = True
    measure(clause, condition, kind="binomial", n=result.n, k=result.k, rate=result.rate, p0=result.p0,
            ci=list(result.ci), pvalue=result.pvalue, alpha=result.alpha)
    check(not result.rejected, clause, condition, f"{result.describe()} [{what}]",
          observed=f"rate {result.rate:.6g} (k={result.k} of n={result.n})", expected=f"rate {result.p0:.6g}")


def read_mask(y) -> np.ndarray:
    """The keep mask of a dropout output whose finite input had no zeros: kept <=> y != 0 and y is finite (a
    NaN or inf output is neither kept nor dropped: it is counted as not kept, so that an output of NaN
    everywhere reads as 0 kept, not as every element kept; the value checks say what it is)."""
    y = np.asarray(y)
    return (y != 0) & np.isfinite(y)


def assert_inverted_dropout(x, y, p: float, dtype: str, clause: str, what: str, *, channelwise: bool = False):
    """Every element is 0 or x/(1-p) within dropout_scale_rtol (DO-TRAIN-01, D2-TRAIN-01/02).

    With channelwise=True, each (sample, channel) plane must also be all kept or
    all dropped. Returns the mask (per element, or per (N, C) plane).
    """
    __tracebackhide__ = True
    from dropnorm.spec.tolerances import dropout_scale_rtol
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    assert_shape(y.shape, x.shape, clause, what)
    # read_mask counts a non-finite output as not kept: one where the input is finite is neither 0 nor x/(1-p)
    invented = ~np.isfinite(y) & np.isfinite(x)
    if invented.any():
        i = _first_bad(invented)
        due = float(x[i] / (1 - p)) if p < 1 else 0.0
        check(False, clause, "scale", f"got {float(y[i])!r}, expected 0 or x/(1-p) = {due!r} at index {i}; "
                                      f"{int(invented.sum())} of {y.size} non-finite where the input is finite [{what}]",
              observed=f"{float(y[i])!r} at index {i}", expected="0 or x/(1-p)")
    mask = read_mask(y)
    scaled = x / (1.0 - p) if p < 1 else np.zeros_like(x)
    assert_close(np.where(mask, y, 0.0), np.where(mask, scaled, 0.0), dropout_scale_rtol(dtype) * np.abs(scaled),
                 clause, "scale", what, rel_note=f"(relative tolerance {dropout_scale_rtol(dtype):.3g}) ")
    if not channelwise:
        return mask
    planes = mask.reshape(mask.shape[:2] + (-1,))
    mixed = planes.any(axis=2) & ~planes.all(axis=2)
    _ran(context(), clause, "whole-channel")
    if mixed.any():
        n, c = (int(i) for i in np.argwhere(mixed)[0])
        check(False, clause, "whole-channel",
              f"got a partly dropped plane at (sample {n}, channel {c}): {int(planes[n, c].sum())} of "
              f"{planes.shape[2]} kept, expected all or none [{what}]",
              observed=f"{int(planes[n, c].sum())} of {planes.shape[2]} kept", expected="all or none")
    return planes.all(axis=2)
