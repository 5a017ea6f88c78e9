"""Assertion helpers (alias `ph` in the tests): every check names its clause.

A failed check raises ClauseViolation with the message
  "<clause>/<condition>: got X, expected Y [what]"
and the copy-paste reproduction of the failing example (dropnorm.repro).
A failed check that matches a recorded deviation (clause and condition, from
spec/deviations/<impl>.toml or --deviations) is recorded instead of raised,
so one deviation cannot hide another failure in the same test; the test is
then reported as xfail "known deviation".
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dropnorm import repro
from dropnorm.spec import Deviation, clauses

__all__ = ["ClauseViolation", "check", "measure", "assert_equal", "assert_close", "assert_dtype", "assert_shape",
           "assert_binomial", "context"]


class ClauseViolation(AssertionError):
    """A failed check: the clause, the condition within it, observed and expected values
    (as text) and the reproduction of the failing example, kept apart for the report."""

    def __init__(self, clause: str, condition: str, message: str, observed: str | None = None,
                 expected: str | None = None):
        self.clause, self.condition, self.message = clause, condition, message
        self.observed, self.expected = observed, expected
        self.reproduction = repro.snippet()
        self.script = repro.torch_script()
        super().__init__(f"{clause}/{condition}: {message}\n\nReproduce:\n{self.reproduction}")


@dataclass
class Context:
    impl_name: str = "torch"
    deviations: dict = field(default_factory=dict)
    observed: dict = field(default_factory=dict)   # (clause, condition) -> (Deviation, message)
    measurements: list = field(default_factory=list)
    examples: int = 0                                # hypothesis examples run (dropnorm.strategies.given)
    inputs: set = field(default_factory=set)         # (dtype, layout) pairs passed to layers


_ctx = [Context()]


def context() -> Context:
    return _ctx[0]


def set_context(ctx: Context) -> None:
    _ctx[0] = ctx


def check(ok: bool, clause: str, condition: str, message: str, *, observed=None, expected=None) -> None:
    """The one place a clause can fail. observed/expected: the values, for the report."""
    __tracebackhide__ = True
    if clause not in clauses():
        raise KeyError(f"check cites unknown clause {clause!r}")
    if ok:
        return
    dev: Deviation | None = context().deviations.get((clause, condition))
    if dev is not None:
        context().observed.setdefault((clause, condition), (dev, message))
        return
    raise ClauseViolation(clause, condition, message,
                          None if observed is None else str(observed), None if expected is None else str(expected))


def measure(clause: str, condition: str, **values) -> None:
    """Record a measurement (statistics, errors against tolerance) for the conformance report."""
    context().measurements.append({"clause": clause, "condition": condition, **values})


def _first_bad(bad: np.ndarray) -> tuple:
    return tuple(int(i) for i in np.argwhere(bad)[0]) if bad.ndim else ()


def assert_shape(got, expected, clause: str, what: str) -> None:
    __tracebackhide__ = True
    check(tuple(got) == tuple(expected), clause, "shape", f"got shape {tuple(got)}, expected {tuple(expected)} [{what}]",
          observed=tuple(got), expected=tuple(expected))


def assert_dtype(got: str, expected: str, clause: str, what: str) -> None:
    __tracebackhide__ = True
    check(got == expected, clause, "dtype", f"got dtype {got}, expected {expected} [{what}]",
          observed=got, expected=expected)


def assert_equal(got, expected, clause: str, condition: str, what: str) -> None:
    """Bitwise-equal values (NaN equals NaN; -0.0 equals 0.0)."""
    __tracebackhide__ = True
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    if got.shape != expected.shape:
        check(False, clause, condition, f"got shape {got.shape}, expected {expected.shape} [{what}]",
              observed=got.shape, expected=expected.shape)
        return
    bad = ~((got == expected) | (np.isnan(got) & np.isnan(expected)))
    if bad.any():
        i = _first_bad(bad)
        check(False, clause, condition, f"got {float(got[i])!r}, expected {float(expected[i])!r} at index {i}; "
                                        f"{int(bad.sum())} of {bad.size} differ [{what}]",
              observed=f"{float(got[i])!r} at index {i}", expected=repr(float(expected[i])))


def assert_close(got, expected, atol, clause: str, condition: str, what: str, rel_note: str = "") -> float:
    """|got - expected| <= atol element-wise (atol broadcasts); returns the largest error/atol ratio."""
    __tracebackhide__ = True
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    if got.shape != expected.shape:
        check(False, clause, condition, f"got shape {got.shape}, expected {expected.shape} [{what}]",
              observed=got.shape, expected=expected.shape)
        return float("inf")
    atol = np.broadcast_to(np.asarray(atol, np.float64), got.shape)
    err = np.abs(got - expected)
    same_nonfinite = (got == expected) | (np.isnan(got) & np.isnan(expected))
    bad = ~((err <= atol) | same_nonfinite)
    ratios = np.where(same_nonfinite, 0.0, err / np.maximum(atol, 1e-300))
    ratio = float(np.max(ratios, initial=0.0))
    if ratios.size:
        j = np.unravel_index(int(np.nanargmax(np.where(np.isnan(ratios), np.inf, ratios))), ratios.shape)
        measure(clause, condition, kind="tolerance", max_error_over_tolerance=ratio,
                max_error=float(err[j]), tolerance=float(atol[j]))
    if bad.any():
        i = _first_bad(bad)
        check(False, clause, condition,
              f"got {float(got[i])!r}, expected {float(expected[i])!r} at index {i}: |error| {err[i]:.3g} > tolerance "
              f"{atol[i]:.3g}; {int(bad.sum())} of {bad.size} outside {rel_note}[{what}]",
              observed=f"{float(got[i])!r} at index {i}", expected=f"{float(expected[i])!r} +- {atol[i]:.3g}")
    return ratio


def assert_binomial(result, clause: str, condition: str, what: str) -> None:
    """Fail when an exact binomial test rejects (dropnorm.stats.BinomialResult)."""
    __tracebackhide__ = True
    measure(clause, condition, kind="binomial", n=result.n, k=result.k, rate=result.rate, p0=result.p0,
            ci=list(result.ci), pvalue=result.pvalue, alpha=result.alpha)
    check(not result.rejected, clause, condition, f"{result.describe()} [{what}]",
          observed=f"rate {result.rate:.6g} (k={result.k} of n={result.n})", expected=f"rate {result.p0:.6g}")


def read_mask(y) -> np.ndarray:
    """The keep mask of a dropout output whose input had no zeros: kept <=> y != 0."""
    return np.asarray(y) != 0


def assert_inverted_dropout(x, y, p: float, dtype: str, clause: str, what: str, *, channelwise: bool = False):
    """Every element is 0 or x/(1-p) within dropout_scale_rtol (DO-TRAIN-01, D2-TRAIN-01/02).

    With channelwise=True, each (sample, channel) plane must also be all kept or
    all dropped. Returns the mask (per element, or per (N, C) plane).
    """
    __tracebackhide__ = True
    from dropnorm.tolerances import dropout_scale_rtol
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    assert_shape(y.shape, x.shape, clause, what)
    mask = read_mask(y)
    scaled = x / (1.0 - p) if p < 1 else np.zeros_like(x)
    assert_close(np.where(mask, y, 0.0), np.where(mask, scaled, 0.0), dropout_scale_rtol(dtype) * np.abs(scaled),
                 clause, "scale", what, rel_note=f"(relative tolerance {dropout_scale_rtol(dtype):.3g}) ")
    if not channelwise:
        return mask
    planes = mask.reshape(mask.shape[:2] + (-1,))
    mixed = planes.any(axis=2) & ~planes.all(axis=2)
    if mixed.any():
        n, c = (int(i) for i in np.argwhere(mixed)[0])
        check(False, clause, "whole-channel",
              f"got a partly dropped plane at (sample {n}, channel {c}): {int(planes[n, c].sum())} of "
              f"{planes.shape[2]} kept, expected all or none [{what}]",
              observed=f"{int(planes[n, c].sum())} of {planes.shape[2]} kept", expected="all or none")
    return planes.all(axis=2)
